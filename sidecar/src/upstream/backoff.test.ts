import { describe, expect, it } from "vitest";
import { MAX_TIMER_MS } from "../timers.ts";
import { JitteredBackoff } from "./backoff.ts";

describe("JitteredBackoff", () => {
  it("doubles the ceiling up to max_interval, with full jitter below it", () => {
    const b = new JitteredBackoff(100, 1000, () => 0.999999);
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([
      99, 199, 399, 799, 999, 999,
    ]);
  });

  it("can return zero (jitter from 0) and resets to base", () => {
    const b = new JitteredBackoff(25, 250, () => 0);
    expect(b.next()).toBe(0);
    const c = new JitteredBackoff(10, 100, () => 0.5);
    c.next();
    c.next();
    c.reset();
    expect(c.next()).toBe(5);
  });

  it("never grows past the longest timer Node arms, even when max_interval (10 × base) does", () => {
    const base = 2_000_000_000; // 2,000,000 s: a valid base_interval, whose default max is 10 × that
    const b = new JitteredBackoff(base, base * 10, () => 0.999999);
    const waits = [b.next(), b.next(), b.next(), b.next()];
    const top = Math.floor(0.999999 * MAX_TIMER_MS);
    expect(waits).toEqual([Math.floor(0.999999 * base), top, top, top]);
  });
});
