import { describe, expect, it } from "vitest";
import { MAX_TIMER_MS, timerDelay } from "./timers.ts";

describe("timerDelay", () => {
  it("keeps delays Node honours", () => {
    expect(timerDelay(0)).toBe(0);
    expect(timerDelay(1.5)).toBe(1.5);
    expect(timerDelay(MAX_TIMER_MS)).toBe(MAX_TIMER_MS);
  });

  it("clamps a delay that would overflow Node's 32-bit timer (and fire after 1 ms) to the longest one", () => {
    expect(MAX_TIMER_MS).toBe(2_147_483_647);
    expect(timerDelay(MAX_TIMER_MS + 1)).toBe(MAX_TIMER_MS);
    expect(timerDelay(30_000 * 100_000)).toBe(MAX_TIMER_MS); // base_ejection_time × a large ejection count
    expect(timerDelay(Number.POSITIVE_INFINITY)).toBe(MAX_TIMER_MS);
    expect(timerDelay(Number.NaN)).toBe(MAX_TIMER_MS);
  });

  it("turns a negative delay into zero", () => {
    expect(timerDelay(-5)).toBe(0);
  });

  it("a clamped delay does not fire early", async () => {
    const fired = await new Promise<boolean>((resolve) => {
      const t = setTimeout(
        () => {
          resolve(true);
        },
        timerDelay(MAX_TIMER_MS + 1),
      );
      // Node would have run an overflowing delay after 1 ms; this one is still pending on the next turn.
      setImmediate(() => {
        setTimeout(() => {
          clearTimeout(t);
          resolve(false);
        }, 20);
      });
    });
    expect(fired).toBe(false);
  });
});
