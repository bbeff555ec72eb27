import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration, toEnvoyDuration } from "./duration.ts";

describe("durations", () => {
  it("parse protobuf-JSON durations into milliseconds", () => {
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("0.000000001s")).toBe(1e-6);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("30")).toBeUndefined();
    expect(parseDuration("1m")).toBeUndefined();
  });

  it("format Envoy durations exactly, to the millisecond, for rendering", () => {
    expect(toEnvoyDuration(30_000)).toBe("30s");
    expect(toEnvoyDuration(250)).toBe("0.250s");
    expect(toEnvoyDuration(1500)).toBe("1.500s");
    expect(() => toEnvoyDuration(-1)).toThrow(RangeError);
  });

  it("format the shortest text for dumps and messages", () => {
    expect(formatDuration(250)).toBe("0.25s");
    expect(formatDuration(30_000)).toBe("30s");
  });
});
