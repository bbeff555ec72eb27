// Open-loop, constant-rate traffic for the demo and e2e tests. Requests are sent on a fixed
// schedule whatever the answers do, and latency is measured from each request's *intended* send
// time, so a stall shows up in the numbers instead of quietly slowing the generator down
// ("coordinated omission"). Node built-ins only (node:http): the demo image runs this as its
// `load` command without any node_modules.
import http from "node:http";

export interface RequestRecord {
  /** When the schedule said this request should go out (clock units: ms). */
  readonly intendedAt: number;
  /** When the request actually went out (later than intendedAt when the client's own event loop lagged). */
  sentAt: number;
  /** When the answer (or the failure) arrived. */
  doneAt: number;
  /** HTTP status, or 0 when there was no answer. */
  status: number;
  ok: boolean;
  /** The `server` field of the JSON answer: which policy server decided. */
  server: string | null;
  /** The `certSerial` of the JSON answer: the certificate an HTTPS policy server presented. */
  certSerial?: string | null;
  error: string | null;
}

/** What one exchange (one request, or one connection for a custom exchange) came back with. */
export interface ExchangeResult {
  /** HTTP status, 200 for a good answer of a custom exchange, 0 for none. */
  readonly status: number;
  readonly server: string | null;
  readonly certSerial?: string | null;
  /** Why it failed (null when status is 200). */
  readonly error: string | null;
}

/** One exchange with the target; must settle (never reject) within `timeoutMs`. */
export type Exchange = (timeoutMs: number) => Promise<ExchangeResult>;

interface CommonTrafficOptions {
  readonly ratePerSecond: number;
  /** Requests allowed in flight at once; a scheduled request beyond this fails as "overload". */
  readonly maxInFlight?: number;
  /** Per-request deadline, the whole request from the first byte sent to the last received. */
  readonly requestTimeoutMs?: number;
  /** Monotonic clock in ms; `performance.now` by default. */
  readonly now?: () => number;
}

/** GETs of one path on one origin over keep-alive connections. */
export interface HttpTrafficOptions extends CommonTrafficOptions {
  /** Origin to send to, e.g. http://127.0.0.1:15001 */
  readonly origin: string;
  /** Request path (with query). */
  readonly path: string;
  /** Extra request headers, e.g. a session cookie. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Any exchange on the same schedule (e.g. one TLS connection per request). */
export interface CustomTrafficOptions extends CommonTrafficOptions {
  readonly exchange: Exchange;
}

export type TrafficOptions = HttpTrafficOptions | CustomTrafficOptions;

type RecordListener = (record: RequestRecord) => void;

export class ConstantRateTraffic {
  readonly records: RequestRecord[] = [];
  private readonly agent: http.Agent | null;
  private readonly exchange: Exchange;
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
    if (!(options.ratePerSecond > 0)) {
      throw new RangeError(`ratePerSecond: expected a positive number, got ${options.ratePerSecond}`);
    }
    this.now = options.now ?? (() => performance.now());
    this.intervalMs = 1000 / options.ratePerSecond;
    this.maxInFlight = options.maxInFlight ?? 4096;
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    if ("exchange" in options) {
      this.agent = null;
      this.exchange = options.exchange;
    } else {
      // lifo reuses the most recent connection; the agent honours the server's Keep-Alive hint.
      this.agent = new http.Agent({ keepAlive: true, maxSockets: this.maxInFlight, scheduling: "lifo" });
      this.exchange = httpGet(options.origin, options.path, options.headers ?? {}, this.agent);
    }
  }

  start(): void {
    if (this.timer) return;
    this.nextAt = this.now();
    this.tick();
  }

  /** Stops scheduling, waits for in-flight requests (up to `drainTimeoutMs`), closes the connections. */
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
    this.agent?.destroy();
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
    const record: RequestRecord = {
      intendedAt,
      sentAt: this.now(),
      doneAt: 0,
      status: 0,
      ok: false,
      server: null,
      error: null,
    };
    this.records.push(record);
    if (this.inFlight >= this.maxInFlight) {
      this.finish(record, 0, null, "overload: too many requests in flight");
      return;
    }
    this.inFlight++;
    void this.exchange(this.timeoutMs)
      .catch((error: unknown): ExchangeResult => ({ status: 0, server: null, error: describeError(error) }))
      .then((result) => {
        record.certSerial = result.certSerial ?? null;
        this.finish(record, result.status, result.server, result.error);
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

/** GET `path` on `origin` through `agent`; the whole exchange is bounded by `timeoutMs`. */
function httpGet(
  origin: string,
  path: string,
  headers: Readonly<Record<string, string>>,
  agent: http.Agent,
): Exchange {
  const url = new URL(origin);
  if (url.protocol !== "http:") throw new RangeError(`origin: expected an http:// origin, got ${origin}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port === "" ? 80 : Number(url.port);
  return (timeoutMs) =>
    new Promise<ExchangeResult>((resolve) => {
      let settled = false;
      const settle = (result: ExchangeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const request = http.request({ host, port, path, method: "GET", headers, agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = response.statusCode ?? 0;
          const { server, certSerial } = answerOf(text);
          settle({ status, server, certSerial, error: status === 200 ? null : text.slice(0, 200) });
        });
        response.on("error", (error) => {
          settle({ status: 0, server: null, error: describeError(error) });
        });
      });
      const timer = setTimeout(() => {
        request.destroy(new Error(`timeout: no complete answer within ${timeoutMs} ms`));
      }, timeoutMs);
      request.on("error", (error) => {
        settle({ status: 0, server: null, error: describeError(error) });
      });
      request.end();
    });
}

function answerOf(body: string): { server: string | null; certSerial: string | null } {
  try {
    const parsed = JSON.parse(body) as { server?: unknown; certSerial?: unknown };
    return {
      server: typeof parsed.server === "string" ? parsed.server : null,
      certSerial: typeof parsed.certSerial === "string" ? parsed.certSerial : null,
    };
  } catch {
    return { server: null, certSerial: null };
  }
}

/** An error as one line: `CODE: message` when it has a code. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
