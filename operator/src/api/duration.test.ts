import { describe, expect, it } from "vitest";
import { parseDuration } from "./duration.ts";

describe("durations", () => {
  it.each([
    ["500ms", 500],
    ["2s", 2000],
    ["1.5s", 1500],
    ["3m", 180_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
  ])("parse %s", (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });

  it.each(["", "2", "2 s", "-1s", "1d", "s", "1.s"])("reject %j with a message naming the value", (text) => {
    expect(() => parseDuration(text)).toThrow(`invalid duration "${text}"`);
  });
});
