// The event loop delay the process metrics report: a timer every RESOLUTION_MS whose actual interval
// (the resolution plus however late the loop ran it) is recorded, as `perf_hooks.monitorEventLoopDelay`
// records it. Our own, because that monitor costs `node:perf_hooks` and the seven modules it loads
// (~0.3 MB of heap in every sidecar) for five numbers read at scrape time.
// While the loop is idle (under IDLE_UTILIZATION of the last interval spent running callbacks) the
// timer waits IDLE_RESOLUTION_MS instead, and a sample records RESOLUTION_MS plus its lateness, so the
// numbers mean the same at either pace. An idle sidecar then wakes twice a second for this, not 20
// times; each wake-up of an idle Node process costs ~0.15 ms of CPU (bench/RESULTS.md). What the
// slower pace can miss is a stall shorter than IDLE_RESOLUTION_MS that starts and ends between two
// samples of an otherwise idle loop; any loop that is doing work is sampled at the full resolution.

/** How often the loop is sampled while it is doing work. */
export const RESOLUTION_MS = 50;
/** How often it is sampled while idle. */
export const IDLE_RESOLUTION_MS = 500;
/** The share of an interval spent running callbacks below which the loop counts as idle. */
export const IDLE_UTILIZATION = 0.01;
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

type Utilization = ReturnType<typeof performance.eventLoopUtilization>;

function sampleDue(d: LoopDelay): void {
  d.sample();
}

/**
 * Samples the loop into a DelayHistogram until stopped: every RESOLUTION_MS while it works, every
 * IDLE_RESOLUTION_MS while it idles (the timer is unref'd).
 */
export class LoopDelay {
  readonly histogram = new DelayHistogram();
  private last = process.hrtime.bigint();
  private utilization: Utilization = performance.eventLoopUtilization();
  /** The interval the pending timer was set for, in ms. */
  private planned = RESOLUTION_MS;
  private timer: NodeJS.Timeout | undefined = setTimeout(sampleDue, RESOLUTION_MS, this).unref();

  /** The interval of the pending sample, in ms. */
  get intervalMs(): number {
    return this.planned;
  }

  /** The timer fired: records the interval as if it had been RESOLUTION_MS, and sets the next. */
  sample(): void {
    const now = process.hrtime.bigint();
    this.histogram.record(Number(now - this.last) - (this.planned - RESOLUTION_MS) * 1e6);
    this.last = now;
    const utilization = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(utilization, this.utilization).utilization;
    this.utilization = utilization;
    const next = busy < IDLE_UTILIZATION ? IDLE_RESOLUTION_MS : RESOLUTION_MS;
    if (this.timer === undefined) return;
    if (next === this.planned) this.timer.refresh();
    else {
      this.planned = next;
      this.timer = setTimeout(sampleDue, next, this).unref();
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
