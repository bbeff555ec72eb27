// tcp_proxy: each downstream connection is held (paused) while up to max_connect_attempts run with
// back-off, then bytes flow both ways. Sessions register with their host so that
// close_connections_on_host_health_failure can cut them and the client reconnects through us.
import net from "node:net";
import { RESPONSE_FLAGS, type ListenerConfig, type TcpProxyConfig } from "@tether/envoy";
import { AccessLogs, socketAddressString, tcpEntry } from "../access-log/logger.ts";
import { nextConnectionId, type Logger } from "../log.ts";
import { JitteredBackoff, type RandomSource } from "../upstream/backoff.ts";
import type { ClusterManager } from "../upstream/cluster-manager.ts";
import type { Cluster } from "../upstream/cluster.ts";
import { timerDelay } from "../timers.ts";
import { StatsByPrefix } from "./stats-by-prefix.ts";
import { connectUpstream, type UpstreamConnectError } from "../upstream/connect.ts";
import type { Host, HostSession } from "../upstream/host.ts";
import type { HostWaiter } from "../upstream/host-wait.ts";
import { boundAddress, listenOn } from "./bind.ts";
import { ConnectionLimit } from "./connection-limit.ts";

export class TcpStats {
  readonly prefix: string;
  downstream_cx_total = 0;
  downstream_cx_active = 0;
  downstream_cx_rx_bytes_total = 0;
  downstream_cx_tx_bytes_total = 0;
  downstream_cx_no_route = 0;
  upstream_flush_total = 0;
  idle_timeout = 0;
  max_downstream_connection_duration = 0;
  upstream_connect_attempts_exceeded = 0;

  constructor(prefix: string) {
    this.prefix = prefix;
  }
}

class TcpSession implements HostSession, HostWaiter {
  private readonly listener: TcpListener;
  private readonly downstream: net.Socket;
  private readonly id = nextConnectionId("d");
  private readonly started = performance.now();
  private readonly startTimeMs = Date.now();
  private readonly config: TcpProxyConfig;
  /** Envoy's response flags, for the access log. */
  private flagBits = 0;
  private cluster: Cluster | undefined;
  private upstream: net.Socket | undefined;
  private host: Host | undefined;
  /** The host of the last failed attempt: the next one goes elsewhere when it can. */
  private lastFailed: Host | undefined;
  private attempts = 0;
  private backoff: JitteredBackoff | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private closeReason = "";

  constructor(listener: TcpListener, downstream: net.Socket, config: TcpProxyConfig) {
    this.listener = listener;
    this.downstream = downstream;
    this.config = config;
  }

  start(): void {
    const d = this.downstream;
    d.pause();
    d.setNoDelay(true);
    d.on("error", () => {
      this.close("downstream_error");
    });
    d.once("close", () => {
      this.close("downstream_close");
    });
    this.listener.log.info(
      { conn: this.id, listener: this.listener.name, remote: `${d.remoteAddress}:${d.remotePort}` },
      "downstream connection open",
    );
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const cluster = this.listener.clusters.get(this.config.cluster);
    const host = cluster?.chooseHost(undefined, 0, undefined, this.lastFailed);
    if (cluster !== undefined && host === undefined && this.attempts < this.config.max_connect_attempts) {
      // No host at all (an EDS cluster whose every endpoint went away): held like a connection every
      // host refuses, counted as an attempt, woken as soon as a host appears.
      this.attempts++;
      this.flagBits |= RESPONSE_FLAGS.UH;
      this.retryAfterBackoff(cluster);
      return;
    }
    if (cluster === undefined || host === undefined) {
      this.listener.stats.downstream_cx_no_route++;
      this.flagBits |= cluster === undefined ? RESPONSE_FLAGS.NC : RESPONSE_FLAGS.UH;
      this.close(cluster === undefined ? "no_cluster" : "no_healthy_upstream");
      return;
    }
    if (cluster.stats.upstream_cx_active >= cluster.maxConnections) {
      cluster.stats.counters.upstream_cx_overflow++;
      this.flagBits |= RESPONSE_FLAGS.UO;
      this.close("upstream_cx_overflow");
      return;
    }
    this.cluster = cluster;
    this.attempts++;
    const d = this.downstream;
    const proxied = {
      sourceAddress: d.remoteAddress ?? "",
      sourcePort: d.remotePort ?? 0,
      destinationAddress: d.localAddress ?? "",
      destinationPort: d.localPort ?? 0,
    };
    connectUpstream(
      cluster,
      host,
      (err, socket) => {
        this.onConnect(cluster, host, err, socket);
      },
      proxied,
      this.id,
    );
  }

  /** The next connect attempt after the back-off, or as soon as a host of `cluster` comes back. */
  private retryAfterBackoff(cluster: Cluster): void {
    const b = this.config.backoff_options;
    const delay =
      b === undefined
        ? 0
        : (this.backoff ??= new JitteredBackoff(
            b.base_interval,
            b.max_interval,
            this.listener.random,
          )).next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      cluster.stopWaiting(this);
      this.connect();
    }, timerDelay(delay));
    // Held while no backend answers: a backend back in rotation ends the back-off at once.
    cluster.waitForHost(this);
  }

  private onConnect(
    cluster: Cluster,
    host: Host,
    err: UpstreamConnectError | null,
    socket: net.Socket | null,
  ): void {
    if (err !== null || socket === null) {
      cluster.recordLocalFailure(host, "connect_failed");
      if (this.closed) return;
      this.lastFailed = host;
      this.flagBits |= RESPONSE_FLAGS.UF;
      if (this.attempts >= this.config.max_connect_attempts) {
        this.listener.stats.upstream_connect_attempts_exceeded++;
        this.flagBits |= RESPONSE_FLAGS.URX;
        this.close(`connect_failed:${err?.failureClass ?? "other"}`);
        return;
      }
      this.retryAfterBackoff(cluster);
      return;
    }
    if (this.closed) {
      socket.destroy();
      return;
    }
    cluster.recordConnectSuccess(host);
    this.upstream = socket;
    this.host = host;
    host.sessions.add(this);
    this.listener.log.info(
      { conn: this.id, listener: this.listener.name, upstream: host.key, attempts: this.attempts },
      "upstream connected",
    );
    this.pipe(socket);
  }

  private pipe(up: net.Socket): void {
    const down = this.downstream;
    const idle = this.config.idle_timeout;
    if (idle > 0) {
      this.idleTimer = setTimeout(() => {
        this.listener.stats.idle_timeout++;
        this.close("idle_timeout");
      }, timerDelay(idle));
    }
    up.on("data", (chunk: Buffer) => {
      this.idleTimer?.refresh();
      if (!down.write(chunk)) up.pause();
    });
    down.on("data", (chunk: Buffer) => {
      this.idleTimer?.refresh();
      if (!up.write(chunk)) down.pause();
    });
    down.on("drain", () => up.resume());
    up.on("drain", () => down.resume());
    up.once("end", () => {
      this.closeReason ||= "upstream_close";
      down.end();
    });
    down.once("end", () => {
      this.closeReason ||= "downstream_close";
      up.end();
    });
    up.on("error", () => {
      this.close("upstream_error");
    });
    up.once("close", () => {
      this.close(this.closeReason || "upstream_close");
    });
    down.resume();
  }

  /** The cluster may have a backend now: end the back-off and attempt at once. */
  onHostAvailable(): void {
    if (this.retryTimer === undefined || this.closed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.connect();
  }

  private logAccess(logs: AccessLogs): void {
    const down = this.downstream;
    const host = this.host ?? this.lastFailed;
    logs.log(
      tcpEntry({
        startTimeMs: this.startTimeMs,
        durationMs: Math.floor(performance.now() - this.started),
        bytesReceived: down.bytesRead,
        bytesSent: down.bytesWritten,
        upstreamHost: host?.key,
        upstreamCluster: this.config.cluster,
        upstreamAttempts: this.attempts,
        responseFlagBits: this.flagBits,
        connectionId: Number(this.id.slice(1)),
        downstreamRemoteAddress: socketAddressString(down.remoteAddress, down.remotePort),
        downstreamLocalAddress: socketAddressString(down.localAddress, down.localPort),
      }),
    );
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.cluster?.stopWaiting(this);
    clearTimeout(this.idleTimer);
    this.host?.sessions.delete(this);
    const down = this.downstream;
    this.upstream?.destroy();
    down.destroy();
    const stats = this.listener.stats;
    stats.downstream_cx_active--;
    this.listener.limit.release();
    stats.downstream_cx_rx_bytes_total += down.bytesRead;
    stats.downstream_cx_tx_bytes_total += down.bytesWritten;
    this.listener.sessions.delete(this);
    if (this.listener.accessLog !== undefined) this.logAccess(this.listener.accessLog);
    this.listener.log.info(
      {
        conn: this.id,
        listener: this.listener.name,
        upstream: this.host?.key,
        bytesIn: down.bytesRead,
        bytesOut: down.bytesWritten,
        durationMs: Math.round(performance.now() - this.started),
        connectAttempts: this.attempts,
        reason: this.closeReason || reason,
      },
      "downstream connection closed",
    );
  }
}

export class TcpListener {
  readonly name: string;
  readonly stats: TcpStats;
  readonly clusters: ClusterManager;
  readonly log: Logger;
  readonly random: RandomSource;
  readonly sessions = new Set<TcpSession>();
  /** The listener's connection cap: its connection_limit filter, or the default. */
  readonly limit: ConnectionLimit;
  private config: ListenerConfig;
  private tcp: TcpProxyConfig;
  /** The tcp_proxy's access_log; undefined when it has none. */
  accessLog: AccessLogs | undefined;
  private readonly server: net.Server;

  constructor(
    config: ListenerConfig,
    tcp: TcpProxyConfig,
    clusters: ClusterManager,
    log: Logger,
    random: RandomSource,
    stats: StatsByPrefix<TcpStats>,
  ) {
    this.name = config.name;
    this.config = config;
    this.tcp = tcp;
    this.accessLog = AccessLogs.of(tcp.access_log);
    this.clusters = clusters;
    this.log = log;
    this.random = random;
    this.stats = stats.get(tcp.stat_prefix);
    this.limit = new ConnectionLimit(config);
    this.server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
      if (!this.limit.admit()) {
        this.log.debug(
          {
            listener: this.name,
            remote: `${socket.remoteAddress}:${socket.remotePort}`,
            max: this.limit.max,
          },
          "downstream connection over the limit",
        );
        this.limit.reject(socket);
        return;
      }
      this.stats.downstream_cx_total++;
      this.stats.downstream_cx_active++;
      const session = new TcpSession(this, socket, this.tcp);
      this.sessions.add(session);
      session.start();
    });
  }

  get address(): { address: string; port: number } {
    return boundAddress(this.server, this.config.address.socket_address);
  }

  /** Binds the address (again, after release); rejects with a ListenerBindError. */
  async listen(): Promise<void> {
    const sa = this.config.address.socket_address;
    await listenOn(this.server, sa, this.name);
    this.log.info(
      { listener: this.name, address: `${sa.address}:${this.address.port}` },
      "tcp listener started",
    );
  }

  /** Called once the reload that bound this listener is committed (nothing to start for tcp_proxy). */
  activate(): void {}

  get listening(): boolean {
    return this.server.listening;
  }

  /** Frees the address so another listener can take it over; open sessions go on. */
  release(): void {
    this.server.close();
  }

  get drainType(): "DEFAULT" | "MODIFY_ONLY" {
    return this.config.drain_type;
  }

  update(config: ListenerConfig, tcp: TcpProxyConfig): void {
    this.config = config;
    this.tcp = tcp;
    this.accessLog = AccessLogs.of(tcp.access_log);
    this.limit.configure(config);
  }

  stopAccepting(): void {
    this.server.close();
    this.limit.closeAllHeld();
  }

  async drain(deadline: number): Promise<void> {
    this.stopAccepting();
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const s of [...this.sessions]) s.close("drain");
  }

  connectionCount(): number {
    return this.sessions.size;
  }
}
