import { describe, expect, it } from "vitest";
import { bucketOf, bucketUpperNs, DelayHistogram } from "./loop-delay.ts";

describe("DelayHistogram", () => {
  it("reports nothing before the first value", () => {
    const h = new DelayHistogram();
    expect(h.min).toBeNaN();
    expect(h.max).toBeNaN();
    expect(h.mean).toBeNaN();
    expect(h.percentile(99)).toBeNaN();
  });

  it("keeps min, max and mean exact and percentiles within 1 %", () => {
    const h = new DelayHistogram();
    // 1..1000 ms: p50 is 500 ms, p99 990 ms.
    for (let ms = 1; ms <= 1000; ms++) h.record(ms * 1e6);
    expect(h.count).toBe(1000);
    expect(h.min).toBe(1e6);
    expect(h.max).toBe(1000e6);
    expect(h.mean).toBe(500.5e6);
    for (const [p, want] of [
      [50, 500e6],
      [99, 990e6],
      [100, 1000e6],
    ] as const) {
      const got = h.percentile(p);
      expect(got).toBeGreaterThanOrEqual(want);
      expect(got).toBeLessThanOrEqual(want * 1.01);
    }
  });

  it("never reports a percentile outside the values recorded", () => {
    const h = new DelayHistogram();
    h.record(50_123_456);
    expect(h.percentile(50)).toBe(50_123_456);
    expect(h.percentile(99)).toBe(50_123_456);
  });

  it("puts each value in the bucket whose bound is the first at or above it", () => {
    for (const ns of [1, 1000, 1001, 12_345, 50e6, 3.7e9]) {
      const i = bucketOf(ns);
      expect(bucketUpperNs(i)).toBeGreaterThanOrEqual(ns * 0.999_999);
      if (i > 0) expect(bucketUpperNs(i - 1)).toBeLessThan(ns);
    }
    // Beyond the last bound: the last bucket.
    expect(bucketOf(1e15)).toBe(bucketOf(1e16));
  });
});
