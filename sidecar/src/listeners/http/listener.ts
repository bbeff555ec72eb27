// The http_connection_manager listener: HTTP/1.1 server (server/), route table, proxying through
// clusters. Config reloads swap the route table in place, so established connections stay open.
import type { Socket } from "node:net";
import {
  DECISION_CACHE_TYPE,
  type DecisionCacheConfig,
  type HttpConnectionManagerConfig,
  type ListenerConfig,
} from "@tether/envoy";
import { AccessLogs, HttpAccessRecord } from "../../access-log/logger.ts";
import { nextConnectionId, type Logger } from "../../log.ts";
import type { RandomSource } from "../../upstream/backoff.ts";
import type { Cluster } from "../../upstream/cluster.ts";
import type { ClusterManager } from "../../upstream/cluster-manager.ts";
import { ConnectionLimit } from "../connection-limit.ts";
import { DecisionCache, type CacheRequest } from "./decision-cache.ts";
import { DownstreamConnection, nodeRequestTimeouts, TIMEOUT_CHECK_INTERVAL_MS } from "./downstream.ts";
import { NotificationSubscription } from "./notification-subscription.ts";
import { ProxyStream, type ProxyEnv } from "./proxy.ts";
import { clientErrorReply, refusedUpgrade, rejectRequestHead, toOriginForm } from "./request-checks.ts";
import {
  RouteTable,
  type CompiledDirectResponse,
  type CompiledRoute,
  type RequestFacts,
} from "./route-table.ts";
import { HttpStats } from "./stats.ts";
import { StatsByPrefix } from "../stats-by-prefix.ts";
import { boundAddress, listenOn } from "../bind.ts";
import type { DownstreamRequest, RequestHeaders } from "./server/request.ts";
import type { DownstreamResponse } from "./server/response.ts";
import { Http1Server } from "./server/server.ts";
import type { Http1Handler } from "./server/session.ts";

/**
 * What route matching reads from a request. The request builds `headers` lazily, on first access;
 * this view reads the Host header from the raw list and leaves `headers` for the header matchers that
 * actually need it.
 */
class RequestView implements RequestFacts {
  readonly method: string;
  readonly url: string;
  readonly authority: string;
  private readonly req: DownstreamRequest;

  constructor(req: DownstreamRequest) {
    this.req = req;
    this.method = req.method;
    this.url = req.url;
    this.authority = hostOf(req.rawHeaders);
  }

  get headers(): RequestHeaders {
    return this.req.headers;
  }
}

/** The first Host header (Node keeps the first one as well), or "". */
function hostOf(raw: readonly string[]): string {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? "";
    if (name.length === 4 && name.toLowerCase() === "host") return raw[i + 1] ?? "";
  }
  return "";
}

const LISTENER = Symbol("tether.httpListener");
type ListenerSocket = Socket & { [LISTENER]?: HttpListener };

/** Shared by every downstream socket (no closure per connection): `this` is the socket. */
function downstreamSocketClosed(this: Socket, hadError: boolean): void {
  (this as ListenerSocket)[LISTENER]?.onConnectionClosed(this, hadError);
}

export class HttpListener implements ProxyEnv, Http1Handler {
  readonly name: string;
  readonly stats: HttpStats;
  readonly random: RandomSource;
  bufferLimit: number;
  private config: ListenerConfig;
  hcm: HttpConnectionManagerConfig;
  private routes: RouteTable;
  private readonly clusters: ClusterManager;
  private readonly log: Logger;
  private readonly server: Http1Server;
  private readonly connections = new Map<Socket, DownstreamConnection>();
  /** The listener's connection cap: its connection_limit filter, or the default. */
  readonly limit: ConnectionLimit;
  private isDraining = false;
  private started = false;
  /** The HCM's access_log; undefined when it has none (then no request does any access-log work). */
  private accessLog: AccessLogs | undefined;
  private readonly connectionIds = new WeakMap<Socket, number>();
  /** Set during the server's drain sequence: whether this response should close its connection. */
  drainClose: (() => boolean) | undefined;
  /** The DecisionCache filter, when the filter chain has one. */
  cache: DecisionCache | undefined;
  /** The cache's subscription to the policy server's notification stream, when configured. */
  subscription: NotificationSubscription | undefined;

  constructor(
    config: ListenerConfig,
    hcm: HttpConnectionManagerConfig,
    clusters: ClusterManager,
    log: Logger,
    random: RandomSource,
    stats: StatsByPrefix<HttpStats>,
  ) {
    this.name = config.name;
    this.config = config;
    this.hcm = hcm;
    this.clusters = clusters;
    this.log = log;
    this.random = random;
    this.stats = stats.get(hcm.stat_prefix);
    this.bufferLimit = config.per_connection_buffer_limit_bytes;
    this.routes = new RouteTable(hcm.route_config.virtual_hosts);
    this.accessLog = AccessLogs.of(hcm.access_log);
    this.cache = HttpListener.buildCache(hcm, undefined);
    this.subscription = this.buildSubscription();
    this.limit = new ConnectionLimit(config);
    this.server = new Http1Server(this, {
      ...nodeRequestTimeouts(hcm),
      checkIntervalMs: TIMEOUT_CHECK_INTERVAL_MS,
      maxHeaderSize: hcm.max_request_headers_kb * 1024,
    });
  }

  draining = (): boolean => this.isDraining;

  get drainType(): "DEFAULT" | "MODIFY_ONLY" {
    return this.config.drain_type;
  }

  get address(): { address: string; port: number } {
    return boundAddress(this.server.net, this.config.address.socket_address);
  }

  /** Binds the address (again, after release); rejects with a ListenerBindError. */
  async listen(): Promise<void> {
    const sa = this.config.address.socket_address;
    await listenOn(this.server.net, sa, this.name);
    this.log.info(
      { listener: this.name, address: `${sa.address}:${this.address.port}` },
      "http listener started",
    );
  }

  /**
   * Starts what runs beside the server (the notification stream) once the reload that bound this
   * listener is committed, so a rolled-back attempt never opened a stream.
   */
  activate(): void {
    if (this.started) return;
    this.started = true;
    if (!this.isDraining) this.subscription?.start();
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /**
   * Frees the address so another listener can take it over. It only stops listening: every
   * connection goes on (a rollback binds it again, a commit drains it).
   */
  release(): void {
    if (this.server.net.listening) this.server.net.close();
  }

  /** Keeps the current cache (and its entries) when its config did not change. */
  private static buildCache(
    hcm: HttpConnectionManagerConfig,
    current: DecisionCache | undefined,
  ): DecisionCache | undefined {
    const filter = hcm.http_filters.find((f) => f.typed_config["@type"] === DECISION_CACHE_TYPE);
    if (filter === undefined) return undefined;
    const config = filter.typed_config as DecisionCacheConfig;
    if (current !== undefined && JSON.stringify(current.config) === JSON.stringify(config)) return current;
    return new DecisionCache(config);
  }

  private buildSubscription(): NotificationSubscription | undefined {
    const stream = this.cache?.config.notification_stream;
    if (this.cache === undefined || stream === undefined) return undefined;
    const deps = { clusters: this.clusters, log: this.log, random: this.random };
    return new NotificationSubscription(this.cache, stream, deps, this.name);
  }

  /** New routes and settings for later requests; connections in progress are untouched. */
  update(config: ListenerConfig, hcm: HttpConnectionManagerConfig): void {
    this.config = config;
    this.hcm = hcm;
    this.bufferLimit = config.per_connection_buffer_limit_bytes;
    this.routes = new RouteTable(hcm.route_config.virtual_hosts);
    this.accessLog = AccessLogs.of(hcm.access_log);
    const previous = this.cache;
    this.cache = HttpListener.buildCache(hcm, previous);
    this.limit.configure(config);
    const timeouts = nodeRequestTimeouts(hcm);
    this.server.headersTimeout = timeouts.headersTimeout;
    this.server.requestTimeout = timeouts.requestTimeout;
    // Read when a connection is accepted: connections already open keep theirs.
    this.server.maxHeaderSize = hcm.max_request_headers_kb * 1024;
    if (this.cache === previous) {
      // Same filter config: the stream stays open unless its cluster was replaced.
      this.subscription?.refresh();
      return;
    }
    this.subscription?.stop();
    this.subscription = this.buildSubscription();
    if (this.started && !this.isDraining) this.subscription?.start();
  }

  onTimeoutCheck(now: number): void {
    for (const conn of this.connections.values()) conn.checkIdle(now);
  }

  onConnection(socket: Socket): void {
    if (!this.limit.admit()) {
      this.log.debug(
        { listener: this.name, remote: `${socket.remoteAddress}:${socket.remotePort}`, max: this.limit.max },
        "downstream connection over the limit",
      );
      this.limit.reject(socket);
      return;
    }
    const id = nextConnectionId("d");
    const conn = new DownstreamConnection(socket, this, id);
    this.connections.set(socket, conn);
    if (this.accessLog !== undefined) this.connectionIds.set(socket, Number(id.slice(1)));
    this.stats.downstream_cx_total++;
    this.stats.downstream_cx_active++;
    this.log.info(
      { conn: id, listener: this.name, remote: `${socket.remoteAddress}:${socket.remotePort}` },
      "downstream connection open",
    );
    (socket as ListenerSocket)[LISTENER] = this;
    socket.once("close", downstreamSocketClosed);
  }

  onConnectionClosed(socket: Socket, hadError: boolean): void {
    const conn = this.connections.get(socket);
    if (conn === undefined) return;
    this.connections.delete(socket);
    conn.dispose();
    this.limit.release();
    this.stats.downstream_cx_active--;
    this.log.info(
      {
        conn: conn.id,
        listener: this.name,
        bytesIn: socket.bytesRead,
        bytesOut: socket.bytesWritten,
        durationMs: Math.round(performance.now() - conn.openedAt),
        reason: conn.closeReason ?? (hadError ? "error" : this.isDraining ? "drain" : "closed"),
      },
      "downstream connection closed",
    );
  }

  onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const conn = this.connections.get(socket);
    if (conn === undefined) {
      // A connection over the limit, held for the filter's delay: its timer closes it.
      if (!this.limit.isHeld(socket)) socket.destroy();
      return;
    }
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      conn.onRequestTimeout();
      return;
    }
    this.stats.downstream_cx_protocol_error++;
    if (err.code === "ECONNRESET" || !socket.writable || this.server.responseUnderWay(socket)) {
      socket.destroy();
      return;
    }
    const reply = clientErrorReply(err.code);
    this.stats.countStatus(reply.status);
    this.log.debug(
      { listener: this.name, err: err.message, code: err.code, status: reply.status },
      "malformed downstream request",
    );
    conn.closeReason = "protocol_error";
    conn.closeWith(reply.status, reply.text);
  }

  /** CONNECT without a CONNECT upgrade config: Envoy answers 403 (upgrade_failed). */
  onConnect(_req: DownstreamRequest, socket: Socket): void {
    const stats = this.stats;
    stats.downstream_rq_total++;
    stats.downstream_rq_ws_on_non_ws_route++;
    stats.countStatus(403);
    const conn = this.connections.get(socket);
    if (conn === undefined) {
      socket.destroy();
      return;
    }
    conn.closeWith(403, "CONNECT is not supported");
  }

  onRequest(req: DownstreamRequest, res: DownstreamResponse): void {
    const conn = this.connections.get(req.socket);
    if (conn === undefined || conn.closing) {
      // Held over the limit, or a request read after a local reply that closes the connection.
      res.destroy();
      return;
    }
    conn.onRequest(res);
    const record =
      this.accessLog === undefined
        ? undefined
        : new HttpAccessRecord(req, res, this.connectionIds.get(req.socket), this.accessLog);
    const stats = this.stats;
    stats.downstream_rq_total++;
    stats.downstream_rq_active++;
    // Envoy's HTTP/1 drain: the response carries `Connection: close` and the connection ends after it.
    if (this.isDraining || (this.drainClose !== undefined && this.drainClose())) res.shouldKeepAlive = false;
    if (refusedUpgrade(req.upgrade)) {
      stats.downstream_rq_ws_on_non_ws_route++;
      this.reply(res, 403, "upgrade is not supported");
      return;
    }
    const rejected =
      rejectRequestHead(req.rawHeaders, this.hcm.common_http_protocol_options.max_headers_count) ??
      toOriginForm(req);
    if (rejected !== undefined) {
      res.shouldKeepAlive = false;
      this.reply(res, rejected.status, rejected.text);
      return;
    }
    const route = this.routes.match(new RequestView(req));
    if (route === undefined) {
      stats.no_route++;
      record?.flag("NR");
      this.reply(res, 404, "no route matched");
      return;
    }
    if (route.directResponse !== undefined) {
      this.replyDirect(req, res, route.directResponse);
      return;
    }
    const cluster = this.clusters.get(route.cluster);
    if (record !== undefined) record.routeName = route.name;
    if (cluster === undefined) {
      stats.no_cluster++;
      record?.flag("NC");
      this.reply(res, 503, "cluster not found");
      return;
    }
    const cacheRequest = this.fromCache(req, res, route, cluster);
    if (cacheRequest === "answered") return;
    const stream = new ProxyStream(req, res, route, cluster, this);
    if (record !== undefined) record.upstream = stream;
    if (this.cache !== undefined && cacheRequest?.store === true) stream.captureFor(this.cache, cacheRequest);
    stream.start();
  }

  /**
   * Answers the request from the decision cache when it holds a fresh entry ("answered"); else the
   * request's cache key (for the answer to fill it), or undefined when it bypasses the cache. The key
   * names where the route sends it (the cluster and the rewritten path).
   */
  private fromCache(
    req: DownstreamRequest,
    res: DownstreamResponse,
    route: CompiledRoute,
    cluster: Cluster,
  ): CacheRequest | "answered" | undefined {
    const cache = this.cache;
    if (cache === undefined) return undefined;
    const upstream = `${cluster.name} ${route.rewrite === undefined ? "" : route.rewrite(req.url)}`;
    const cacheRequest = cache.admit(req, upstream);
    if (cacheRequest?.serve !== true) return cacheRequest;
    const hit = cache.lookup(cacheRequest.key, req.rawHeaders);
    if (hit === undefined) return cacheRequest;
    this.replyFromCache(req, res, hit.status, hit.headers, hit.body);
    return "answered";
  }

  private replyFromCache(
    req: DownstreamRequest,
    res: DownstreamResponse,
    status: number,
    headers: readonly string[],
    body: Buffer,
  ): void {
    req.resume();
    this.stats.downstream_rq_active--;
    this.stats.countStatus(status);
    res.writeHead(status, [...headers, "x-tether-cache", "hit"]);
    if (req.method === "HEAD") res.end();
    else res.end(body);
  }

  /** A route's direct_response, as Envoy sends it: text/plain when there is a body, none for HEAD. */
  private replyDirect(req: DownstreamRequest, res: DownstreamResponse, direct: CompiledDirectResponse): void {
    req.resume();
    this.stats.downstream_rq_active--;
    this.stats.countStatus(direct.status);
    const headers: Record<string, string | number> = { "content-length": direct.body.length };
    if (direct.body.length > 0) headers["content-type"] = "text/plain";
    res.writeHead(direct.status, headers);
    if (req.method === "HEAD") res.end();
    else res.end(direct.body);
  }

  private reply(res: DownstreamResponse, status: number, text: string): void {
    this.stats.downstream_rq_active--;
    this.stats.countStatus(status);
    res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  /** Stop accepting; keep-alive connections close after their current response. */
  stopAccepting(): void {
    this.isDraining = true;
    this.subscription?.stop();
    this.limit.closeAllHeld();
    this.server.close();
    this.server.closeIdleConnections();
  }

  /** Resolves when every connection closed, or forces them closed at the deadline. */
  async drain(deadline: number): Promise<void> {
    this.stopAccepting();
    while (this.connections.size > 0 && Date.now() < deadline) {
      this.server.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
    }
    this.server.closeAllConnections();
  }

  connectionCount(): number {
    return this.connections.size;
  }
}
