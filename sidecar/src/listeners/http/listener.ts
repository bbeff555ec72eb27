// The http_connection_manager listener: node:http server, route table, proxying through clusters.
// Config reloads swap the route table in place, so established connections stay open.
import http from "node:http";
import type { Socket } from "node:net";
import {
  DECISION_CACHE_TYPE,
  type DecisionCacheConfig,
  type HttpConnectionManagerConfig,
  type ListenerConfig,
} from "../../config/schema.ts";
import { nextConnectionId, type Logger } from "../../log.ts";
import type { RandomSource } from "../../upstream/backoff.ts";
import type { ClusterManager } from "../../upstream/cluster-manager.ts";
import { DecisionCache } from "./decision-cache.ts";
import { NotificationSubscription } from "./notification-subscription.ts";
import { ProxyStream, type ProxyEnv } from "./proxy.ts";
import { RouteTable, type CompiledDirectResponse, type RequestFacts } from "./route-table.ts";
import { HttpStats } from "./stats.ts";
import { boundAddress, listenOn } from "../bind.ts";

/**
 * What route matching reads from a request. Node builds `req.headers` lazily, on first access; this
 * view reads the Host header from the raw list and leaves `headers` for the header matchers that
 * actually need it.
 */
class RequestView implements RequestFacts {
  readonly method: string;
  readonly url: string;
  readonly authority: string;
  private readonly req: http.IncomingMessage;

  constructor(req: http.IncomingMessage) {
    this.req = req;
    this.method = req.method ?? "GET";
    this.url = req.url ?? "/";
    this.authority = hostOf(req.rawHeaders);
  }

  get headers(): http.IncomingHttpHeaders {
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

/**
 * A response on this connection has begun (e.g. the upstream answered before a malformed request body
 * was read): a 400 now would land inside it, so the connection can only be closed (Node's own rule).
 */
function responseUnderWay(socket: Socket): boolean {
  return (
    (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage?.headersSent === true
  );
}

export class HttpListener implements ProxyEnv {
  readonly name: string;
  readonly stats: HttpStats;
  readonly random: RandomSource;
  bufferLimit: number;
  private config: ListenerConfig;
  private hcm: HttpConnectionManagerConfig;
  private routes: RouteTable;
  private readonly clusters: ClusterManager;
  private readonly log: Logger;
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private isDraining = false;
  private started = false;
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
  ) {
    this.name = config.name;
    this.config = config;
    this.hcm = hcm;
    this.clusters = clusters;
    this.log = log;
    this.random = random;
    this.stats = new HttpStats(hcm.stat_prefix);
    this.bufferLimit = config.per_connection_buffer_limit_bytes;
    this.routes = new RouteTable(hcm.route_config.virtual_hosts);
    this.cache = HttpListener.buildCache(hcm, undefined);
    this.subscription = this.buildSubscription();
    this.server = http.createServer({
      keepAliveTimeout: hcm.common_http_protocol_options.idle_timeout,
      requestTimeout: hcm.request_timeout,
      noDelay: true,
    });
    this.server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.onRequest(req, res);
    });
    this.server.on("connection", (socket: Socket) => {
      this.onConnection(socket);
    });
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      this.onClientError(err, socket);
    });
  }

  draining = (): boolean => this.isDraining;

  get address(): { address: string; port: number } {
    return boundAddress(this.server, this.config.address.socket_address);
  }

  /** Binds the address (again, after release); rejects with a ListenerBindError. */
  async listen(): Promise<void> {
    const sa = this.config.address.socket_address;
    await listenOn(this.server, sa, this.name);
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

  /** Frees the address so another listener can take it over; requests in progress go on (Node closes idle keep-alive connections). */
  release(): void {
    this.server.close();
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
    const previous = this.cache;
    this.cache = HttpListener.buildCache(hcm, previous);
    this.server.keepAliveTimeout = hcm.common_http_protocol_options.idle_timeout;
    if (this.cache === previous) {
      // Same filter config: the stream stays open unless its cluster was replaced.
      this.subscription?.refresh();
      return;
    }
    this.subscription?.stop();
    this.subscription = this.buildSubscription();
    if (this.started && !this.isDraining) this.subscription?.start();
  }

  private onConnection(socket: Socket): void {
    const id = nextConnectionId("d");
    const started = performance.now();
    this.sockets.add(socket);
    this.stats.downstream_cx_total++;
    this.stats.downstream_cx_active++;
    this.log.info(
      { conn: id, listener: this.name, remote: `${socket.remoteAddress}:${socket.remotePort}` },
      "downstream connection open",
    );
    socket.once("close", (hadError: boolean) => {
      this.sockets.delete(socket);
      this.stats.downstream_cx_active--;
      this.log.info(
        {
          conn: id,
          listener: this.name,
          bytesIn: socket.bytesRead,
          bytesOut: socket.bytesWritten,
          durationMs: Math.round(performance.now() - started),
          reason: hadError ? "error" : this.isDraining ? "drain" : "closed",
        },
        "downstream connection closed",
      );
    });
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    this.stats.downstream_cx_protocol_error++;
    if (err.code === "ECONNRESET" || !socket.writable || responseUnderWay(socket)) {
      socket.destroy();
      return;
    }
    this.stats.downstream_rq_4xx++;
    this.log.debug({ listener: this.name, err: err.message, code: err.code }, "malformed downstream request");
    const body = "Bad Request";
    socket.end(
      `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const stats = this.stats;
    stats.downstream_rq_total++;
    stats.downstream_rq_active++;
    if (this.isDraining) res.shouldKeepAlive = false;
    const route = this.routes.match(new RequestView(req));
    if (route === undefined) {
      stats.no_route++;
      this.reply(res, 404, "no route matched");
      return;
    }
    if (route.directResponse !== undefined) {
      this.replyDirect(req, res, route.directResponse);
      return;
    }
    const cluster = this.clusters.get(route.cluster);
    if (cluster === undefined) {
      stats.no_cluster++;
      this.reply(res, 503, "cluster not found");
      return;
    }
    const cache = this.cache;
    const cacheRequest = cache?.admit(req);
    if (cache !== undefined && cacheRequest?.serve === true) {
      const hit = cache.lookup(cacheRequest.key, req.rawHeaders);
      if (hit !== undefined) {
        this.replyFromCache(req, res, hit.status, hit.headers, hit.body);
        return;
      }
    }
    const stream = new ProxyStream(req, res, route, cluster, this);
    if (cache !== undefined && cacheRequest?.store === true) stream.captureFor(cache, cacheRequest);
    stream.start();
  }

  private replyFromCache(
    req: http.IncomingMessage,
    res: http.ServerResponse,
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
  private replyDirect(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    direct: CompiledDirectResponse,
  ): void {
    req.resume();
    this.stats.downstream_rq_active--;
    this.stats.countStatus(direct.status);
    const headers: http.OutgoingHttpHeaders = { "content-length": direct.body.length };
    if (direct.body.length > 0) headers["content-type"] = "text/plain";
    res.writeHead(direct.status, headers);
    if (req.method === "HEAD") res.end();
    else res.end(direct.body);
  }

  private reply(res: http.ServerResponse, status: number, text: string): void {
    this.stats.downstream_rq_active--;
    this.stats.countStatus(status);
    res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  /** Stop accepting; keep-alive connections close after their current response. */
  stopAccepting(): void {
    this.isDraining = true;
    this.subscription?.stop();
    this.server.close();
    this.server.closeIdleConnections();
  }

  /** Resolves when every connection closed, or forces them closed at the deadline. */
  async drain(deadline: number): Promise<void> {
    this.stopAccepting();
    while (this.sockets.size > 0 && Date.now() < deadline) {
      this.server.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
    }
    this.server.closeAllConnections();
  }

  connectionCount(): number {
    return this.sockets.size;
  }
}
