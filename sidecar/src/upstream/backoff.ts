// Envoy's jittered exponential back-off: the n-th wait is uniform in [0, min(base × 2^n, max)),
// capped at max_interval. The random source is injected so tests are exact.
import { MAX_TIMER_MS } from "../timers.ts";

export type RandomSource = () => number; // uniform in [0, 1)

export class JitteredBackoff {
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: RandomSource;
  private nextCeilingMs: number;

  constructor(baseMs: number, maxMs: number, random: RandomSource = Math.random) {
    this.baseMs = baseMs;
    // max_interval defaults to ten times base_interval, which can pass the longest timer Node arms.
    this.maxMs = Math.min(maxMs, MAX_TIMER_MS);
    this.random = random;
    this.nextCeilingMs = baseMs;
  }

  /** The next wait in milliseconds. */
  next(): number {
    const ceiling = this.nextCeilingMs;
    this.nextCeilingMs = ceiling < this.maxMs / 2 ? ceiling * 2 : this.maxMs;
    return Math.min(Math.floor(this.random() * ceiling), this.maxMs);
  }

  reset(): void {
    this.nextCeilingMs = this.baseMs;
  }
}

/** Envoy's router default when retry_back_off is absent: base 25 ms, max 250 ms. */
export const DEFAULT_RETRY_BASE_MS = 25;
export const DEFAULT_RETRY_MAX_MS = 250;
