import { describe, expect, it } from "vitest";
import { isSubset } from "./compare.ts";

describe("isSubset", () => {
  it("ignores fields the server added", () => {
    expect(isSubset({ a: 1, b: { c: "x" } }, { a: 1, b: { c: "x", d: 2 }, status: {} })).toBe(true);
  });

  it("sees a changed or missing field", () => {
    expect(isSubset({ a: 1 }, { a: 2 })).toBe(false);
    expect(isSubset({ a: 1 }, {})).toBe(false);
    expect(isSubset({ a: { b: 1 } }, { a: null })).toBe(false);
  });

  it("compares lists element by element and by length", () => {
    expect(isSubset([{ name: "a" }], [{ name: "a", x: 1 }])).toBe(true);
    expect(isSubset([{ name: "a" }], [{ name: "a" }, { name: "b" }])).toBe(false);
    expect(isSubset([{ name: "b" }], [{ name: "a" }])).toBe(false);
  });

  it("treats an absent map or list as empty, as the API server drops empty ones", () => {
    expect(isSubset({ data: {} }, {})).toBe(true);
    expect(isSubset({ list: [] }, {})).toBe(true);
    expect(isSubset({ data: { k: "v" } }, {})).toBe(false);
  });

  it("accepts int-or-string values in either form", () => {
    expect(isSubset({ port: 8080 }, { port: "8080" })).toBe(true);
    expect(isSubset({ port: 8080 }, { port: 8081 })).toBe(false);
  });
});
