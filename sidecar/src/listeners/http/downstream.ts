// One downstream HTTP/1.1 connection's timeouts, with Envoy's HttpConnectionManager semantics:
// - idle_timeout: no request in progress (from accept, or from the end of the last response) → close;
//   checked on the server's periodic check (checkIdle), not by a timer per connection.
// - stream_idle_timeout: a request in progress (from its first byte) with no bytes either way → 408.
// - request_headers_timeout / request_timeout: the head / the whole request not received in time
//   → 408. The parser knows when a request's first byte arrived; the server's connections check
//   (every TIMEOUT_CHECK_INTERVAL_MS, server/server.ts) reports the late ones as ERR_HTTP_REQUEST_TIMEOUT.
// stream_idle_timeout is checked on the same periodic check: a connection whose byte counts in
// both directions have not moved for that long is inactive. No socket timeout, which Node would
// refresh (a timer re-insert) on every read and write.
import type { Socket } from "node:net";
import type { HttpConnectionManagerConfig } from "@tether/envoy";
import { reasonPhrase } from "../../http-node.ts";
import type { DownstreamResponse, ResponseObserver } from "./server/response.ts";
import { endAndClose, sessionOf } from "./server/session.ts";
import type { HttpStats } from "./stats.ts";

/** How often request_headers_timeout, request_timeout and idle_timeout are checked: they fire up to this much late. */
export const TIMEOUT_CHECK_INTERVAL_MS = 250;

/** The server's headersTimeout and requestTimeout for the config (headers <= request, as node:http). */
export function nodeRequestTimeouts(hcm: HttpConnectionManagerConfig): {
  headersTimeout: number;
  requestTimeout: number;
} {
  const request = hcm.request_timeout;
  const headers = hcm.request_headers_timeout;
  // request_timeout bounds the head too; Node refuses a longer headersTimeout.
  const bounded = request > 0 && (headers === 0 || headers > request);
  return { requestTimeout: request, headersTimeout: bounded ? request : headers };
}

/** What a connection needs from its listener (read on each use: reloads change it). */
export interface ConnectionOwner {
  readonly hcm: HttpConnectionManagerConfig;
  readonly stats: HttpStats;
}

/** A complete plain-text response that closes the connection, for a socket without a response object. */
export function rawReply(status: number, text: string): string {
  return (
    `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-type: text/plain\r\n` +
    `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`
  );
}

export class DownstreamConnection implements ResponseObserver {
  readonly socket: Socket;
  /** The connection's id in the logs ("d42"). */
  readonly id: string;
  readonly openedAt = performance.now();
  /** Why we closed it (logged); undefined when the client or an error did. */
  closeReason: string | undefined;
  private readonly owner: ConnectionOwner;
  /**
   * The response of the request being answered, until it closes: one at a time (the session hands a
   * pipelined request on only once the response before it has closed).
   */
  private current: DownstreamResponse | undefined;
  /** When the connection last became idle (performance.now()); -1 once idle_timeout was checked. */
  private idleSince = -1;
  /** idle_timeout when it became idle (a reload changes it for later idle periods). */
  private idleMs = 0;
  /** Bytes read and written when the periodic check last saw them change, and when (-1: not yet). */
  private activityBytes = -1;
  private activityAt = 0;

  constructor(socket: Socket, owner: ConnectionOwner, id: string) {
    this.socket = socket;
    this.id = id;
    this.owner = owner;
    this.enterIdle();
  }

  get closing(): boolean {
    return this.closeReason !== undefined;
  }

  /** A request's head arrived: a stream until its response closes. */
  onRequest(res: DownstreamResponse): void {
    res.tracker = this;
    this.current = res;
  }

  onResponseClose(res: DownstreamResponse): void {
    if (this.current !== res) return;
    this.current = undefined;
    if (!this.socket.destroyed) this.enterIdle();
  }

  private enterIdle(): void {
    this.idleMs = this.owner.hcm.common_http_protocol_options.idle_timeout;
    this.idleSince = this.idleMs > 0 ? performance.now() : -1;
  }

  /**
   * The server's periodic check: stream_idle_timeout passed with no byte either way, or idle_timeout
   * passed since the connection became idle.
   */
  checkIdle(now: number): void {
    this.checkActivity(now);
    if (this.idleSince < 0 || now - this.idleSince < this.idleMs) return;
    this.idleSince = -1;
    this.onIdleTimer();
  }

  /**
   * Bytes moved since the last check restart the stream idle clock, from this check: so the timeout
   * fires up to two check intervals late, never early.
   */
  private checkActivity(now: number): void {
    const ms = this.owner.hcm.stream_idle_timeout;
    const socket = this.socket;
    if (ms <= 0 || socket.destroyed) return;
    const bytes = socket.bytesRead + socket.bytesWritten;
    if (bytes !== this.activityBytes) {
      this.activityBytes = bytes;
      this.activityAt = now;
      return;
    }
    if (now - this.activityAt < ms) return;
    // Once per silence: the next byte either way starts the clock again.
    this.activityAt = Infinity;
    this.onInactive();
  }

  /**
   * A request is being answered, or bytes of one are being read (the parser's view: the first byte
   * of a head that arrived in the same read as the end of the previous request counts too).
   */
  private requestBegun(): boolean {
    return this.current !== undefined || sessionOf(this.socket)?.active === true;
  }

  onIdleTimer(): void {
    // A request in progress (or begun since) is the stream timers' business.
    if (this.closing || this.requestBegun()) return;
    this.owner.stats.downstream_cx_idle_timeout++;
    this.closeReason = "idle_timeout";
    this.socket.destroy();
  }

  /** The socket saw no bytes either way for stream_idle_timeout. */
  private onInactive(): void {
    if (this.closing) {
      this.socket.destroy();
      return;
    }
    if (!this.requestBegun()) return; // idle: idle_timeout decides
    this.owner.stats.downstream_rq_idle_timeout++;
    this.timeOut("stream_idle_timeout", "stream timeout");
  }

  /** Node's check: the current request's head (or, with request_timeout, all of it) is late. */
  onRequestTimeout(): void {
    if (this.closing) return;
    const current = this.current;
    if (current !== undefined && !current.req.complete) {
      // Head received, body still coming: request_timeout, which stops once the response starts.
      if (current.headersSent) return;
      this.owner.stats.downstream_rq_timeout++;
      this.timeOut("request_timeout", "request timeout");
      return;
    }
    // The session times a message from its first byte; a connection that has sent nothing since it
    // was last idle is idle_timeout's, never answered with a 408.
    if (!this.requestBegun()) return;
    const { request_timeout: request, request_headers_timeout: headers } = this.owner.hcm;
    const byRequestTimeout = request > 0 && (headers === 0 || request < headers);
    if (byRequestTimeout) this.owner.stats.downstream_rq_timeout++;
    else this.owner.stats.downstream_rq_header_timeout++;
    if (current !== undefined) {
      // The late head is a pipelined request behind one still being answered: no room for a 408.
      this.closeReason = byRequestTimeout ? "request_timeout" : "request_header_timeout";
      this.socket.destroy();
      return;
    }
    if (byRequestTimeout) this.timeOut("request_timeout", "request timeout");
    else this.timeOut("request_header_timeout", "request header timeout");
  }

  /** Answers 408 and closes: through the request in progress, or raw while none has a response yet. */
  private timeOut(reason: string, text: string): void {
    this.closeReason = reason;
    const current = this.current;
    if (current === undefined) {
      this.closeWith(408, text);
      return;
    }
    current.shouldKeepAlive = false;
    const stream = current.stream;
    if (stream?.onDownstreamTimeout !== undefined) stream.onDownstreamTimeout(text);
    else if (current.headersSent) this.socket.destroy();
    else {
      current.writeHead(408, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
      current.end(text);
    }
  }

  /** Writes a whole local reply on the socket and closes it (within DELAYED_CLOSE_MS). */
  closeWith(status: number, text: string): void {
    this.closeReason ??= `local_reply_${status}`;
    const socket = this.socket;
    if (!socket.writable || this.current?.headersSent === true) {
      socket.destroy();
      return;
    }
    endAndClose(socket, rawReply(status, text));
  }

  /** The socket closed: its idle timeout no longer runs. */
  dispose(): void {
    this.idleSince = -1;
  }
}
