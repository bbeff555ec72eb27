// The keep-alive pool of HTTP/1.1 connections to one upstream host: at most `connections` of them,
// one request each at a time, the most recently freed reused first (the others age out on the idle
// timeout). A request that finds no free connection and no room for a new one waits in order.
import type net from "node:net";
import { UpstreamConnection, type ConnectionOwner, type ExchangeHandler } from "./http1/connection.ts";
import { requestHead, type UpstreamRequest } from "./http1/request-head.ts";

export type { ExchangeHandler } from "./http1/connection.ts";
export { UpstreamConnection, UpstreamResetError } from "./http1/connection.ts";
export { UpstreamRequestError, type UpstreamRequest } from "./http1/request-head.ts";
export { UpstreamProtocolError } from "./http1/response-parser.ts";
export type { ResponseHead } from "./http1/response-head.ts";

export type PoolConnect = (
  callback: (err: Error | null, socket: net.Socket | null) => void,
  onread?: net.OnReadOpts,
) => void;

export interface PoolOptions {
  /** Most connections open (or opening) at once (circuit_breakers max_connections). */
  readonly connections: number;
  /** An idle connection closes after this long (common_http_protocol_options.idle_timeout). */
  readonly idleTimeoutMs: number;
  /** Closes a connection this long before the server's Keep-Alive: timeout hint runs out. */
  readonly keepAliveThresholdMs: number;
  /** Requests per connection, 0 for no limit (max_requests_per_connection). */
  readonly maxRequestsPerConnection: number;
  /** Largest response head (status line and headers) accepted. */
  readonly maxHeadBytes: number;
  /** The Host header for a request that has none. */
  readonly defaultHost: string;
  /** Opens a connection (TCP, PROXY header, TLS: connect.ts). */
  readonly connect: PoolConnect;
}

/** A request waiting for a connection. */
interface Queued {
  readonly head: string;
  readonly req: UpstreamRequest;
  readonly handler: ExchangeHandler;
}

export class PoolClosedError extends Error {
  readonly code = "TETHER_ERR_UPSTREAM_POOL_CLOSED";

  constructor() {
    super("upstream connection pool closed");
    this.name = "PoolClosedError";
  }
}

export class Pool implements ConnectionOwner {
  readonly idleTimeoutMs: number;
  readonly keepAliveThresholdMs: number;
  readonly maxRequestsPerConnection: number;
  readonly maxHeadBytes: number;
  private readonly options: PoolOptions;
  private readonly all = new Set<UpstreamConnection>();
  private readonly idle: UpstreamConnection[] = [];
  private readonly queue: Queued[] = [];
  private closing = false;
  private destroyed = false;
  private onDrained: (() => void) | undefined;

  constructor(options: PoolOptions) {
    this.options = options;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.keepAliveThresholdMs = options.keepAliveThresholdMs;
    this.maxRequestsPerConnection = options.maxRequestsPerConnection;
    this.maxHeadBytes = options.maxHeadBytes;
  }

  /** Connections open or opening. */
  get size(): number {
    return this.all.size;
  }

  /**
   * Sends `req`; the outcome reaches `handler`. A request that cannot be written (a bad path or
   * header) fails at once with an UpstreamRequestError, before onRequestStart.
   */
  dispatch(req: UpstreamRequest, handler: ExchangeHandler): void {
    let head: string;
    try {
      head = requestHead(req, this.options.defaultHost);
    } catch (err) {
      handler.onResponseError(undefined, err as Error);
      return;
    }
    if (this.destroyed) {
      handler.onResponseError(undefined, new PoolClosedError());
      return;
    }
    let conn = this.idle.pop();
    while (conn !== undefined && conn.closed) conn = this.idle.pop();
    if (conn !== undefined) conn.start(head, req, handler);
    else if (this.all.size < this.options.connections) this.open(head, req, handler);
    else this.queue.push({ head, req, handler });
  }

  private open(head: string, req: UpstreamRequest, handler: ExchangeHandler): void {
    const conn = new UpstreamConnection(this);
    this.all.add(conn);
    this.options.connect((err, socket) => {
      if (socket === null || this.destroyed) {
        socket?.destroy();
        conn.closed = true;
        this.remove(conn);
        handler.onResponseError(undefined, err ?? new PoolClosedError());
        return;
      }
      conn.attach(socket);
      conn.start(head, req, handler);
    }, conn.onread);
  }

  release(conn: UpstreamConnection): void {
    const next = this.queue.length === 0 ? undefined : this.queue.shift();
    if (next !== undefined) {
      conn.start(next.head, next.req, next.handler);
      return;
    }
    if (this.closing) {
      conn.destroy();
      return;
    }
    this.idle.push(conn);
    conn.armIdle();
  }

  remove(conn: UpstreamConnection): void {
    if (!this.all.delete(conn)) return;
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    if (!this.destroyed && this.queue.length > 0 && this.all.size < this.options.connections) {
      const next = this.queue.shift();
      if (next !== undefined) this.open(next.head, next.req, next.handler);
    }
    if (this.all.size === 0 && this.queue.length === 0) this.onDrained?.();
  }

  /** Idle connections close now; busy ones after their response; queued requests are still served. */
  async close(): Promise<void> {
    this.closing = true;
    for (const conn of this.idle.splice(0)) conn.destroy();
    if (this.all.size === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => {
      this.onDrained = resolve;
    });
  }

  /** Every connection closes now; requests in flight or queued fail (reported after this call). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closing = true;
    const queued = this.queue.splice(0);
    const conns = [...this.all];
    this.idle.length = 0;
    // Reported from a microtask: the caller (a health transition) is not re-entered by the proxy.
    await Promise.resolve();
    for (const conn of conns) conn.fail(new PoolClosedError());
    for (const q of queued) q.handler.onResponseError(undefined, new PoolClosedError());
    this.onDrained?.();
  }
}
