// One downstream HTTP/1.1 connection on a plain socket, read by llhttp: the parser node:http uses,
// strict as node:http runs it (no lenient flags), so framing errors (both Content-Length and
// Transfer-Encoding, bad chunk sizes, obs-fold...) are refused exactly as before. Pipelined requests
// are answered in order: a response waits until the one before it went out.
import type { Socket } from "node:net";
import { DownstreamRequest, type BodySource } from "./request.ts";
import { DownstreamResponse, type ResponseSink } from "./response.ts";

/** llhttp as node:http binds it (node:_http_common's HTTPParser). */
interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseError;
  finish(): ParseError | undefined;
  close(): void;
  session: Http1Session | undefined;
  [callback: number]: unknown;
}

export type ParseError = Error & { code?: string; bytesParsed?: number };

interface HttpCommon {
  HTTPParser: {
    new (): LlhttpParser;
    REQUEST: number;
    kOnMessageBegin: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kLenientNone: number;
  };
  methods: readonly string[];
}

let httpCommon: HttpCommon | undefined;
/**
 * node:_http_common, loaded at the first connection rather than at import: the sidecar's start-up
 * snapshot is built with every module evaluated, and the parser's native binding cannot be in it.
 */
function llhttp(): HttpCommon {
  return (httpCommon ??= process.getBuiltinModule("node:_http_common") as HttpCommon);
}

/** What a connection reports to its server's user (the HTTP listener). */
export interface Http1Handler {
  onConnection(socket: Socket): void;
  onRequest(req: DownstreamRequest, res: DownstreamResponse): void;
  /** A parse error, a socket error, or ERR_HTTP_REQUEST_TIMEOUT (node:http's clientError). */
  onClientError(err: NodeJS.ErrnoException, socket: Socket): void;
  /** No bytes either way for the socket's timeout. */
  onTimeout(socket: Socket): void;
  /** A CONNECT request: the socket is the handler's from here on. */
  onConnect(req: DownstreamRequest, socket: Socket): void;
}

/** What a session needs from its server. */
export interface SessionOwner {
  readonly handler: Http1Handler;
  onSessionClosed(session: Http1Session): void;
}

const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/** Pipelined responses waiting behind the one going out before the socket's reads stop. */
const MAX_QUEUED_RESPONSES = 32;

class RequestTimeoutError extends Error {
  readonly code = "ERR_HTTP_REQUEST_TIMEOUT";
}

// The parser's callbacks are shared functions: `this` is the parser, which knows its session.
function onMessageBegin(this: LlhttpParser): number {
  this.session?.onMessageBegin();
  return 0;
}

function onHeaders(this: LlhttpParser, headers: string[], url: string): void {
  this.session?.onHeaders(headers, url);
}

function onHeadersComplete(
  this: LlhttpParser,
  major: number,
  minor: number,
  headers: string[] | undefined,
  method: number,
  url: string | undefined,
  _status: unknown,
  _reason: unknown,
  _upgrade: boolean,
  keepAlive: boolean,
): number {
  return this.session?.onHeadersComplete(major, minor, headers, method, url, keepAlive) ?? 0;
}

function onBody(this: LlhttpParser, chunk: Buffer): void {
  this.session?.incoming?.push(chunk);
}

function onMessageComplete(this: LlhttpParser): void {
  this.session?.onMessageComplete();
}

function hasHost(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === "host") return (raw[i + 1] ?? "") !== "";
  }
  return false;
}

function expectation(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 6 && name.toLowerCase() === "expect") return raw[i + 1];
  }
  return undefined;
}

export class Http1Session implements BodySource, ResponseSink {
  readonly socket: Socket;
  private readonly owner: SessionOwner;
  private readonly parser: LlhttpParser;
  /** The request whose message is being read (head seen, body not complete). */
  incoming: DownstreamRequest | undefined;
  /** Responses not finished yet, oldest (the one being written) first. */
  private readonly queue: DownstreamResponse[] = [];
  private headerParts: string[] = [];
  private urlPart = "";
  /** As node:http: a message is being read (from accept, or its first byte) until it is complete. */
  active = true;
  /** The head of the message being read has not completed. */
  headersPending = true;
  messageStart = performance.now();
  /** Timed out once (request_headers_timeout / request_timeout): not checked again. */
  expired = false;
  private stopped = false;
  private errorReported = false;
  /** Reads stopped: a request body's reader is behind / too many pipelined responses wait. */
  private bodyPaused = false;
  private pipelinePaused = false;
  private closedAfterResponse = false;
  private readonly onFlushed = (err?: Error | null): void => {
    if (err == null) this.responseFlushed();
  };

  constructor(socket: Socket, owner: SessionOwner, maxHeaderSize: number) {
    this.socket = socket;
    this.owner = owner;
    const { HTTPParser } = llhttp();
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, maxHeaderSize, HTTPParser.kLenientNone);
    parser[HTTPParser.kOnMessageBegin] = onMessageBegin;
    parser[HTTPParser.kOnHeaders] = onHeaders;
    parser[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
    parser[HTTPParser.kOnBody] = onBody;
    parser[HTTPParser.kOnMessageComplete] = onMessageComplete;
    parser.session = this;
    this.parser = parser;
    socket.on("data", (data: Buffer) => {
      this.onData(data);
    });
    socket.on("end", () => {
      this.onEnd();
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      this.reportError(err);
    });
    socket.on("timeout", () => {
      this.owner.handler.onTimeout(socket);
    });
    socket.on("drain", () => {
      this.queue[0]?.emit("drain");
    });
    socket.once("close", () => {
      this.onClose();
    });
  }

  /** No request in progress and no response going out (node:http's idle connection). */
  get idle(): boolean {
    return !this.active && !this.expired && this.queue.length === 0;
  }

  /** The response being written has sent its head (a 400 now would land inside it). */
  get responseUnderWay(): boolean {
    return this.queue[0]?.headersSent === true;
  }

  private onData(data: Buffer): void {
    if (this.stopped) return;
    const ret = this.parser.execute(data);
    if (typeof ret !== "number") {
      this.stopped = true;
      // Bytes after a request that asked for Connection: close are ignored (RFC 9112 §9.6): its
      // response still goes out, then the connection closes. Any other parse error is the client's.
      if (ret.code !== "HPE_CLOSED_CONNECTION") this.reportError(ret);
    }
  }

  private onEnd(): void {
    if (!this.stopped) {
      const err = this.parser.finish();
      if (err !== undefined) {
        this.stopped = true;
        this.reportError(err);
        return;
      }
    }
    // As node:http (no half-open HTTP): the client's FIN ends the connection.
    this.incoming?.destroy(new Error("aborted"));
    if (this.socket.writable) this.socket.end();
  }

  private reportError(err: NodeJS.ErrnoException): void {
    if (this.errorReported) return;
    this.errorReported = true;
    this.owner.handler.onClientError(err, this.socket);
  }

  /** request_headers_timeout / request_timeout passed for the message being read. */
  timedOut(): void {
    this.expired = true;
    this.active = false;
    this.reportError(new RequestTimeoutError("request timeout"));
  }

  onMessageBegin(): void {
    this.active = true;
    this.headersPending = true;
    this.messageStart = performance.now();
    this.headerParts = [];
    this.urlPart = "";
  }

  onHeaders(headers: string[], url: string): void {
    for (const h of headers) this.headerParts.push(h);
    this.urlPart += url;
  }

  onHeadersComplete(
    major: number,
    minor: number,
    parsedHeaders: string[] | undefined,
    methodIndex: number,
    parsedUrl: string | undefined,
    keepAlive: boolean,
  ): number {
    this.headersPending = false;
    let headers = parsedHeaders;
    if (headers === undefined || this.headerParts.length > 0) {
      headers = this.headerParts.concat(headers ?? []);
      this.headerParts = [];
    }
    const url = this.urlPart + (parsedUrl ?? "");
    this.urlPart = "";
    const method = llhttp().methods[methodIndex] ?? "GET";
    const socket = this.socket;
    const req = new DownstreamRequest(method, url, headers, `${major}.${minor}`, socket, this);
    this.incoming = req;
    if (method === "CONNECT") {
      // No body and no response from here: the socket goes to the handler (after execute returns).
      this.stopped = true;
      process.nextTick(connectNT, this, req);
      return 2;
    }
    const res = new DownstreamResponse(req, this, keepAlive);
    const queue = this.queue;
    queue.push(res);
    res.attached = queue.length === 1;
    if (queue.length > MAX_QUEUED_RESPONSES && !this.pipelinePaused) {
      this.pipelinePaused = true;
      this.socket.pause();
    }
    if (this.closedAfterResponse) return 0; // answered by nobody: the socket is ending
    const http11 = major === 1 && minor === 1;
    if (http11 && !hasHost(headers)) {
      // node:http's requireHostHeader: refused before anyone sees the request.
      res.shouldKeepAlive = false;
      res.writeHead(400, ["Connection", "close"]);
      res.end();
      return 0;
    }
    const expect = http11 ? expectation(headers) : undefined;
    if (expect !== undefined) {
      if (!CONTINUE.test(expect)) {
        res.writeHead(417, ["Content-Length", "0"]);
        res.end();
        return 0;
      }
      res.writeContinue();
    }
    this.owner.handler.onRequest(req, res);
    return 0;
  }

  onMessageComplete(): void {
    this.active = false;
    const req = this.incoming;
    this.incoming = undefined;
    req?.push(null);
  }

  connect(req: DownstreamRequest): void {
    this.owner.handler.onConnect(req, this.socket);
  }

  // ---- BodySource ---------------------------------------------------------------------------------

  pauseReading(): void {
    this.bodyPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    this.bodyPaused = false;
    if (!this.pipelinePaused) this.socket.resume();
  }

  // ---- ResponseSink -------------------------------------------------------------------------------

  writeOut(
    res: DownstreamResponse,
    head: string | undefined,
    body: Buffer | string | undefined,
    tail: string | undefined,
    final: boolean,
  ): boolean {
    const socket = this.socket;
    if (socket.destroyed || res !== this.queue[0]) return false;
    const cb = final ? this.onFlushed : undefined;
    let ok = true;
    if (head !== undefined && body === undefined && tail === undefined)
      return socket.write(head, "latin1", cb);
    if (head === undefined && tail === undefined) {
      if (body === undefined) {
        if (final) process.nextTick(flushedNT, this);
        return true;
      }
      return typeof body === "string" ? socket.write(body, "utf8", cb) : socket.write(body, cb);
    }
    socket.cork();
    if (head !== undefined) socket.write(head, "latin1");
    if (body !== undefined) {
      const bodyCb = tail === undefined ? cb : undefined;
      ok = typeof body === "string" ? socket.write(body, "utf8", bodyCb) : socket.write(body, bodyCb);
    }
    if (tail !== undefined) ok = socket.write(tail, "latin1", cb);
    socket.uncork();
    return ok;
  }

  destroyConnection(): void {
    this.socket.destroy();
  }

  /** The head response's last byte reached the kernel: the next one may write, or the socket ends. */
  responseFlushed(): void {
    const res = this.queue[0];
    if (res === undefined || !res.writableEnded || res.writableFinished) return;
    res.writableFinished = true;
    res.attached = false;
    this.queue.shift();
    if (this.pipelinePaused && this.queue.length <= MAX_QUEUED_RESPONSES / 2) {
      this.pipelinePaused = false;
      if (!this.bodyPaused) this.socket.resume();
    }
    const req = res.req;
    // A body nobody reads (a local reply before it) is read and dropped, so the next request can come.
    if (!req.complete && req.listenerCount("data") === 0) req.resume();
    if (res.closesConnection) {
      this.closedAfterResponse = true;
      this.socket.end();
    } else {
      const next = this.queue[0];
      if (next !== undefined) this.attach(next);
    }
    res.emit("close");
  }

  /** A queued (pipelined) response reaches the head of the line: what it wrote so far goes out. */
  private attach(res: DownstreamResponse): void {
    res.attached = true;
    const pending = res.pending;
    res.pending = undefined;
    if (pending === undefined || pending.length === 0) {
      if (res.writableEnded) process.nextTick(flushedNT, this);
      return;
    }
    const socket = this.socket;
    socket.cork();
    for (let i = 0; i < pending.length; i++) {
      const piece = pending[i] as string | Buffer;
      const cb = res.writableEnded && i === pending.length - 1 ? this.onFlushed : undefined;
      if (typeof piece === "string") socket.write(piece, "latin1", cb);
      else socket.write(piece, cb);
    }
    socket.uncork();
  }

  private onClose(): void {
    this.stopped = true;
    this.incoming?.destroy(new Error("aborted"));
    this.incoming = undefined;
    const queue = this.queue.splice(0);
    for (const res of queue) {
      res.destroyed = true;
      res.emit("close");
    }
    this.parser.session = undefined;
    this.parser.close();
    this.owner.onSessionClosed(this);
  }
}

function connectNT(session: Http1Session, req: DownstreamRequest): void {
  session.connect(req);
}

function flushedNT(session: Http1Session): void {
  session.responseFlushed();
}
