// The HTTP/1.1 server of an http_connection_manager listener: a net.Server whose connections are
// Http1Sessions. It keeps node:http's connection rules the listener was built on: request_headers_timeout
// and request_timeout checked every checkIntervalMs from a request's first byte (from the accept for
// the first request), close() closing idle keep-alive connections, closeAllConnections() for the end.
// The same check is the handler's clock (onTimeoutCheck) for its own per-connection deadlines, so a
// connection holds no timer of its own; it runs while the server has connections (none: no wake-ups).
import net, { type Socket } from "node:net";
import { Http1Session, sessionOf, type Http1Handler, type SessionOwner } from "./session.ts";

export interface Http1ServerOptions {
  /** ms for a request's head; 0: none. */
  headersTimeout: number;
  /** ms for a whole request; 0: none. */
  requestTimeout: number;
  /** Bytes of request head accepted (the parser answers HPE_HEADER_OVERFLOW past it, as llhttp). */
  maxHeaderSize: number;
  /** How often the two timeouts are checked. */
  checkIntervalMs: number;
}

function checkFired(server: Http1Server): void {
  server.checkTimeouts();
}

export class Http1Server implements SessionOwner {
  readonly net: net.Server;
  readonly handler: Http1Handler;
  headersTimeout: number;
  requestTimeout: number;
  /** Read when a connection is accepted: connections already open keep theirs. */
  maxHeaderSize: number;
  private readonly checkIntervalMs: number;
  private readonly sessions = new Set<Http1Session>();
  private checkTimer: NodeJS.Timeout | undefined;

  constructor(handler: Http1Handler, options: Http1ServerOptions) {
    this.handler = handler;
    this.headersTimeout = options.headersTimeout;
    this.requestTimeout = options.requestTimeout;
    this.maxHeaderSize = options.maxHeaderSize;
    this.checkIntervalMs = options.checkIntervalMs;
    this.net = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket: Socket) => {
      this.onConnection(socket);
    });
  }

  get listening(): boolean {
    return this.net.listening;
  }

  private onConnection(socket: Socket): void {
    const session = new Http1Session(socket, this, this.maxHeaderSize);
    this.sessions.add(session);
    // The check runs while there are connections to check: a listener nobody is connected to sleeps.
    this.checkTimer ??= setInterval(checkFired, this.checkIntervalMs, this).unref();
    this.handler.onConnection(socket);
  }

  onSessionClosed(session: Http1Session): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0) this.stopChecks();
  }

  private stopChecks(): void {
    clearInterval(this.checkTimer);
    this.checkTimer = undefined;
  }

  /** The response being written on `socket` has sent its head. */
  responseUnderWay(socket: Socket): boolean {
    return sessionOf(socket)?.responseUnderWay === true;
  }

  /** Reports each connection whose request head (or whole request) is late, once, as node:http does. */
  checkTimeouts(): void {
    const now = performance.now();
    this.handler.onTimeoutCheck(now);
    const headers = this.headersTimeout;
    const request = this.requestTimeout;
    if (headers <= 0 && request <= 0) return;
    for (const s of this.sessions) {
      if (!s.active || s.expired || s.readingHeld) continue;
      const age = now - s.messageStart;
      if ((headers > 0 && s.headersPending && age > headers) || (request > 0 && age > request)) s.timedOut();
    }
  }

  /** Stops accepting and closes idle connections; connections with a request in progress go on. */
  close(): void {
    if (this.net.listening) this.net.close();
    this.closeIdleConnections();
    // Connections still answering keep the check (their timeouts and the handler's) until they close.
    if (this.sessions.size === 0) this.stopChecks();
  }

  closeIdleConnections(): void {
    for (const s of this.sessions) if (s.idle) s.socket.destroy();
  }

  closeAllConnections(): void {
    for (const s of this.sessions) s.socket.destroy();
  }
}
