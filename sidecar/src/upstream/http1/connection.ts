// One upstream HTTP/1.1 connection: writes a request (head in one write, a whole body with it, a
// streamed body piped with back-pressure), reads the response with the strict parser, and goes back
// to its pool only when both messages ended cleanly and the response allows keep-alive. Listeners
// are bound once per connection; a request costs no closures.
import type net from "node:net";
import { Deadline } from "../../deadlines.ts";
import { sharedReadBuffer } from "../../read-buffer.ts";
import { writeOut } from "../../socket-write.ts";
import type { RequestBodyStream, UpstreamRequest } from "./request-head.ts";
import type { ResponseHead } from "./response-head.ts";
import { ResponseParser, type ResponseSink } from "./response-parser.ts";

/** The connection ended before the response was complete (the server closed or reset it). */
export class UpstreamResetError extends Error {
  readonly code = "TETHER_ERR_UPSTREAM_RESET";

  constructor(message: string, cause?: Error) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "UpstreamResetError";
  }
}

/** The side of an exchange the proxy implements (one object per attempt, no closures). */
export interface ExchangeHandler {
  /** The request is about to be written on `conn`; false withdraws it and nothing is sent. */
  onRequestStart(conn: UpstreamConnection): boolean;
  /**
   * A response head: a 1xx interim one (never 100, which is dropped) or the final one. The head is
   * valid during this call only (response-head.ts).
   */
  onResponseStart(conn: UpstreamConnection, status: number, head: ResponseHead, contentLength: number): void;
  /**
   * Response body bytes. From a plain TCP connection they are a view of the shared read buffer
   * (read-buffer.ts), valid during this call: keep `retainable(chunk)`, not the chunk.
   */
  onResponseData(conn: UpstreamConnection, chunk: Buffer): void;
  onResponseEnd(conn: UpstreamConnection): void;
  /** The exchange failed; `conn` is undefined when no connection carried it (refused, connect failed). */
  onResponseError(conn: UpstreamConnection | undefined, err: Error): void;
}

/** What a connection needs from its pool. */
export interface ConnectionOwner {
  readonly idleTimeoutMs: number;
  readonly keepAliveThresholdMs: number;
  readonly maxRequestsPerConnection: number;
  readonly maxHeadBytes: number;
  /** The connection is free and reusable: give it the next request or keep it idle. */
  release(conn: UpstreamConnection): void;
  /** The connection is gone (closed, destroyed, or never usable). */
  remove(conn: UpstreamConnection): void;
}

const KEEP_ALIVE_END = "connection: keep-alive\r\n\r\n";
const CLOSE_END = "connection: close\r\n\r\n";
const CHUNKED_END = "0\r\n\r\n";

/** Its deadline is the idle timeout: armed each time it goes back to its pool, shared by every connection of that duration. */
export class UpstreamConnection extends Deadline implements ResponseSink {
  private readonly owner: ConnectionOwner;
  private readonly parser: ResponseParser;
  private socket: net.Socket | undefined;
  private handler: ExchangeHandler | undefined;
  private body: RequestBodyStream | undefined;
  private chunked = false;
  /** The request's last byte was written. */
  private requestDone = true;
  /** This request may be followed by another (max requests per connection not reached). */
  private mayReuse = true;
  private requests = 0;
  /** The server's Keep-Alive hint made shorter than the pool's idle timeout, or -1. */
  private idleMs = -1;
  private socketError: Error | undefined;
  private paused = false;
  closed = false;
  /**
   * For a plain TCP connection: reads land in the shared buffer and come straight here, with no
   * stream 'data' event and no new Buffer per read (a TLS socket ignores it and emits 'data').
   */
  readonly onread: net.OnReadOpts = {
    buffer: sharedReadBuffer,
    callback: (bytes: number, buf: Uint8Array): boolean => {
      this.onData((buf as Buffer).subarray(0, bytes));
      return true;
    },
  };

  constructor(owner: ConnectionOwner) {
    super();
    this.owner = owner;
    this.parser = new ResponseParser(this, owner.maxHeadBytes);
  }

  /** Takes the connected socket (its accounting listeners are already on it, see connect.ts). */
  attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
    socket.on("error", this.onError);
    socket.on("drain", this.onDrain);
  }

  /** True while a request is in flight on this connection. */
  get busy(): boolean {
    return this.handler !== undefined;
  }

  /** Writes the request (`head` from requestHead(), without Connection and the blank line). */
  start(head: string, req: UpstreamRequest, handler: ExchangeHandler): void {
    const socket = this.socket;
    if (socket === undefined || this.closed) {
      handler.onResponseError(
        undefined,
        new UpstreamResetError("upstream connection closed before the request was sent"),
      );
      return;
    }
    if (!handler.onRequestStart(this)) {
      this.owner.release(this);
      return;
    }
    this.handler = handler;
    this.requests++;
    const max = this.owner.maxRequestsPerConnection;
    this.mayReuse = max === 0 || this.requests < max;
    this.parser.reset(req.method === "HEAD");
    const full = head + (this.mayReuse ? KEEP_ALIVE_END : CLOSE_END);
    const body = req.body;
    if (body === null) {
      this.requestDone = true;
      writeOut(socket, full);
    } else if (Buffer.isBuffer(body)) {
      this.requestDone = true;
      // One writev for head and body.
      socket.cork();
      socket.write(full, "latin1");
      socket.write(body);
      socket.uncork();
    } else {
      this.requestDone = false;
      this.chunked = req.contentLength === undefined;
      this.body = body;
      socket.write(full, "latin1");
      body.on("data", this.onBodyData);
      body.on("end", this.onBodyEnd);
      body.on("close", this.onBodyClose);
      body.on("error", this.onBodyError);
    }
  }

  /** Stops the exchange of `handler` (abandoned): the connection cannot be trusted and closes. */
  abort(handler: ExchangeHandler): void {
    if (this.handler !== handler) return;
    this.handler = undefined;
    this.parser.halt();
    this.destroy();
  }

  /** Stops reading the response (the client is slow); resume() when it drained. */
  pause(): void {
    this.paused = true;
    this.socket?.pause();
  }

  /** The response being read runs until the server closes the connection (no length, no chunks). */
  get closeDelimited(): boolean {
    return this.parser.untilClose;
  }

  /** resume() while the exchange of `handler` is still this connection's (not a later one's). */
  resumeFor(handler: ExchangeHandler): void {
    if (this.handler === handler) this.resume();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket?.resume();
  }

  /**
   * Keeps the connection idle for the pool's idle timeout at most (0: no limit, as Envoy's
   * idle_timeout), or for the server's hint when that is shorter. A deadline in a list shared by
   * every connection of that duration (deadlines.ts): a few field writes per request, where
   * refreshing a Node timer reads the loop's clock and re-inserts it.
   */
  armIdle(): void {
    const ms = this.idleMs > 0 ? this.idleMs : this.owner.idleTimeoutMs;
    if (ms > 0) this.startDeadline(ms);
    else this.cancelDeadline();
  }

  /** Idle for its whole idle timeout (a request since then has moved the deadline). */
  override onDeadline(): void {
    if (this.handler === undefined) this.destroy();
  }

  /** Closes the socket now; a request in flight gets no more callbacks (the caller handles it). */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelDeadline();
    this.detachBody();
    this.socket?.destroy();
    this.owner.remove(this);
  }

  /** Fails the request in flight (if any) with `err` and closes. */
  fail(err: Error): void {
    const handler = this.handler;
    this.handler = undefined;
    this.parser.halt();
    this.destroy();
    handler?.onResponseError(this, err);
  }

  // ---- response (ResponseSink) ------------------------------------------------------------------

  onInterim(status: number, head: ResponseHead): void {
    // Envoy without proxy_100_continue drops an upstream 100 and waits for the final response; a
    // server may send one unasked (RFC 9110 §15.2).
    if (status === 100) return;
    this.handler?.onResponseStart(this, status, head, -1);
  }

  onHead(status: number, head: ResponseHead, contentLength: number): void {
    this.handler?.onResponseStart(this, status, head, contentLength);
  }

  onBody(chunk: Buffer): void {
    this.handler?.onResponseData(this, chunk);
  }

  onComplete(reusable: boolean): void {
    const handler = this.handler;
    this.handler = undefined;
    let reuse = reusable && this.mayReuse && this.requestDone;
    const hint = this.parser.keepAliveHintS;
    if (hint >= 0) {
      // Closed this long before the server's Keep-Alive: timeout runs out, so no request is sent on
      // a connection the server is about to drop (the stale keep-alive race).
      const ms = hint * 1000 - this.owner.keepAliveThresholdMs;
      if (ms < 1000) reuse = false;
      else this.idleMs = this.owner.idleTimeoutMs > 0 ? Math.min(this.owner.idleTimeoutMs, ms) : ms;
    }
    if (reuse) {
      // Paused for a slow client and completed in the same read: the next request must be read.
      this.resume();
      this.owner.release(this);
    } else this.destroy();
    handler?.onResponseEnd(this);
  }

  // ---- socket events (bound once) ---------------------------------------------------------------

  private readonly onData = (chunk: Buffer): void => {
    const err = this.parser.execute(chunk);
    if (err !== undefined) this.fail(err);
  };

  /** The server ended or closed the connection ('end' and 'close' both land here). */
  private readonly onEnd = (): void => {
    if (this.closed) return;
    if (this.handler === undefined) {
      this.destroy();
      return;
    }
    // A body delimited by the close ends well on the server's FIN; a reset cuts it short.
    if (this.parser.untilClose && this.socketError === undefined) {
      this.parser.finish();
      this.destroy();
      return;
    }
    const cause = this.socketError;
    this.fail(
      new UpstreamResetError(
        cause === undefined
          ? "upstream connection closed before the response was complete"
          : `upstream connection failed before the response was complete: ${cause.message}`,
        cause,
      ),
    );
  };

  private readonly onError = (err: Error): void => {
    this.socketError ??= err;
  };

  private readonly onDrain = (): void => {
    this.body?.resume();
  };

  // ---- streamed request body ---------------------------------------------------------------------

  private readonly onBodyData = (chunk: Buffer): void => {
    const socket = this.socket;
    if (socket === undefined || chunk.length === 0) return;
    let ok: boolean;
    if (this.chunked) {
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, "latin1");
      socket.write(chunk);
      ok = socket.write("\r\n", "latin1");
      socket.uncork();
    } else {
      ok = socket.write(chunk);
    }
    if (!ok) this.body?.pause();
  };

  private readonly onBodyEnd = (): void => {
    if (this.chunked) this.socket?.write(CHUNKED_END, "latin1");
    this.requestDone = true;
    this.detachBody();
  };

  /** The downstream body stopped before its end (the client left, or its framing broke). */
  private readonly onBodyClose = (): void => {
    if (this.requestDone) return;
    this.fail(new UpstreamResetError("the request body ended before it was complete"));
  };

  private readonly onBodyError = (): void => {
    // 'close' follows and fails the exchange; the listener keeps the error from being thrown.
  };

  private detachBody(): void {
    const body = this.body;
    if (body === undefined) return;
    this.body = undefined;
    body.removeListener("data", this.onBodyData);
    body.removeListener("end", this.onBodyEnd);
    body.removeListener("close", this.onBodyClose);
    // onBodyError stays: a body that breaks later must not throw for want of a listener.
    // A response that ended before the request did: the rest of the body is read and dropped.
    if (!this.requestDone) body.resume();
  }
}
