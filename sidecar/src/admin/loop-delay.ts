// The event loop delay the process metrics report: a timer every RESOLUTION_MS whose actual interval
// (the resolution plus however late the loop ran it) is recorded, as `perf_hooks.monitorEventLoopDelay`
// records it. Our own, because that monitor costs `node:perf_hooks` and the seven modules it loads
// (~0.3 MB of heap in every sidecar) for five numbers read at scrape time.

/** How often the loop is sampled. */
export const RESOLUTION_MS = 50;
/** Bucket width: each bucket's upper bound is GROWTH × the previous one's (percentiles within 1 %). */
const GROWTH = 1.01;
/** Bucket 0 ends at 1 µs; the last one (2,000 buckets on) at ~7 minutes and catches everything above. */
const BUCKETS = 2000;
const LOG_GROWTH = Math.log(GROWTH);

/** The bucket holding `ns` (≥ 1 µs goes above bucket 0). Exported for its unit test. */
export function bucketOf(ns: number): number {
  if (ns <= 1000) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log(ns / 1000) / LOG_GROWTH));
}

/** The largest value bucket `i` holds, in ns. */
export function bucketUpperNs(i: number): number {
  return 1000 * GROWTH ** i;
}

/** Intervals in ns, since start: min, max and mean exact; percentiles within 1 % (upper bound). */
export class DelayHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  private low = 0;
  private high = 0;
  private sum = 0;

  record(ns: number): void {
    const i = bucketOf(ns);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    if (this.count === 0 || ns < this.low) this.low = ns;
    if (ns > this.high) this.high = ns;
    this.count++;
    this.sum += ns;
  }

  /** NaN before the first value (the metric is then left out). */
  get min(): number {
    return this.count === 0 ? Number.NaN : this.low;
  }

  get max(): number {
    return this.count === 0 ? Number.NaN : this.high;
  }

  get mean(): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count;
  }

  /** The `p`th percentile (0–100), never above the largest value recorded; NaN before any. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(this.high, Math.max(this.low, bucketUpperNs(i)));
    }
    return this.high;
  }
}

/** Samples the loop every RESOLUTION_MS into a DelayHistogram until stopped (the timer is unref'd). */
export class LoopDelay {
  readonly histogram = new DelayHistogram();
  private last = process.hrtime.bigint();
  private readonly timer = setInterval(() => {
    const now = process.hrtime.bigint();
    this.histogram.record(Number(now - this.last));
    this.last = now;
  }, RESOLUTION_MS).unref();

  stop(): void {
    clearInterval(this.timer);
  }
}
