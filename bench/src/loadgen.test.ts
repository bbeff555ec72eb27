import { describe, expect, it } from "vitest";
import { percentile, summarize } from "./loadgen.ts";
import type { LoadRecord } from "./loadgen.ts";

function record(intendedAt: number, sentAt: number, doneAt: number, ok = true): LoadRecord {
  return {
    intendedAt,
    sentAt,
    doneAt,
    ok,
    status: ok ? 200 : 0,
    server: null,
    error: ok ? null : "ECONNREFUSED",
  };
}

describe("load summary", () => {
  it("uses nearest-rank percentiles", () => {
    const values = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 0.5)).toBe(50);
    expect(percentile(values, 0.99)).toBe(99);
    expect(percentile(values, 1)).toBe(100);
    expect(percentile(new Float64Array(0), 0.5)).toBeNaN();
  });

  it("charges a late send to latency (intended time) but not to service time", () => {
    const summary = summarize([record(0, 0, 1), record(1, 1, 2), record(2, 12, 13, false)]);
    expect(summary).toMatchObject({ requests: 3, failures: 1, maxMs: 11, serviceP99Ms: 1, sendLagP99Ms: 10 });
    expect(summary.errors).toEqual({ ECONNREFUSED: 1 });
  });
});
