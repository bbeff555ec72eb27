import { describe, expect, it } from "vitest";
import { absoluteTarget, refusedUpgrade, rejectRequestHead } from "./request-checks.ts";

describe("rejectRequestHead", () => {
  it("refuses two Host headers (RFC 9112 §3.2), in any case", () => {
    expect(rejectRequestHead(["Host", "a", "HOST", "b"], 100)).toEqual({
      status: 400,
      text: "multiple host headers",
    });
    expect(rejectRequestHead(["Host", "a", "x-host", "b"], 100)).toBeUndefined();
  });

  it("accepts Transfer-Encoding: chunked alone and refuses any other coding with 501, as Envoy", () => {
    const te = (...values: string[]): number | undefined =>
      rejectRequestHead(
        values.flatMap((v) => ["Transfer-Encoding", v]),
        100,
      )?.status;
    expect(te("chunked")).toBeUndefined();
    expect(te(" Chunked ")).toBeUndefined();
    expect(te("gzip, chunked")).toBe(501);
    expect(te("gzip", "chunked")).toBe(501);
    expect(te("chunked", "chunked")).toBe(501);
    expect(te("identity")).toBe(501);
  });

  it("refuses more than max headers with 431", () => {
    const raw = Array.from({ length: 6 }, (_, i) => [`x-${i}`, "v"]).flat();
    expect(rejectRequestHead(raw, 6)).toBeUndefined();
    expect(rejectRequestHead(raw, 5)?.status).toBe(431);
  });
});

describe("absoluteTarget", () => {
  it("leaves origin-form targets alone", () => {
    expect(absoluteTarget("/a?b")).toBeUndefined();
    expect(absoluteTarget("*")).toBeUndefined();
  });

  it("splits an absolute-form target into authority and origin-form path", () => {
    expect(absoluteTarget("http://example.test/a/b?c=1")).toEqual({
      authority: "example.test",
      path: "/a/b?c=1",
    });
    expect(absoluteTarget("HTTP://example.test:8080")).toEqual({ authority: "example.test:8080", path: "/" });
    expect(absoluteTarget("https://example.test?x")).toEqual({ authority: "example.test", path: "/?x" });
    expect(absoluteTarget("http://example.test/p#frag")).toEqual({ authority: "example.test", path: "/p" });
  });

  it("calls other targets invalid", () => {
    expect(absoluteTarget("ftp://example.test/")).toBe("invalid");
    expect(absoluteTarget("http:///path")).toBe("invalid");
    expect(absoluteTarget("http://user@example.test/")).toBe("invalid");
    expect(absoluteTarget("relative/path")).toBe("invalid");
  });
});

describe("refusedUpgrade", () => {
  it("refuses every protocol switch but an h2c offer", () => {
    expect(refusedUpgrade(undefined)).toBe(false);
    expect(refusedUpgrade("h2c")).toBe(false);
    expect(refusedUpgrade(" H2C ")).toBe(false);
    expect(refusedUpgrade("websocket")).toBe(true);
    expect(refusedUpgrade("")).toBe(true);
    expect(refusedUpgrade("h2c, websocket")).toBe(true);
  });
});
