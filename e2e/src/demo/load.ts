// The load generator of the demo image (`tether-demo load …`): constant-rate traffic from inside a
// client pod toward an HTTP target (an agent, a sidecar's proxy listener) or a TLS target (a
// broker), until its stdin says stop, then one JSON summary line on stdout.
//
//   load --target http://web.ns.svc:8000/app/orders --rate 20 [--header 'cookie: JSESSIONID=a']…
//        [--timeout-ms 45000] [--slow-ms 1000] [--max-in-flight 1024]
//        [--max-duration-ms 900000 | --duration-ms N] [--progress-ms N]
//   load --target tls://broker.ns.svc:20001 --ca /etc/ca/ca.crt --servername appserver.tether.test …
//
// Output, one JSON object a line: {"event":"started",…} once the first request is scheduled, with
// --progress-ms {"event":"progress","requests":…,"failures":…,"servedBy":{…}} that often, then
// {"event":"summary",…} (LoadSummary) when it stopped. It stops on a line "stop" or the end of stdin
// (the test holds stdin open through `kubectl exec -i` while it disturbs the servers), on
// SIGTERM/SIGINT, after --duration-ms (stdin then ignored), or at --max-duration-ms at the latest.
// Exit 0 once the summary is written, whatever the numbers say; 2 for a bad flag.
//
// Definitions (see summarizeLoad): latency runs from a request's scheduled send time to its last
// byte (or its failure); a request is *bad* when it failed or its latency exceeded --slow-ms; the
// time to recover is the span from the scheduled send time of the first bad request to the
// completion of the last bad one, 0 when none was bad.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { parseArgs } from "node:util";
import { percentile } from "./summary.ts";
import { tlsExchange, type TlsTarget } from "./tls-client.ts";
import { ConstantRateTraffic, type Exchange, type RequestRecord } from "./traffic.ts";

export class LoadConfigError extends Error {
  readonly code = "TETHER_ERR_DEMO_CONFIG";
  constructor(message: string) {
    super(`TETHER_ERR_DEMO_CONFIG: ${message}`);
    this.name = "LoadConfigError";
  }
}

export interface LoadOptions {
  /** http://host:port/path?query or tls://host:port */
  readonly target: string;
  readonly ratePerSecond: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** An answer later than this (from the scheduled send time) counts as slow. */
  readonly slowMs: number;
  readonly maxInFlight: number;
  /** Stop after this long even if stdin stays open. */
  readonly maxDurationMs: number;
  /** Run exactly this long, ignoring stdin. */
  readonly durationMs: number | null;
  /** Print a progress line this often (null: never). */
  readonly progressMs: number | null;
  /** tls:// only: PEM of the CA the backends' certificates chain to, and the name to verify. */
  readonly ca: string | null;
  readonly servername: string | null;
}

const DEFAULTS = {
  rate: "20",
  "timeout-ms": "45000",
  "slow-ms": "1000",
  "max-in-flight": "1024",
  "max-duration-ms": "900000",
};

function positive(value: string, flag: string, integer = true): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0 || (integer && !Number.isInteger(parsed))) {
    throw new LoadConfigError(`${flag}: expected a positive ${integer ? "integer" : "number"}, got ${value}`);
  }
  return parsed;
}

function parseHeaders(values: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const value of values) {
    const colon = value.indexOf(":");
    const name = value.slice(0, colon).trim().toLowerCase();
    if (colon <= 0 || !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) {
      throw new LoadConfigError(`--header: expected "name: value", got ${JSON.stringify(value)}`);
    }
    headers[name] = value.slice(colon + 1).trim();
  }
  return headers;
}

function checkTarget(target: string | undefined): string {
  let url: URL;
  try {
    url = new URL(target ?? "");
  } catch {
    throw new LoadConfigError(
      `--target: expected http://host:port/path or tls://host:port, got ${target ?? "(none)"}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "tls:") {
    throw new LoadConfigError(`--target: expected an http:// or tls:// URL, got ${url.protocol}`);
  }
  if (url.protocol === "tls:" && (url.port === "" || (url.pathname !== "" && url.pathname !== "/"))) {
    throw new LoadConfigError(`--target: a tls:// target is host:port with no path, got ${target ?? ""}`);
  }
  return url.href;
}

/** Parses the load command's flags; throws LoadConfigError naming the bad flag. */
export function parseLoadArgs(
  argv: readonly string[],
  readFile = (path: string) => readFileSync(path, "utf8"),
): LoadOptions {
  let values: Record<string, string | string[] | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        target: { type: "string" },
        rate: { type: "string", default: DEFAULTS.rate },
        header: { type: "string", multiple: true, default: [] },
        "timeout-ms": { type: "string", default: DEFAULTS["timeout-ms"] },
        "slow-ms": { type: "string", default: DEFAULTS["slow-ms"] },
        "max-in-flight": { type: "string", default: DEFAULTS["max-in-flight"] },
        "max-duration-ms": { type: "string", default: DEFAULTS["max-duration-ms"] },
        "duration-ms": { type: "string" },
        "progress-ms": { type: "string" },
        ca: { type: "string" },
        servername: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new LoadConfigError(error instanceof Error ? error.message : String(error));
  }
  const str = (key: string): string => String(values[key]);
  const target = checkTarget(values["target"] as string | undefined);
  const tls = target.startsWith("tls:");
  if (!tls && (values["ca"] !== undefined || values["servername"] !== undefined)) {
    throw new LoadConfigError("--ca/--servername: only for a tls:// target");
  }
  if (tls && values["ca"] === undefined) throw new LoadConfigError("--ca: required for a tls:// target");
  let ca: string | null = null;
  if (tls) {
    try {
      ca = readFile(str("ca"));
    } catch (error) {
      throw new LoadConfigError(
        `--ca: cannot read ${str("ca")}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  return {
    target,
    ratePerSecond: positive(str("rate"), "--rate", false),
    headers: parseHeaders(values["header"] as string[]),
    timeoutMs: positive(str("timeout-ms"), "--timeout-ms"),
    slowMs: positive(str("slow-ms"), "--slow-ms"),
    maxInFlight: positive(str("max-in-flight"), "--max-in-flight"),
    maxDurationMs: positive(str("max-duration-ms"), "--max-duration-ms"),
    durationMs: values["duration-ms"] === undefined ? null : positive(str("duration-ms"), "--duration-ms"),
    progressMs: values["progress-ms"] === undefined ? null : positive(str("progress-ms"), "--progress-ms"),
    ca,
    servername: tls ? ((values["servername"] as string | undefined) ?? new URL(target).hostname) : null,
  };
}

export interface FailureSample {
  /** Scheduled send time, ms after the load started. */
  readonly atMs: number;
  readonly status: number;
  readonly error: string;
}

export interface LoadSummary {
  readonly event: "summary";
  readonly target: string;
  readonly ratePerSecond: number;
  /** From the first scheduled request to the stop. */
  readonly durationMs: number;
  readonly requests: number;
  readonly failures: number;
  /** The first few failed requests. */
  readonly failureSamples: readonly FailureSample[];
  /** Distinct failure messages with counts, most frequent first (at most 10). */
  readonly errors: readonly { readonly error: string; readonly count: number }[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly slowMs: number;
  /** Successful requests answered later than slowMs. */
  readonly slow: number;
  /** Span from the first bad request's scheduled send to the last bad one's completion; 0 if none. */
  readonly recoverMs: number;
  /** Scheduled send time of the first bad request, ms after the start (null: none). */
  readonly firstBadAtMs: number | null;
  /** Completion of the last bad request, ms after the start (null: none). */
  readonly lastBadAtMs: number | null;
  /** Successful answers per server (the `server` of each answer). */
  readonly servedBy: Readonly<Record<string, number>>;
  /** How often the answering server changed between consecutive successful requests (schedule order). */
  readonly switches: number;
  /** Requests still unanswered when the load stopped (counted as failures too). */
  readonly unfinished: number;
  /**
   * The slowest answered requests, slowest first (at most 5): when each was scheduled (ms after the
   * start), its latency, how late the client itself sent it (event-loop lag in the client pod) and who
   * answered. Tells a tail caused by the path from one caused by the client's own machine.
   */
  readonly slowest?: readonly SlowRequest[];
  /** tls:// only: the certificate each backend presented (SHA-256 fingerprint), by backend name. */
  readonly peers?: Readonly<Record<string, string>>;
  /**
   * Only when answers carried a `certSerial` (HTTPS policy servers behind the target): successful
   * answers by the serial of the certificate the deciding server presented on its connection.
   */
  readonly certificates?: Readonly<Record<string, CertificateSeen>>;
}

/** Successful answers under one server certificate; times are completions, ms after the start. */
export interface CertificateSeen {
  readonly answers: number;
  readonly firstAtMs: number;
  readonly lastAtMs: number;
  /** The first such answer from each server. */
  readonly firstByServer: Readonly<Record<string, number>>;
}

export interface SlowRequest {
  readonly atMs: number;
  readonly latencyMs: number;
  readonly lateMs: number;
  readonly server: string | null;
}

const SAMPLES = 5;

/**
 * Summarizes the records of one load run. `startAt` and `endAt` are the run's window on the same
 * clock as the records. A record without an answer (doneAt 0) is an unfinished failure.
 */
export function summarizeLoad(
  records: readonly RequestRecord[],
  window: { readonly startAt: number; readonly endAt: number },
  options: { readonly slowMs: number; readonly target: string; readonly ratePerSecond: number },
): LoadSummary {
  const ordered = [...records].sort((a, b) => a.intendedAt - b.intendedAt);
  const answered = ordered.filter((r) => r.doneAt > 0);
  const latencies = Float64Array.from(answered.map((r) => r.doneAt - r.intendedAt)).sort();
  const failed = ordered.filter((r) => !r.ok || r.doneAt === 0);
  const errorOf = (r: RequestRecord): string =>
    r.doneAt === 0 ? "unfinished: no answer before the stop" : (r.error ?? `status ${r.status}`);
  const errors = new Map<string, number>();
  for (const r of failed) errors.set(errorOf(r), (errors.get(errorOf(r)) ?? 0) + 1);
  const isSlow = (r: RequestRecord): boolean => r.doneAt > 0 && r.doneAt - r.intendedAt > options.slowMs;
  const bad = ordered.filter((r) => !r.ok || r.doneAt === 0 || isSlow(r));
  const firstBad = bad[0];
  // The last to *complete*; an unfinished request counts as completing at the stop.
  const lastBadDone = bad.reduce(
    (latest, r) => Math.max(latest, r.doneAt === 0 ? window.endAt : r.doneAt),
    -Infinity,
  );
  const servedBy: Record<string, number> = {};
  let switches = 0;
  let previous: string | null = null;
  for (const r of ordered) {
    if (!r.ok || r.doneAt === 0) continue;
    const server = r.server ?? "?";
    servedBy[server] = (servedBy[server] ?? 0) + 1;
    if (previous !== null && previous !== server) switches++;
    previous = server;
  }
  const certificates = certificatesSeen(answered, window.startAt);
  return {
    event: "summary",
    target: options.target,
    ratePerSecond: options.ratePerSecond,
    durationMs: round(window.endAt - window.startAt),
    requests: ordered.length,
    failures: failed.length,
    failureSamples: failed
      .slice(0, SAMPLES)
      .map((r) => ({ atMs: round(r.intendedAt - window.startAt), status: r.status, error: errorOf(r) })),
    errors: [...errors]
      .map(([error, count]) => ({ error, count }))
      .sort((a, b) => b.count - a.count)
      .slice(0, 10),
    p50Ms: round(percentile(latencies, 0.5)),
    p99Ms: round(percentile(latencies, 0.99)),
    maxMs: round(latencies.length === 0 ? 0 : (latencies[latencies.length - 1] ?? 0)),
    slowMs: options.slowMs,
    slow: ordered.filter((r) => r.ok && isSlow(r)).length,
    recoverMs: firstBad === undefined ? 0 : round(lastBadDone - firstBad.intendedAt),
    firstBadAtMs: firstBad === undefined ? null : round(firstBad.intendedAt - window.startAt),
    lastBadAtMs: firstBad === undefined ? null : round(lastBadDone - window.startAt),
    servedBy,
    switches,
    unfinished: ordered.filter((r) => r.doneAt === 0).length,
    slowest: [...answered]
      .sort((a, b) => b.doneAt - b.intendedAt - (a.doneAt - a.intendedAt))
      .slice(0, SAMPLES)
      .map((r) => ({
        atMs: round(r.intendedAt - window.startAt),
        latencyMs: round(r.doneAt - r.intendedAt),
        lateMs: round(r.sentAt - r.intendedAt),
        server: r.server,
      })),
    ...(certificates === undefined ? {} : { certificates }),
  };
}

function certificatesSeen(
  answered: readonly RequestRecord[],
  startAt: number,
): Record<string, CertificateSeen> | undefined {
  const seen = new Map<
    string,
    { answers: number; first: number; last: number; byServer: Map<string, number> }
  >();
  for (const r of answered) {
    if (!r.ok || r.certSerial === undefined || r.certSerial === null) continue;
    let entry = seen.get(r.certSerial);
    if (entry === undefined) {
      entry = { answers: 0, first: r.doneAt, last: r.doneAt, byServer: new Map() };
      seen.set(r.certSerial, entry);
    }
    entry.answers++;
    entry.first = Math.min(entry.first, r.doneAt);
    entry.last = Math.max(entry.last, r.doneAt);
    const server = r.server ?? "?";
    entry.byServer.set(server, Math.min(entry.byServer.get(server) ?? Infinity, r.doneAt));
  }
  if (seen.size === 0) return undefined;
  return Object.fromEntries(
    [...seen].map(([serial, e]) => [
      serial,
      {
        answers: e.answers,
        firstAtMs: round(e.first - startAt),
        lastAtMs: round(e.last - startAt),
        firstByServer: Object.fromEntries(
          [...e.byServer].map(([server, at]) => [server, round(at - startAt)]),
        ),
      },
    ]),
  );
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** The exchange for a tls:// target: one verified TLS connection per request; records who answered. */
function tlsLoadExchange(options: LoadOptions, peers: Map<string, string>): Exchange {
  const url = new URL(options.target);
  const target: TlsTarget = {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: Number(url.port),
    ca: options.ca ?? "",
    servername: options.servername ?? url.hostname,
  };
  return async (timeoutMs) => {
    const result = await tlsExchange(target, timeoutMs);
    if (result.error !== null) return { status: 0, server: result.server, error: result.error };
    const known = peers.get(result.server);
    if (known !== undefined && known !== result.fingerprint256) {
      return {
        status: 0,
        server: result.server,
        error: `${result.server} presented another certificate (${result.fingerprint256}, before ${known})`,
      };
    }
    peers.set(result.server, result.fingerprint256);
    return { status: 200, server: result.server, error: null };
  };
}

/** A progress line: requests scheduled so far, failed so far, successful answers per server. */
export function progressOf(records: readonly RequestRecord[]): {
  event: "progress";
  requests: number;
  failures: number;
  servedBy: Record<string, number>;
} {
  const servedBy: Record<string, number> = {};
  let failures = 0;
  for (const r of records) {
    if (r.ok) servedBy[r.server ?? "?"] = (servedBy[r.server ?? "?"] ?? 0) + 1;
    else if (r.doneAt > 0) failures++;
  }
  return { event: "progress", requests: records.length, failures, servedBy };
}

export interface LoadIo {
  readonly input: Readable;
  readonly output: Writable;
  /** Resolves when the process is asked to stop (SIGTERM/SIGINT); optional. */
  readonly signal?: Promise<void>;
}

/** Waits for "stop", the end of `input`, `signal`, or `ms`, whichever is first. */
async function untilStop(io: LoadIo, options: LoadOptions): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const reasons: Promise<string>[] = [
    new Promise((resolve) => {
      timer = setTimeout(() => {
        resolve(options.durationMs === null ? "max-duration" : "duration");
      }, options.durationMs ?? options.maxDurationMs);
    }),
  ];
  let lines: ReturnType<typeof createInterface> | undefined;
  if (options.durationMs === null) {
    lines = createInterface({ input: io.input, crlfDelay: Infinity });
    const reader = lines;
    reasons.push(
      new Promise((resolve) => {
        reader.on("line", (line) => {
          if (line.trim() === "stop") resolve("stop");
        });
        reader.on("close", () => {
          resolve("stdin closed");
        });
      }),
    );
  }
  if (io.signal !== undefined) reasons.push(io.signal.then(() => "signal"));
  try {
    return await Promise.race(reasons);
  } finally {
    clearTimeout(timer);
    lines?.close();
  }
}

/** Runs the load until told to stop, writes the started and summary lines, returns the summary. */
export async function runLoad(options: LoadOptions, io: LoadIo): Promise<LoadSummary> {
  const peers = new Map<string, string>();
  const common = {
    ratePerSecond: options.ratePerSecond,
    maxInFlight: options.maxInFlight,
    requestTimeoutMs: options.timeoutMs,
  };
  let traffic: ConstantRateTraffic;
  if (options.target.startsWith("tls:")) {
    traffic = new ConstantRateTraffic({ ...common, exchange: tlsLoadExchange(options, peers) });
  } else {
    const url = new URL(options.target);
    traffic = new ConstantRateTraffic({
      ...common,
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      headers: options.headers,
    });
  }
  const startAt = performance.now();
  traffic.start();
  io.output.write(
    JSON.stringify({ event: "started", target: options.target, ratePerSecond: options.ratePerSecond }) + "\n",
  );
  const progress =
    options.progressMs === null
      ? undefined
      : setInterval(() => {
          io.output.write(JSON.stringify(progressOf(traffic.records)) + "\n");
        }, options.progressMs);
  const reason = await untilStop(io, options);
  clearInterval(progress);
  const endAt = performance.now();
  await traffic.stop();
  const summary: LoadSummary = {
    ...summarizeLoad(traffic.records, { startAt, endAt }, options),
    ...(options.target.startsWith("tls:") ? { peers: Object.fromEntries(peers) } : {}),
  };
  await new Promise<void>((resolve) => {
    io.output.write(JSON.stringify({ ...summary, stoppedBy: reason }) + "\n", () => {
      resolve();
    });
  });
  return summary;
}

/** The command line: exit 2 naming a bad flag; otherwise run, print, exit 0. */
export async function runLoadCli(argv: readonly string[]): Promise<void> {
  let options: LoadOptions;
  try {
    options = parseLoadArgs(argv);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const signal = new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  await runLoad(options, { input: process.stdin, output: process.stdout, signal });
  process.exit(0);
}
