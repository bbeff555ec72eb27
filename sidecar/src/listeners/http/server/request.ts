// A downstream request as the parser delivered it: method, target and raw headers, and its body as a
// small event source (data / end / close / error, pause / resume) instead of a node:stream Readable.
// Body chunks wait here until someone listens for "data"; too many of them stop the socket's reads.
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";

/** What the request needs from its connection: read back-pressure for its body. */
export interface BodySource {
  pauseReading(): void;
  resumeReading(): void;
}

/** Body bytes held for a consumer that has not started reading before the socket's reads stop. */
const BODY_HIGH_WATER_MARK = 64 * 1024;

// Node keeps the first of these when a request repeats them (IncomingMessage's rules).
const FIRST_WINS = new Set([
  "content-type",
  "content-length",
  "user-agent",
  "referer",
  "host",
  "authorization",
  "proxy-authorization",
  "if-modified-since",
  "if-unmodified-since",
  "from",
  "location",
  "max-forwards",
  "retry-after",
  "etag",
  "last-modified",
  "server",
  "age",
  "expires",
]);

export type RequestHeaders = Record<string, string | string[] | undefined> & {
  host?: string;
  cookie?: string;
  expect?: string;
};

/** The headers as an object keyed by lower-cased name, with node:http's rules for repeats. */
export function headerObject(raw: readonly string[]): RequestHeaders {
  const out: RequestHeaders = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] ?? "").toLowerCase();
    const value = raw[i + 1] ?? "";
    const seen = out[name];
    if (seen === undefined) out[name] = name === "set-cookie" ? [value] : value;
    else if (Array.isArray(seen)) seen.push(value);
    else if (!FIRST_WINS.has(name)) out[name] = `${seen}${name === "cookie" ? "; " : ", "}${value}`;
  }
  return out;
}

function flowNT(req: DownstreamRequest): void {
  req.flow();
}

export class DownstreamRequest extends EventEmitter {
  method: string;
  url: string;
  readonly rawHeaders: string[];
  readonly httpVersion: string;
  readonly socket: Socket;
  /** The whole message (head and body) has been read. */
  complete = false;
  /** The Upgrade header's value when the request asks to switch protocols (Connection: upgrade). */
  upgrade: string | undefined = undefined;
  /** Body bytes read from the connection so far (the access log's %BYTES_RECEIVED%). */
  bodyBytes = 0;
  /** The request broke off (its connection closed or failed) before it was complete. */
  destroyed = false;
  private readonly source: BodySource;
  private parsedHeaders: RequestHeaders | undefined;
  /** Reading: 0 not yet asked for (chunks held), 1 flowing, 2 dropped (nobody wants the body). */
  private mode = 0;
  private paused = false;
  private held: Buffer[] | undefined;
  private heldBytes = 0;
  private readingStopped = false;
  private flowScheduled = false;
  private endEmitted = false;

  constructor(
    method: string,
    url: string,
    rawHeaders: string[],
    httpVersion: string,
    socket: Socket,
    source: BodySource,
  ) {
    super();
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.httpVersion = httpVersion;
    this.socket = socket;
    this.source = source;
  }

  /** Built on first use: most requests are routed from the raw list alone. */
  get headers(): RequestHeaders {
    return (this.parsedHeaders ??= headerObject(this.rawHeaders));
  }

  /** A body chunk from the parser, or null at the end of the message (the access log counts these). */
  push(chunk: Buffer | null): boolean {
    if (chunk === null) {
      this.complete = true;
      if (this.mode !== 0 && !this.paused && this.held === undefined) this.emitEnd();
      return true;
    }
    this.bodyBytes += chunk.length;
    if (this.mode === 2) return true;
    if (this.mode === 1 && !this.paused && this.held === undefined) {
      this.emit("data", chunk);
      return true;
    }
    (this.held ??= []).push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > BODY_HIGH_WATER_MARK && !this.readingStopped) {
      this.readingStopped = true;
      this.source.pauseReading();
    }
    return false;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    super.on(event, listener);
    // As a Readable: listening for data starts the flow unless the reader paused it.
    if (event === "data" && this.mode === 0) this.resume();
    return this;
  }

  /** Starts (or restarts) delivering the body; without "data" listeners it is read and dropped. */
  resume(): this {
    this.paused = false;
    if (this.mode === 0) this.mode = this.listenerCount("data") > 0 ? 1 : 2;
    if (this.mode === 2) {
      this.held = undefined;
      this.heldBytes = 0;
    }
    if (!this.flowScheduled && (this.held !== undefined || this.readingStopped || this.complete)) {
      this.flowScheduled = true;
      process.nextTick(flowNT, this);
    }
    return this;
  }

  pause(): this {
    if (this.mode === 1) this.paused = true;
    return this;
  }

  /** Delivers held chunks (a tick after resume, as a Readable does), then the end. */
  flow(): void {
    this.flowScheduled = false;
    const held = this.held;
    this.held = undefined;
    this.heldBytes = 0;
    const rest = held === undefined ? undefined : this.deliver(held);
    if (rest !== undefined) {
      this.held = rest;
      for (const c of rest) this.heldBytes += c.length;
      return;
    }
    if (this.paused) return;
    if (this.readingStopped) {
      this.readingStopped = false;
      this.source.resumeReading();
    }
    if (this.complete) this.emitEnd();
  }

  /** Emits `held` in order until the reader pauses; returns what is left then. */
  private deliver(held: Buffer[]): Buffer[] | undefined {
    for (let i = 0; i < held.length; i++) {
      if (this.mode !== 1) return undefined; // dropped meanwhile
      if (this.paused) return held.slice(i);
      this.emit("data", held[i]);
    }
    return undefined;
  }

  private emitEnd(): void {
    if (this.endEmitted) return;
    this.endEmitted = true;
    this.emit("end");
  }

  /** The connection broke before the request was complete: "error" (when listened for), then "close". */
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.held = undefined;
    if (err !== undefined && this.listenerCount("error") > 0) this.emit("error", err);
    this.emit("close");
    return this;
  }
}
