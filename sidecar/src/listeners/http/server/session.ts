// One downstream HTTP/1.1 connection on a plain socket, read by the sidecar's own strict request
// parser (request-parser.ts: as strict as llhttp under node:http, and checked against llhttp by its
// tests), so framing errors (both Content-Length and Transfer-Encoding, bad chunk sizes, obs-fold...)
// are refused. Pipelined requests are read but handed on one at a time, as Envoy's HTTP/1 codec does:
// a request read while an earlier response is still open waits, unanswered and unforwarded, until
// that response has gone out. So no upstream response piles up behind a slow reader, and nothing
// read after a response that closes the connection (or after a malformed request) is ever forwarded.
// On a plain TCP (or pipe) socket, reads land in the shared read buffer and go straight from the
// socket's handle to the parser, with no Buffer and no `data` event per read; reads are stopped and
// restarted on the handle (readStop / readStart) for back-pressure. Other sockets (TLS) are read
// through `data` events.
import type { Socket } from "node:net";
import { HeadQueue } from "../../../head-queue.ts";
import { retainable, sharedReadBuffer } from "../../../read-buffer.ts";
import { writeOut } from "../../../socket-write.ts";
import { DownstreamRequest, type BodySource } from "./request.ts";
import { RequestParser, type RequestParseError, type RequestSink } from "./request-parser.ts";
import { DownstreamResponse, type ResponseSink } from "./response.ts";

export type ParseError = RequestParseError;

type OnRead = (this: StreamHandle, arrayBuffer?: ArrayBuffer) => unknown;

/** A socket's libuv stream (TCPWrap / PipeWrap), as net.Socket keeps it in `_handle`. */
interface StreamHandle {
  /** net.Socket's own record of whether reads are started; kept in step with readStart / readStop. */
  reading?: boolean;
  readStart(): number;
  readStop(): number;
  /** Reads land in `buffer` from now on (what net's `onread` option sets up); TCP and pipes only. */
  useUserBuffer?: (buffer: Buffer) => void;
  /** Called by the handle for each read, its length (or error) in the stream_wrap binding's state. */
  onread: OnRead;
  [SESSION]?: Http1Session;
  /** net.Socket's own onread, which the end of the stream and read errors still go to. */
  [NET_ONREAD]?: OnRead;
}

/** net.Socket internals the session relies on, as node:http does. */
type SessionSocket = Socket & {
  _handle: StreamHandle | null;
  [SESSION]?: Http1Session;
};

const NET_ONREAD = Symbol("tether.netOnread");

/** node's stream_wrap binding: what the read being reported brought (bytes, or an error). */
interface ReadState {
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
}

let readState: ReadState | null | undefined;
/**
 * The stream_wrap binding's read state, loaded at the first connection (it cannot be in the
 * start-up snapshot); null if this Node does not offer it: then sockets are read through `data`.
 */
function streamReadState(): ReadState | null {
  if (readState !== undefined) return readState;
  try {
    const b = (process as unknown as { binding(name: string): Partial<ReadState> }).binding("stream_wrap");
    readState =
      b.streamBaseState instanceof Int32Array && typeof b.kReadBytesOrError === "number"
        ? (b as ReadState)
        : null;
  } catch {
    readState = null;
  }
  return readState;
}

/**
 * A read of a handle the session reads directly: its bytes are in the shared read buffer. The end
 * of the stream and read errors go to net.Socket's own handler, which ends or destroys the socket.
 * Bytes read after the socket left the session (a CONNECT handed on) go to the socket as net would
 * have delivered them.
 */
function onDirectRead(this: StreamHandle, arrayBuffer?: ArrayBuffer): unknown {
  const state = readState as ReadState;
  const nread = state.streamBaseState[state.kReadBytesOrError] as number;
  if (nread <= 0) return this[NET_ONREAD]?.call(this, arrayBuffer);
  const bytes = sharedReadBuffer().subarray(0, nread);
  const session = this[SESSION];
  if (session !== undefined) session.onData(bytes);
  return undefined;
}

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

/**
 * Writes `text` (a whole answer) and ends our side; the socket is destroyed if the client has not
 * closed its own within DELAYED_CLOSE_MS.
 */
export function endAndClose(socket: Socket, text: string): void {
  socket.end(text);
  if (socket.destroyed) return;
  const timer = setTimeout(destroyNT, DELAYED_CLOSE_MS, socket);
  socket.once("close", () => {
    clearTimeout(timer);
  });
}

export class Http1Session implements BodySource, ResponseSink, RequestSink {
  readonly socket: Socket;
  private readonly owner: SessionOwner;
  private readonly parser: RequestParser;
  /** The request whose message is being read (head seen, body not complete). */
  incoming: DownstreamRequest | undefined;
  /** Responses not finished yet, oldest first: the head is the one being written. */
  private readonly responses = new HeadQueue<DownstreamResponse>();
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
  /** The socket's handle is read directly (false: the parser is fed from `data` events). */
  private direct = false;
  /** A CONNECT gave the socket to the handler: the session reads nothing more. */
  private handedOver = false;
  private readonly onFlushed = (err?: Error | null): void => {
    if (err == null) this.responseFlushed();
  };

  constructor(socket: Socket, owner: SessionOwner, maxHeaderSize: number) {
    this.socket = socket;
    this.owner = owner;
    this.parser = new RequestParser(this, maxHeaderSize);
    (socket as SessionSocket)[SESSION] = this;
    const handle = (socket as SessionSocket)._handle;
    if (handle !== null && typeof handle.useUserBuffer === "function" && streamReadState() !== null) {
      handle.useUserBuffer(sharedReadBuffer());
      handle[NET_ONREAD] = handle.onread;
      handle[SESSION] = this;
      handle.onread = onDirectRead;
      this.direct = true;
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

  /**
   * One read: parsed at once (a view of the shared read buffer is only valid during this call). A
   * message is timed from the read that held its first byte: the parser says so (onMessageBegin),
   * before any error it finds in the message; bytes after a request that closes the connection,
   * and the CR and LF allowed between requests, begin nothing.
   */
  onData(data: Buffer): void {
    // No socket timeout to refresh: stream_idle_timeout reads the byte counts (../downstream.ts).
    if (this.handedOver) {
      // The socket is its handler's now: what it reads is delivered as net would have, reads
      // stopping while nobody takes them (net starts them again when its reader asks).
      if (this.direct && !this.socket.push(Buffer.from(data))) this.setReading(false);
      return;
    }
    if (this.stopped) return;
    let ret: number | ParseError;
    try {
      ret = this.parser.execute(data);
    } catch (err) {
      // Thrown from a callback of ours, called from the socket's read: a defect of ours costs this
      // connection (reported as its error), never the process.
      this.stopped = true;
      this.socket.destroy(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (typeof ret === "number") return;
    this.onParseError(ret);
  }

  private onParseError(ret: ParseError): void {
    if (this.stopped) return;
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
        this.onParseError(err);
        if (this.errorReported) return;
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

  onMessageBegin(): void {
    this.begin();
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

  onHeadersComplete(
    major: number,
    minor: number,
    headers: string[],
    method: string,
    url: string,
    upgrade: boolean,
    keepAlive: boolean,
  ): void {
    this.headersPending = false;
    if (this.stopped) return;
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
      return;
    }
    if (upgrade) {
      // Nothing is read after an upgrade request (the bytes that follow are the new protocol's),
      // so it is the connection's last: answered (the listener refuses upgrades but h2c's), then
      // closed. Its own body is still read, in as many reads as it takes.
      req.upgrade = rawHeader(headers, "upgrade") ?? "";
    }
    const res = new DownstreamResponse(req, this, keepAlive && !upgrade);
    this.responses.push(res);
    if (this.responses.size > MAX_QUEUED_RESPONSES && !this.pipelinePaused) {
      this.pipelinePaused = true;
      this.setReading(false);
    }
    // Behind an open response the request waits (responseFlushed hands it on).
    if (this.responses.head === res) this.dispatch(res);
  }

  onBody(chunk: Buffer): void {
    // Kept past this call (held for a reader, queued in a socket): not a view of the read buffer.
    this.incoming?.push(retainable(chunk));
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
    this.active = false;
    // A timeout of this message that found its response under way is over with it (idle again).
    this.expired = false;
    const req = this.incoming;
    this.incoming = undefined;
    req?.push(null);
    // After an upgrade request, nothing more is read: the bytes are not HTTP.
    if (req?.upgrade !== undefined) {
      this.stopped = true;
      this.setReading(false);
    }
  }

  connect(req: DownstreamRequest): void {
    this.handedOver = true;
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
    if (!this.direct) {
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
