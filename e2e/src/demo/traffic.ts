// Open-loop, constant-rate HTTP traffic for the demo and e2e tests. Requests are sent on a fixed
// schedule whatever the answers do, and latency is measured from each request's *intended* send
// time, so a stall shows up in the numbers instead of quietly slowing the generator down
// ("coordinated omission").
import { Pool } from "undici";

export interface RequestRecord {
  /** When the schedule said this request should go out (clock units: ms). */
  readonly intendedAt: number;
  /** When the answer (or the failure) arrived. */
  doneAt: number;
  /** HTTP status, or 0 when there was no answer. */
  status: number;
  ok: boolean;
  /** The `server` field of the JSON answer: which policy server decided. */
  server: string | null;
  error: string | null;
}

export interface TrafficOptions {
  /** Origin to send to, e.g. http://127.0.0.1:15001 */
  readonly origin: string;
  /** Request path (with query). */
  readonly path: string;
  readonly ratePerSecond: number;
  /** Requests allowed in flight at once; a scheduled request beyond this fails as "overload". */
  readonly maxInFlight?: number;
  /** Per-request deadline. */
  readonly requestTimeoutMs?: number;
  /** Monotonic clock in ms; `performance.now` by default. */
  readonly now?: () => number;
}

type RecordListener = (record: RequestRecord) => void;

export class ConstantRateTraffic {
  readonly records: RequestRecord[] = [];
  private readonly pool: Pool;
  private readonly options: TrafficOptions;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;
  private readonly listeners = new Set<RecordListener>();
  private timer: NodeJS.Timeout | null = null;
  private nextAt = 0;
  private inFlight = 0;
  private drained: (() => void) | null = null;

  constructor(options: TrafficOptions) {
    this.options = options;
    this.now = options.now ?? (() => performance.now());
    this.intervalMs = 1000 / options.ratePerSecond;
    this.maxInFlight = options.maxInFlight ?? 4096;
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.pool = new Pool(options.origin, {
      connections: this.maxInFlight,
      pipelining: 1,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
    });
  }

  start(): void {
    if (this.timer) return;
    this.nextAt = this.now();
    this.tick();
  }

  /** Stops scheduling, waits for in-flight requests (up to `drainTimeoutMs`), closes the pool. */
  async stop(drainTimeoutMs = this.timeoutMs + 1000): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.inFlight > 0) {
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.drained = resolve)),
        new Promise<void>((resolve) => (deadline = setTimeout(resolve, drainTimeoutMs))),
      ]);
      clearTimeout(deadline);
    }
    await this.pool.destroy();
  }

  /**
   * Resolves with the first successful answer from `server` that arrived at or after `since`,
   * or null after `timeoutMs`.
   */
  async waitForServer(server: string, since: number, timeoutMs: number): Promise<RequestRecord | null> {
    const seen = this.records.find((r) => r.ok && r.server === server && r.doneAt >= since);
    if (seen) return seen;
    return new Promise((resolve) => {
      const listener: RecordListener = (record) => {
        if (!record.ok || record.server !== server || record.doneAt < since) return;
        finish(record);
      };
      const finish = (record: RequestRecord | null): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(record);
      };
      const timer = setTimeout(() => {
        finish(null);
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }

  private tick(): void {
    const now = this.now();
    while (this.nextAt <= now) {
      this.send(this.nextAt);
      this.nextAt += this.intervalMs;
    }
    this.timer = setTimeout(
      () => {
        this.tick();
      },
      Math.max(0, this.nextAt - this.now()),
    );
  }

  private send(intendedAt: number): void {
    const record: RequestRecord = { intendedAt, doneAt: 0, status: 0, ok: false, server: null, error: null };
    this.records.push(record);
    if (this.inFlight >= this.maxInFlight) {
      this.finish(record, 0, null, "overload: too many requests in flight");
      return;
    }
    this.inFlight++;
    this.pool
      .request({ method: "GET", path: this.options.path })
      .then(async (response) => {
        const text = await response.body.text();
        this.finish(
          record,
          response.statusCode,
          serverOf(text),
          response.statusCode === 200 ? null : text.slice(0, 200),
        );
      })
      .catch((error: unknown) => {
        this.finish(record, 0, null, describeError(error));
      })
      .finally(() => {
        this.inFlight--;
        if (this.inFlight === 0 && this.drained) this.drained();
      });
  }

  private finish(record: RequestRecord, status: number, server: string | null, error: string | null): void {
    record.doneAt = this.now();
    record.status = status;
    record.server = server;
    record.ok = status === 200;
    record.error = record.ok ? null : (error ?? `status ${status}`);
    for (const listener of this.listeners) listener(record);
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
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
