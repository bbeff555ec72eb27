// One downstream HTTP/1.1 connection on a plain socket, read by llhttp: the parser node:http uses,
// strict as node:http runs it (no lenient flags), so framing errors (both Content-Length and
// Transfer-Encoding, bad chunk sizes, obs-fold...) are refused exactly as before. Pipelined requests
// are read but handed on one at a time, as Envoy's HTTP/1 codec does: a request read while an earlier
// response is still open waits, unanswered and unforwarded, until that response has gone out. So no
// upstream response piles up behind a slow reader, and nothing read after a response that closes the
// connection (or after a malformed request) is ever forwarded.
// As node:http does for plain TCP, the parser reads the socket's handle itself (`consume`): a read
// is parsed in C++ from one shared buffer, without a JS Buffer or a `data` event, and reads are
// stopped and restarted on the handle (readStop / readStart) for back-pressure.
import type { Socket } from "node:net";
import { HeadQueue } from "../../../head-queue.ts";
import { retainable } from "../../../read-buffer.ts";
import { writeOut } from "../../../socket-write.ts";
import { DownstreamRequest, type BodySource } from "./request.ts";
import { DownstreamResponse, type ResponseSink } from "./response.ts";

/** llhttp as node:http binds it (node:_http_common's HTTPParser). */
interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseError;
  finish(): ParseError | undefined;
  /** Reads `handle` directly: every read is executed, then reported to the kOnExecute callback. */
  consume(handle: StreamHandle): void;
  unconsume(): void;
  /** Drops async-hooks state before the parser goes back to the pool (as node:http's freeParser). */
  remove(): void;
  free(): void;
  close(): void;
  /** The bytes of the read being executed (a copy): only during a kOnExecute callback. */
  getCurrentBuffer(): Buffer;
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
    kOnExecute: number;
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

/** A socket's libuv stream (TCPWrap / PipeWrap), as net.Socket keeps it in `_handle`. */
interface StreamHandle {
  readonly isStreamBase?: boolean;
  /** net.Socket's own record of whether reads are started; kept in step with readStart / readStop. */
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

/** net.Socket internals the session relies on, as node:http does. */
type SessionSocket = Socket & {
  _handle: StreamHandle | null;
  [SESSION]?: Http1Session;
};

/** The session of a socket the server accepted. */
export const SESSION = Symbol("tether.http1Session");

export function sessionOf(socket: Socket): Http1Session | undefined {
  return (socket as SessionSocket)[SESSION];
}

/** What a connection reports to its server's user (the HTTP listener). */
export interface Http1Handler {
  onConnection(socket: Socket): void;
  onRequest(req: DownstreamRequest, res: DownstreamResponse): void;
  /** A parse error, a socket error, or ERR_HTTP_REQUEST_TIMEOUT (node:http's clientError). */
  onClientError(err: NodeJS.ErrnoException, socket: Socket): void;
  /** A CONNECT request: the socket is the handler's from here on. */
  onConnect(req: DownstreamRequest, socket: Socket): void;
  /** The server's periodic check (performance.now()): the handler's per-connection deadlines. */
  onTimeoutCheck(now: number): void;
}

/** What a session needs from its server. */
export interface SessionOwner {
  readonly handler: Http1Handler;
  onSessionClosed(session: Http1Session): void;
}

const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/** Envoy's delayed_close_timeout: after a response that closes, the client gets this long to close its side. */
export const DELAYED_CLOSE_MS = 1000;

/**
 * A response head and body up to this many bytes together are copied into one buffer and written
 * at once (Buffer.allocUnsafe takes such a buffer from Node's pool); larger bodies go out corked.
 */
const JOINED_WRITE_MAX = 4096;

/** Pipelined requests waiting behind the one being answered before the socket's reads stop. */
const MAX_QUEUED_RESPONSES = 32;

class RequestTimeoutError extends Error {
  readonly code = "ERR_HTTP_REQUEST_TIMEOUT";
}

// The parser's callbacks are shared functions: `this` is the parser, which knows its session.
// kOnMessageBegin is set only while it is needed (Http1Session.armBegin): each call from llhttp into
// JavaScript costs a few µs, on the path of every request.
function onMessageBegin(this: LlhttpParser): number {
  this.session?.begin();
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
  upgrade: boolean,
  keepAlive: boolean,
): number {
  return this.session?.onHeadersComplete(major, minor, headers, method, url, upgrade, keepAlive) ?? 0;
}

function onBody(this: LlhttpParser, chunk: Buffer): void {
  this.session?.incoming?.push(chunk);
}

function onMessageComplete(this: LlhttpParser): void {
  this.session?.onMessageComplete();
}

function onExecute(this: LlhttpParser, ret: number | ParseError): void {
  this.session?.onExecuted(ret);
}

/** Parsers of closed connections, reused as node:http does (llhttp re-initialised per connection). */
const parserPool: LlhttpParser[] = [];
const PARSER_POOL_MAX = 256;
/** The async resource handed to every parser: the sidecar does not use async hooks. */
const PARSER_RESOURCE = {};

function takeParser(session: Http1Session, maxHeaderSize: number): LlhttpParser {
  const { HTTPParser } = llhttp();
  let parser = parserPool.pop();
  if (parser === undefined) {
    parser = new HTTPParser();
    parser[HTTPParser.kOnHeaders] = onHeaders;
    parser[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
    parser[HTTPParser.kOnBody] = onBody;
    parser[HTTPParser.kOnMessageComplete] = onMessageComplete;
    parser[HTTPParser.kOnExecute] = onExecute;
  }
  // A pooled parser may have been released with it armed.
  parser[HTTPParser.kOnMessageBegin] = undefined;
  parser.initialize(HTTPParser.REQUEST, PARSER_RESOURCE, maxHeaderSize, HTTPParser.kLenientNone);
  parser.session = session;
  return parser;
}

function releaseParser(parser: LlhttpParser): void {
  parser.session = undefined;
  if (parserPool.length >= PARSER_POOL_MAX) {
    parser.close();
    return;
  }
  parser.remove();
  parser.free();
  parserPool.push(parser);
}

/** Whether `bytes` are all CR and LF: what llhttp skips before a request line, beginning nothing. */
function lineBreaksOnly(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 13 && bytes[i] !== 10) return false;
  return true;
}

// Socket listeners shared by every session (no closures per connection): `this` is the socket.
function onSocketData(this: Socket, data: Buffer): void {
  sessionOf(this)?.onData(data);
}

function onSocketEnd(this: Socket): void {
  sessionOf(this)?.onEnd();
}

function onSocketError(this: Socket, err: NodeJS.ErrnoException): void {
  sessionOf(this)?.reportError(err);
}

function onSocketDrain(this: Socket): void {
  sessionOf(this)?.onDrain();
}

function onSocketClose(this: Socket): void {
  sessionOf(this)?.onClose();
}

/** The first value of header `name` (lower-case) in a raw name/value list. */
function rawHeader(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i] as string;
    if (n.length === name.length && n.toLowerCase() === name) return raw[i + 1];
  }
  return undefined;
}

function destroyNT(socket: Socket): void {
  socket.destroy();
}

export class Http1Session implements BodySource, ResponseSink {
  readonly socket: Socket;
  private readonly owner: SessionOwner;
  private readonly parser: LlhttpParser;
  /** The request whose message is being read (head seen, body not complete). */
  incoming: DownstreamRequest | undefined;
  /** Responses not finished yet, oldest first: the head is the one being written. */
  private readonly responses = new HeadQueue<DownstreamResponse>();
  /** Header fields llhttp flushed before the head completed (a head split over reads); rare. */
  private headerParts: string[] | undefined;
  private urlPart = "";
  /**
   * A message is being read, from its first byte until it is complete (Envoy's request timers start
   * at the first byte; a connection that has sent nothing is idle_timeout's business). Not from the
   * accept, as node:http counts: a timeout reported for a silent connection would be ignored and,
   * reported once, would leave the head that follows with no timeout at all.
   */
  active = false;
  /** The head of the message being read has not completed. */
  headersPending = true;
  messageStart = 0;
  /** The message being read timed out (request_headers_timeout / request_timeout): not checked again. */
  expired = false;
  /** A message's first byte was read and its end was not (`active` also ends with a timeout). */
  private messageBegun = false;
  /** llhttp calls onMessageBegin: armed by a message's end, disarmed when that read is parsed. */
  private beginArmed = false;
  /** A message ended in the read being parsed. */
  private completedInRead = false;
  private stopped = false;
  private errorReported = false;
  /**
   * Read behind open responses and answered once they have gone out, in order: a malformed request
   * (reported: 400) or a CONNECT (handed to the handler: 403).
   */
  private afterResponses: ParseError | DownstreamRequest | undefined;
  /** Destroys a socket we ended if the client does not close its side (DELAYED_CLOSE_MS). */
  private closeTimer: NodeJS.Timeout | undefined;
  /** Reads stopped: a request body's reader is behind / too many pipelined responses wait. */
  private bodyPaused = false;
  private pipelinePaused = false;
  /** The parser reads the socket's handle (false: it is fed from `data` events). */
  private consumed = false;
  private readonly onFlushed = (err?: Error | null): void => {
    if (err == null) this.responseFlushed();
  };

  constructor(socket: Socket, owner: SessionOwner, maxHeaderSize: number) {
    this.socket = socket;
    this.owner = owner;
    this.parser = takeParser(this, maxHeaderSize);
    (socket as SessionSocket)[SESSION] = this;
    const handle = (socket as SessionSocket)._handle;
    if (handle?.isStreamBase === true) {
      this.parser.consume(handle);
      this.consumed = true;
    } else socket.on("data", onSocketData);
    socket.on("end", onSocketEnd);
    socket.on("error", onSocketError);
    socket.on("drain", onSocketDrain);
    socket.once("close", onSocketClose);
  }

  /**
   * The message being read belongs to a request that waits behind an open response: its timers
   * (request_timeout) start when it is handed on, not while the sidecar holds it (and may have
   * stopped reading its body).
   */
  get readingHeld(): boolean {
    const req = this.incoming;
    return req !== undefined && this.responses.head?.req !== req;
  }

  /** No request in progress and no response going out (node:http's idle connection). */
  get idle(): boolean {
    return !this.active && !this.expired && this.responses.head === undefined;
  }

  /** The response being written has sent its head (a 400 now would land inside it). */
  get responseUnderWay(): boolean {
    return this.responses.head?.headersSent === true;
  }

  onData(data: Buffer): void {
    if (this.stopped) return;
    this.onExecuted(this.parser.execute(data), data);
  }

  /**
   * After the parser executed one read (from the handle, or from onData with its bytes). A message
   * is timed from the read that held its first byte; llhttp says when that was only through
   * onMessageBegin, which is not called for every message (armBegin), so it is found here: a read
   * that ended no message and left none in progress began one (unless it held only the CR and LF
   * that llhttp skips between requests). So did a read that failed (llhttp begins a message at its
   * first byte, before it finds the error), but for bytes after a request that closes the
   * connection, which begin nothing.
   */
  onExecuted(ret: number | ParseError, data?: Buffer): void {
    // No socket timeout to refresh: stream_idle_timeout reads the byte counts (../downstream.ts).
    if (this.beginArmed) {
      this.beginArmed = false;
      this.parser[llhttp().HTTPParser.kOnMessageBegin] = undefined;
    }
    const completed = this.completedInRead;
    this.completedInRead = false;
    if (this.stopped) return;
    const failed = typeof ret !== "number";
    if (
      !completed &&
      !this.messageBegun &&
      (failed ? ret.code !== "HPE_CLOSED_CONNECTION" : ret > 0) &&
      !lineBreaksOnly(data ?? this.parser.getCurrentBuffer())
    )
      this.begin();
    if (!failed) return;
    this.stopped = true;
    // Bytes after a request that asked for Connection: close are ignored (RFC 9112 §9.6): its
    // response still goes out, then the connection closes. Any other parse error is the client's:
    // in a body being read, that request's; in a new head behind open responses, it is answered
    // (400, then the connection closes) after them, in order.
    if (ret.code === "HPE_CLOSED_CONNECTION") return;
    const held = this.readingHeld;
    if (this.responses.head === undefined || (this.incoming !== undefined && !held)) {
      this.reportError(ret);
      return;
    }
    // A held request whose body broke is never handed on; its 400 comes after the ones before it.
    if (held) {
      this.incoming?.destroy(ret);
      this.incoming = undefined;
    }
    this.afterResponses = ret;
  }

  onDrain(): void {
    this.responses.head?.emit("drain");
  }

  onEnd(): void {
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

  reportError(err: NodeJS.ErrnoException): void {
    if (this.errorReported) return;
    this.errorReported = true;
    this.owner.handler.onClientError(err, this.socket);
  }

  /** request_headers_timeout / request_timeout passed for the message being read. */
  timedOut(): void {
    this.expired = true;
    // Reported while the message still counts as begun; not through reportError, which reports a
    // connection's first error only: a timeout that found nothing to do leaves later ones reportable.
    this.owner.handler.onClientError(new RequestTimeoutError("request timeout"), this.socket);
    this.active = false;
  }

  /** A message's first byte was read (in the read being parsed): its timers start. */
  begin(): void {
    // Bytes after the connection's last request (closing, or after an upgrade) start nothing.
    if (this.stopped || this.messageBegun) return;
    this.messageBegun = true;
    this.active = true;
    this.expired = false;
    this.headersPending = true;
    this.messageStart = performance.now();
  }

  /**
   * Another message may begin in the read that ended one: llhttp is asked to say so (a message that
   * begins in a later read is found by onExecuted or by its head's completion).
   */
  private armBegin(): void {
    if (this.beginArmed || this.stopped) return;
    this.beginArmed = true;
    this.parser[llhttp().HTTPParser.kOnMessageBegin] = onMessageBegin;
  }

  onHeaders(headers: string[], url: string): void {
    this.begin();
    const parts = (this.headerParts ??= []);
    for (const h of headers) parts.push(h);
    this.urlPart += url;
  }

  onHeadersComplete(
    major: number,
    minor: number,
    parsedHeaders: string[] | undefined,
    methodIndex: number,
    parsedUrl: string | undefined,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    // Begun in this read, unless an earlier one or onMessageBegin already said so.
    this.begin();
    this.headersPending = false;
    if (this.stopped) return 0;
    let headers = parsedHeaders;
    if (headers === undefined || this.headerParts !== undefined) {
      headers = (this.headerParts ?? []).concat(headers ?? []);
      this.headerParts = undefined;
    }
    const url = this.urlPart + (parsedUrl ?? "");
    this.urlPart = "";
    const method = llhttp().methods[methodIndex] ?? "GET";
    const socket = this.socket;
    const version =
      major === 1 ? (minor === 1 ? "1.1" : minor === 0 ? "1.0" : `1.${minor}`) : `${major}.${minor}`;
    const req = new DownstreamRequest(method, url, headers, version, socket, this);
    this.incoming = req;
    if (method === "CONNECT") {
      // No body and no response from here: the socket goes to the handler (after execute returns,
      // or after the responses before it went out).
      this.stopped = true;
      if (this.responses.head === undefined) process.nextTick(connectNT, this, req);
      else this.afterResponses = req;
      return 2;
    }
    if (upgrade) {
      // llhttp reads nothing after an upgrade request (the bytes that follow are the new protocol's),
      // so it is the connection's last: answered (the listener refuses upgrades but h2c's), then closed.
      req.upgrade = rawHeader(headers, "upgrade") ?? "";
      this.stopped = true;
    }
    const res = new DownstreamResponse(req, this, keepAlive && !upgrade);
    this.responses.push(res);
    if (this.responses.size > MAX_QUEUED_RESPONSES && !this.pipelinePaused) {
      this.pipelinePaused = true;
      this.setReading(false);
    }
    // Behind an open response the request waits (responseFlushed hands it on).
    if (this.responses.head === res) this.dispatch(res);
    return 0;
  }

  /** Hands a request on: its response is the oldest open one. */
  private dispatch(res: DownstreamResponse): void {
    const req = res.req;
    const http11 = req.httpVersion === "1.1";
    if (http11 && (rawHeader(req.rawHeaders, "host") ?? "") === "") {
      // node:http's requireHostHeader: refused before anyone sees the request.
      res.shouldKeepAlive = false;
      res.writeHead(400, ["Connection", "close"]);
      res.end();
      return;
    }
    const expect = http11 ? rawHeader(req.rawHeaders, "expect") : undefined;
    if (expect !== undefined) {
      if (!CONTINUE.test(expect)) {
        res.writeHead(417, ["Content-Length", "0"]);
        res.end();
        return;
      }
      res.writeContinue();
    }
    try {
      this.owner.handler.onRequest(req, res);
    } catch (err) {
      // Called from the parser's callback or a write's completion: a defect of ours costs this
      // connection (reported as its error), never the process.
      this.socket.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }

  onMessageComplete(): void {
    this.messageBegun = false;
    this.completedInRead = true;
    this.armBegin();
    this.active = false;
    // A timeout of this message that found its response under way is over with it (idle again).
    this.expired = false;
    const req = this.incoming;
    this.incoming = undefined;
    req?.push(null);
    // After an upgrade request, nothing more is read: the bytes are not HTTP.
    if (req?.upgrade !== undefined) this.setReading(false);
  }

  connect(req: DownstreamRequest): void {
    this.stopConsuming();
    this.owner.handler.onConnect(req, this.socket);
  }

  // ---- BodySource ---------------------------------------------------------------------------------

  pauseReading(): void {
    this.bodyPaused = true;
    this.setReading(false);
  }

  resumeReading(): void {
    this.bodyPaused = false;
    if (!this.pipelinePaused) this.setReading(true);
  }

  /** Starts or stops the socket's reads: on the handle itself while the parser consumes it. */
  private setReading(on: boolean): void {
    const socket = this.socket as SessionSocket;
    if (!this.consumed) {
      if (on) socket.resume();
      else socket.pause();
      return;
    }
    const handle = socket._handle;
    if (handle === null || socket.destroyed || handle.reading === on) return;
    handle.reading = on;
    const err = on ? handle.readStart() : handle.readStop();
    if (err !== 0) socket.destroy();
  }

  /** Hands the socket's reads back to net.Socket (the socket leaves the session, or closes). */
  private stopConsuming(): void {
    if (!this.consumed) return;
    this.consumed = false;
    this.parser.unconsume();
  }

  // ---- ResponseSink -------------------------------------------------------------------------------

  writeOut(
    res: DownstreamResponse,
    head: string | Buffer | undefined,
    body: Buffer | string | undefined,
    tail: string | undefined,
    final: boolean,
  ): boolean {
    const socket = this.socket;
    if (socket.destroyed || res !== this.responses.head) return false;
    const cb = final ? this.onFlushed : undefined;
    let ok = true;
    if (head !== undefined && body === undefined && tail === undefined) return writeOut(socket, head, cb);
    if (
      head !== undefined &&
      tail === undefined &&
      typeof body !== "string" &&
      body !== undefined &&
      head.length + body.length <= JOINED_WRITE_MAX
    ) {
      // A head and a small body (the usual proxied response): one buffer, one write, no cork.
      const joined = Buffer.allocUnsafe(head.length + body.length);
      if (typeof head === "string") joined.write(head, 0, "latin1");
      else joined.set(head, 0);
      joined.set(body, head.length);
      return writeOut(socket, joined, cb);
    }
    if (head === undefined && tail === undefined) {
      if (body === undefined) {
        if (final) process.nextTick(flushedNT, this);
        return true;
      }
      return typeof body === "string"
        ? socket.write(body, "utf8", cb)
        : writeOut(socket, retainable(body), cb);
    }
    socket.cork();
    if (head !== undefined) socket.write(head, "latin1");
    if (body !== undefined) {
      const bodyCb = tail === undefined ? cb : undefined;
      ok =
        typeof body === "string"
          ? socket.write(body, "utf8", bodyCb)
          : socket.write(retainable(body), bodyCb);
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
    const res = this.responses.head;
    if (res === undefined || !res.writableEnded || res.writableFinished) return;
    res.writableFinished = true;
    this.responses.shift();
    if (this.pipelinePaused && this.responses.size <= MAX_QUEUED_RESPONSES / 2) {
      this.pipelinePaused = false;
      if (!this.bodyPaused) this.setReading(true);
    }
    const req = res.req;
    // A body nobody reads (a local reply before it) is read and dropped, so the next request can come.
    if (!req.complete && req.listenerCount("data") === 0) req.resume();
    res.closed();
    if (res.closesConnection) {
      // Requests read behind it are never handed on (RFC 9112 §9.6); they close with the socket.
      this.closeAfterResponse();
      return;
    }
    let next = this.responses.head;
    if (next?.req.destroyed === true) {
      // Held and broken (a malformed body): dropped unanswered, the 400 below answers it.
      this.responses.shift();
      next.destroyed = true;
      next.closed();
      next = undefined;
    }
    if (next !== undefined) {
      // Held until now with its body still coming: its request_timeout counts from now.
      if (next.req === this.incoming) this.messageStart = performance.now();
      this.dispatch(next);
    } else if (this.afterResponses !== undefined) {
      const after = this.afterResponses;
      this.afterResponses = undefined;
      if (after instanceof DownstreamRequest) this.connect(after);
      else this.reportError(after);
    }
  }

  /**
   * Ends our side; the socket is destroyed if the client has not closed its own within
   * DELAYED_CLOSE_MS. Meanwhile what the client still sends is read and dropped (a lingering close):
   * bytes left unread at the close would make the kernel reset the connection, and the client could
   * lose the end of the response.
   */
  private closeAfterResponse(): void {
    this.stopped = true;
    this.incoming?.destroy(new Error("aborted"));
    this.incoming = undefined;
    this.bodyPaused = false;
    this.pipelinePaused = false;
    this.setReading(true);
    this.socket.end();
    if (!this.socket.destroyed) this.closeTimer = setTimeout(destroyNT, DELAYED_CLOSE_MS, this.socket);
  }

  onClose(): void {
    clearTimeout(this.closeTimer);
    this.stopped = true;
    this.incoming?.destroy(new Error("aborted"));
    this.incoming = undefined;
    for (const res of this.responses.drain()) {
      res.destroyed = true;
      res.closed();
    }
    this.stopConsuming();
    releaseParser(this.parser);
    (this.socket as SessionSocket)[SESSION] = undefined;
    this.owner.onSessionClosed(this);
  }
}

function connectNT(session: Http1Session, req: DownstreamRequest): void {
  session.connect(req);
}

function flushedNT(session: Http1Session): void {
  session.responseFlushed();
}
