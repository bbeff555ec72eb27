// A constant-rate (open-loop) HTTP load generator on undici. Requests leave on a fixed schedule
// whatever the answers do; latency is measured from each request's *intended* send time, so a
// stall is charged to every request that should have gone out during it (no coordinated
// omission). The gap between intended and actual send (timer lag) is reported separately.
//
// As a child process (so it can be pinned with taskset):
//   node bench/src/loadgen.ts --url http://127.0.0.1:8080/ --rate 1000 --duration-ms 5000
// prints one JSON line: the LoadSummary below. `--precise` spins in the last millisecond before each
// send (sharper schedule, but it takes CPU from whatever shares the core — off by default).
import { parseArgs } from "node:util";
import { Pool } from "undici";

export interface LoadRecord {
  readonly intendedAt: number;
  sentAt: number;
  doneAt: number;
  ok: boolean;
  status: number;
  /** The `server` field of a JSON answer, when asked for (restart scenarios). */
  server: string | null;
  error: string | null;
}

export interface LoadOptions {
  readonly origin: string;
  readonly path: string;
  readonly ratePerSecond: number;
  readonly connections: number;
  readonly timeoutMs?: number;
  /** Parse the JSON body for its `server` field. */
  readonly readServer?: boolean;
  /**
   * Poll with setImmediate in the last millisecond before a send instead of relying on a timer
   * alone (Node timers have 1 ms granularity). Costs CPU on the generator's core; sharpens the
   * schedule from ~0.5 ms late on average to a few µs.
   */
  readonly precise?: boolean;
}

export class ConstantRateLoad {
  readonly records: LoadRecord[] = [];
  private readonly pool: Pool;
  private readonly options: LoadOptions;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private stopped = false;
  private nextAt = 0;
  private inFlight = 0;
  private drained: (() => void) | null = null;

  constructor(options: LoadOptions) {
    this.options = options;
    this.intervalMs = 1000 / options.ratePerSecond;
    const timeoutMs = options.timeoutMs ?? 30_000;
    this.pool = new Pool(options.origin, {
      connections: options.connections,
      pipelining: 1,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connectTimeout: timeoutMs,
    });
  }

  start(): void {
    this.nextAt = performance.now();
    this.tick();
  }

  /** Stops sending; waits for in-flight requests up to `drainMs`; closes connections. */
  async stop(drainMs = 35_000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    if (this.inFlight > 0) {
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.drained = resolve)),
        new Promise<void>((resolve) => (deadline = setTimeout(resolve, drainMs))),
      ]);
      clearTimeout(deadline);
    }
    await this.pool.destroy();
  }

  private tick(): void {
    this.timer = null;
    this.immediate = null;
    if (this.stopped) return;
    const now = performance.now();
    while (this.nextAt <= now) {
      this.send(this.nextAt);
      this.nextAt += this.intervalMs;
    }
    const wait = this.nextAt - performance.now();
    if (this.options.precise === true && wait < 1.5) {
      this.immediate = setImmediate(() => {
        this.tick();
      });
      return;
    }
    this.timer = setTimeout(
      () => {
        this.tick();
      },
      Math.max(0, this.options.precise === true ? wait - 1 : wait),
    );
  }

  private send(intendedAt: number): void {
    const record: LoadRecord = {
      intendedAt,
      sentAt: performance.now(),
      doneAt: 0,
      ok: false,
      status: 0,
      server: null,
      error: null,
    };
    this.records.push(record);
    this.inFlight++;
    this.pool
      .request({ method: "GET", path: this.options.path })
      .then(async (response) => {
        record.status = response.statusCode;
        if (this.options.readServer) {
          record.server = serverOf(await response.body.text());
        } else {
          await response.body.dump();
        }
        record.ok = response.statusCode === 200;
        if (!record.ok) record.error = `status ${response.statusCode}`;
      })
      .catch((error: unknown) => {
        record.error = describeError(error);
      })
      .finally(() => {
        record.doneAt = performance.now();
        this.inFlight--;
        if (this.inFlight === 0 && this.drained) this.drained();
      });
  }
}

function serverOf(body: string): string | null {
  try {
    const parsed = JSON.parse(body) as { server?: unknown };
    return typeof parsed.server === "string" ? parsed.server : null;
  } catch {
    return null;
  }
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : error.message;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] ?? Number.NaN
  );
}

export interface LoadSummary {
  readonly requests: number;
  readonly failures: number;
  /** From intended send time to answer (what a caller on a schedule sees). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** From actual send to answer (the target's own service time). */
  readonly serviceP50Ms: number;
  readonly serviceP99Ms: number;
  /** How late the generator's timer sent requests, p99. */
  readonly sendLagP99Ms: number;
  readonly errors: Readonly<Record<string, number>>;
}

export function summarize(records: readonly LoadRecord[]): LoadSummary {
  const sorted = (values: number[]): Float64Array => Float64Array.from(values).sort();
  const latency = sorted(records.map((r) => r.doneAt - r.intendedAt));
  const service = sorted(records.map((r) => r.doneAt - r.sentAt));
  const lag = sorted(records.map((r) => r.sentAt - r.intendedAt));
  const errors: Record<string, number> = {};
  for (const record of records)
    if (!record.ok) errors[record.error ?? "?"] = (errors[record.error ?? "?"] ?? 0) + 1;
  return {
    requests: records.length,
    failures: records.filter((r) => !r.ok).length,
    p50Ms: percentile(latency, 0.5),
    p99Ms: percentile(latency, 0.99),
    maxMs: latency.length > 0 ? (latency[latency.length - 1] ?? 0) : Number.NaN,
    serviceP50Ms: percentile(service, 0.5),
    serviceP99Ms: percentile(service, 0.99),
    sendLagP99Ms: percentile(lag, 0.99),
    errors,
  };
}

/** Runs at `rate` for `warmupMs` (discarded), then for `durationMs`, and summarizes the latter. */
export async function runFixedRate(
  options: LoadOptions & { readonly warmupMs: number; readonly durationMs: number },
): Promise<LoadSummary> {
  const load = new ConstantRateLoad(options);
  load.start();
  await new Promise<void>((resolve) => setTimeout(resolve, options.warmupMs));
  const from = load.records.length;
  await new Promise<void>((resolve) => setTimeout(resolve, options.durationMs));
  const to = load.records.length;
  await load.stop();
  return summarize(load.records.slice(from, to));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      rate: { type: "string", default: "1000" },
      "duration-ms": { type: "string", default: "5000" },
      "warmup-ms": { type: "string", default: "1000" },
      connections: { type: "string", default: "32" },
      precise: { type: "boolean", default: false },
    },
  });
  if (values.url === undefined) throw new Error("TETHER_ERR_BENCH_ARGS: --url: required");
  const url = new URL(values.url);
  const summary = await runFixedRate({
    origin: url.origin,
    path: url.pathname + url.search,
    ratePerSecond: Number(values.rate),
    connections: Number(values.connections),
    durationMs: Number(values["duration-ms"]),
    warmupMs: Number(values["warmup-ms"]),
    precise: values.precise,
  });
  process.stdout.write(JSON.stringify(summary) + "\n");
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`loadgen failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
