// The access loggers of one listener (HCM or tcp_proxy access_log) and the record of one HTTP
// request they log. Nothing here runs unless the listener has access_log entries: the listener
// checks `accessLog !== undefined` once per request, so the hot path without logs is unchanged.
import { closeSync, createWriteStream, openSync, statSync, type WriteStream } from "node:fs";
import {
  DEFAULT_TEXT_FORMAT,
  FILE_ACCESS_LOG_TYPE,
  jsonFormatter,
  responseFlagsString,
  RESPONSE_FLAGS,
  STDERR_ACCESS_LOG_TYPE,
  textFormatter,
  type AccessLogConfig,
  type AccessLogEntry,
  type AccessLogFormatter,
  type LogFormatConfig,
  type ResponseFlag,
} from "@tether/envoy";
import { TetherError } from "../errors.ts";

type Write = (line: string) => void;

/** One stream per file path for the whole process: loggers rebuilt by a reload append to the same one. */
const files = new Map<string, WriteStream>();

/**
 * Opens (creates) each access log file a listener's config names that is not open yet, so a path
 * that cannot be written refuses the config with its name (at start: exit 1; on reload: the running
 * config stays) instead of leaving a listener whose log goes nowhere. Throws a TetherError.
 */
export function checkAccessLogFiles(listener: string, configs: readonly AccessLogConfig[]): void {
  for (const c of configs) {
    const t = c.typed_config;
    if (t["@type"] !== FILE_ACCESS_LOG_TYPE || t.path === "/dev/stdout" || t.path === "/dev/stderr") continue;
    if (files.has(t.path)) continue;
    try {
      // Only a regular file (or none yet) is opened here: opening a named pipe with no reader (a
      // log shipper not started yet) would block the whole process. Such a path opens later, off the
      // main thread, as before.
      const existing = statSync(t.path, { throwIfNoEntry: false });
      if (existing !== undefined && !existing.isFile()) continue;
      closeSync(openSync(t.path, "a"));
    } catch (err) {
      throw new TetherError(
        "TETHER_ERR_ACCESS_LOG",
        `listener "${listener}": access log ${t.path} cannot be opened for writing: ${(err as Error).message}`,
      );
    }
  }
}

function sink(config: AccessLogConfig["typed_config"]): Write {
  if (config["@type"] === FILE_ACCESS_LOG_TYPE) {
    if (config.path === "/dev/stdout") return (line) => process.stdout.write(line);
    if (config.path === "/dev/stderr") return (line) => process.stderr.write(line);
    let stream = files.get(config.path);
    if (stream === undefined) {
      stream = createWriteStream(config.path, { flags: "a" });
      // A log that cannot be written must not take the proxy down; the error is reported once.
      stream.on("error", (err) => {
        process.stderr.write(`access log ${config.path}: ${err.message}\n`);
      });
      files.set(config.path, stream);
    }
    const s = stream;
    return (line) => s.write(line);
  }
  if (config["@type"] === STDERR_ACCESS_LOG_TYPE) return (line) => process.stderr.write(line);
  return (line) => process.stdout.write(line);
}

function formatter(format: LogFormatConfig | undefined): AccessLogFormatter {
  if (format?.json_format !== undefined) return jsonFormatter(format.json_format);
  return textFormatter(format?.text_format_source?.inline_string ?? DEFAULT_TEXT_FORMAT);
}

export class AccessLogs {
  private readonly loggers: readonly { readonly format: AccessLogFormatter; readonly write: Write }[];

  private constructor(configs: readonly AccessLogConfig[]) {
    this.loggers = configs.map((c) => ({
      format: formatter(c.typed_config.log_format),
      write: sink(c.typed_config),
    }));
  }

  /** undefined when there is nothing to log: callers skip all access-log work. */
  static of(configs: readonly AccessLogConfig[]): AccessLogs | undefined {
    return configs.length === 0 ? undefined : new AccessLogs(configs);
  }

  log(entry: AccessLogEntry): void {
    for (const l of this.loggers) l.write(l.format.format(entry));
  }
}

/** What the proxy tells the record about the upstream side. */
export interface UpstreamFacts {
  readonly upstreamHost: string | undefined;
  readonly upstreamCluster: string | undefined;
  readonly upstreamAttempts: number;
  readonly responseFlagBits: number;
}

function address(ip: string | undefined, port: number | undefined): string | undefined {
  if (ip === undefined || port === undefined) return undefined;
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** What a record reads from a downstream request (the HTTP listener's request object). */
export interface LoggedRequest {
  readonly httpVersion: string;
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>> & { readonly host?: string };
  readonly socket: {
    readonly remoteAddress?: string | undefined;
    readonly remotePort?: number | undefined;
    readonly localAddress?: string | undefined;
    readonly localPort?: number | undefined;
  };
  /** Body bytes read so far (also those read while the request waited behind a pipelined one). */
  readonly bodyBytes: number;
}

/** What a record reads from the response to it. */
export interface LoggedResponse {
  readonly headersSent: boolean;
  readonly statusCode: number;
  readonly writableFinished: boolean;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  once(event: "close", listener: () => void): unknown;
  getHeader(name: string): string | undefined;
}

/**
 * One HTTP request, logged when its response closes. Body bytes are counted where the server hands
 * them over (the request's own count, the response's write/end) on this request's objects only.
 */
export class HttpAccessRecord implements AccessLogEntry {
  readonly startTimeMs = Date.now();
  private readonly startedAt = performance.now();
  readonly protocol: string;
  bytesReceived = 0;
  bytesSent = 0;
  durationMs = 0;
  responseCode: number | undefined;
  responseFlags: string | undefined;
  private flagBits = 0;
  routeName: string | undefined;
  upstream: UpstreamFacts | undefined;
  readonly connectionId: number | undefined;
  readonly downstreamRemoteAddress: string | undefined;
  readonly downstreamLocalAddress: string | undefined;
  private readonly req: LoggedRequest;
  private readonly res: LoggedResponse;

  constructor(req: LoggedRequest, res: LoggedResponse, connectionId: number | undefined, logs: AccessLogs) {
    this.req = req;
    this.res = res;
    this.protocol = `HTTP/${req.httpVersion}`;
    this.connectionId = connectionId;
    const s = req.socket;
    this.downstreamRemoteAddress = address(s.remoteAddress, s.remotePort);
    this.downstreamLocalAddress = address(s.localAddress, s.localPort);
    const count = (chunk: unknown): void => {
      if (typeof chunk === "string") this.bytesSent += Buffer.byteLength(chunk);
      else if (chunk instanceof Uint8Array) this.bytesSent += chunk.byteLength;
    };
    const write = res.write.bind(res);
    res.write = (chunk: Buffer | string): boolean => {
      count(chunk);
      return write(chunk);
    };
    const end = res.end.bind(res);
    res.end = (chunk?: Buffer | string): unknown => {
      count(chunk);
      return end(chunk);
    };
    res.once("close", () => {
      this.finish();
      logs.log(this);
    });
  }

  flag(name: ResponseFlag): void {
    this.flagBits |= RESPONSE_FLAGS[name];
  }

  get upstreamHost(): string | undefined {
    return this.upstream?.upstreamHost;
  }

  get upstreamCluster(): string | undefined {
    return this.upstream?.upstreamCluster;
  }

  get upstreamAttempts(): number {
    return this.upstream?.upstreamAttempts ?? 0;
  }

  private finish(): void {
    this.durationMs = Math.floor(performance.now() - this.startedAt);
    this.bytesReceived = this.req.bodyBytes;
    const res = this.res;
    // Envoy's 0: no response was started (the client went away first).
    this.responseCode = res.headersSent ? res.statusCode : 0;
    let bits = this.flagBits | (this.upstream?.responseFlagBits ?? 0);
    if (!res.writableFinished) bits |= RESPONSE_FLAGS.DC;
    this.responseFlags = responseFlagsString(bits);
  }

  requestHeader(name: string): string | undefined {
    const req = this.req;
    switch (name) {
      case ":method":
        return req.method;
      case ":path":
        return req.url;
      case ":authority":
        return req.headers.host;
      case ":scheme":
        return "http";
    }
    const v = req.headers[name];
    return Array.isArray(v) ? v.join(",") : v;
  }

  responseHeader(name: string): string | undefined {
    if (name === ":status") return this.res.headersSent ? String(this.res.statusCode) : undefined;
    return this.res.getHeader(name);
  }
}

/** One tcp_proxy downstream connection, logged when it closes. */
export interface TcpAccessFacts {
  readonly startTimeMs: number;
  readonly durationMs: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly upstreamHost: string | undefined;
  readonly upstreamCluster: string | undefined;
  readonly upstreamAttempts: number;
  readonly responseFlagBits: number;
  readonly connectionId: number | undefined;
  readonly downstreamRemoteAddress: string | undefined;
  readonly downstreamLocalAddress: string | undefined;
}

export function tcpEntry(f: TcpAccessFacts): AccessLogEntry {
  return {
    ...f,
    protocol: undefined,
    responseCode: undefined,
    responseFlags: responseFlagsString(f.responseFlagBits),
    routeName: undefined,
    requestHeader: () => undefined,
    responseHeader: () => undefined,
  };
}

export { address as socketAddressString };
