import { describe, expect, it } from "vitest";
import {
  bucketOf,
  bucketUpperNs,
  DelayHistogram,
  IDLE_RESOLUTION_MS,
  LoopDelay,
  RESOLUTION_MS,
} from "./loop-delay.ts";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Keeps the loop running callbacks for `ms`: 5 ms of spinning per turn, other timers still run. */
async function work(ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const turn = performance.now() + 5;
    while (performance.now() < turn) {
      // spin
    }
    await new Promise((r) => setImmediate(r));
  }
}

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

describe("LoopDelay", () => {
  it("samples every RESOLUTION_MS while the loop works and every IDLE_RESOLUTION_MS while it idles", async () => {
    const d = new LoopDelay();
    try {
      await work(600);
      expect(d.intervalMs).toBe(RESOLUTION_MS);
      const working = d.histogram.count;
      // 12 intervals of 50 ms; a slow machine may run fewer.
      expect(working).toBeGreaterThanOrEqual(6);

      await sleep(1600);
      expect(d.intervalMs).toBe(IDLE_RESOLUTION_MS);
      // At 50 ms that would be 32 more samples; idle, one at the old pace and then two a second.
      const idle = d.histogram.count - working;
      expect(idle).toBeGreaterThanOrEqual(2);
      expect(idle).toBeLessThanOrEqual(6);
      // An idle sample counts as RESOLUTION_MS plus its lateness, not as the 500 ms it waited.
      expect(d.histogram.max).toBeLessThan((IDLE_RESOLUTION_MS - 100) * 1e6);

      // The idle timer fires within IDLE_RESOLUTION_MS of work starting, and the pace returns.
      await work(IDLE_RESOLUTION_MS + 150);
      expect(d.intervalMs).toBe(RESOLUTION_MS);
      // A 300 ms stall of a working loop is one sample of at least that interval.
      const stallEnd = performance.now() + 300;
      while (performance.now() < stallEnd) {
        // a synchronous stall
      }
      await work(120);
      expect(d.histogram.max).toBeGreaterThanOrEqual(299e6);
      expect(d.histogram.min).toBeGreaterThan((RESOLUTION_MS - 5) * 1e6);
    } finally {
      d.stop();
    }
  });

  it("stops sampling when stopped", async () => {
    const d = new LoopDelay();
    d.stop();
    await sleep(RESOLUTION_MS * 3);
    expect(d.histogram.count).toBe(0);
  });
});
