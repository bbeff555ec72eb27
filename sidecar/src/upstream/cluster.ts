// A cluster: its endpoints grouped by priority, health (active + outlier), the load balancer,
// per-endpoint HTTP pools, and the circuit breakers. Listeners ask it for a host and a pool.
import { Pool, type PoolOptions } from "./pool.ts";
import {
  HTTP_PROTOCOL_OPTIONS_KEY,
  TRANSPORT_SOCKET_MATCH_KEY,
  type ClusterConfig,
  type ClusterLoadAssignmentConfig,
  type HealthStatus,
} from "@tether/envoy";
import { nodeMaxHeaderSize } from "../http-node.ts";
import type { Logger } from "../log.ts";
import type { RandomSource } from "./backoff.ts";
import { pickHost, type BalancerState } from "./balancer.ts";
import { connectUpstream, PLAIN_TRANSPORT, type ConnectContext } from "./connect.ts";
import type { ResolvedEndpoint } from "./dns.ts";
import { DnsRefresher, type DnsRefreshOwner } from "./dns-refresh.ts";
import { HealthChecker, type HealthCheckOwner, type HealthCheckTransition } from "./health-check.ts";
import { Host } from "./host.ts";
import { HostWaitList, type HostWaiter } from "./host-wait.ts";
import { OutlierDetector, type OutlierOwner } from "./outlier.ts";
import { panicSet, withoutHost } from "./panic-set.ts";
import { computePriorityPlan, pickPriority, type PriorityPlan } from "./priority.ts";
import { buildRing, entriesPerHost, hash32, ringLookupExcept, type Ring } from "./ring.ts";
import { ClusterStats, type ImmediateCheckReason } from "./stats.ts";
import { TransportSocketMatcher } from "./transport-match.ts";

/** Something queued behind the request circuit breaker (max_requests / max_pending_requests). */
export interface PendingWaiter {
  /** Called when a request slot is free; the waiter now holds it. */
  onRequestSlot(): void;
}

export interface ClusterDeps {
  readonly log: Logger;
  readonly random: RandomSource;
  readonly now: () => number;
}

/** Build inputs resolved before any cluster is created, so a bad file cannot half-apply a config. */
export interface ClusterResources {
  /** transport_socket and transport_socket_matches, TLS files already read. */
  readonly transports: TransportSocketMatcher;
  /** EDS clusters: the ClusterLoadAssignment they start from (warming waits for it). */
  readonly assignment?: ClusterLoadAssignmentConfig;
}

/**
 * Told when active health checking or outlier detection changed a host's state; `healthy` is whether
 * it is in rotation now.
 */
export type HostHealthListener = (host: Host, healthy: boolean) => void;

interface Level {
  readonly all: Host[];
  readonly healthy: Host[];
  /** What panic routing picks from: all but the out-of-rotation hosts known unreachable. */
  panic: Host[];
  /** RING_HASH: rings over all hosts, healthy hosts and the panic set of the level. */
  allRing?: Ring<Host>;
  healthyRing?: Ring<Host>;
  panicRing?: Ring<Host>;
}

/** The hosts (and ring) one pick chooses from, and the level whose round-robin cursor it moves. */
interface Candidates {
  readonly hosts: readonly Host[];
  readonly ring: Ring<Host> | undefined;
  readonly level: number;
}

export class Cluster implements HealthCheckOwner, OutlierOwner, ConnectContext, DnsRefreshOwner {
  readonly name: string;
  readonly clusterName: string;
  readonly config: ClusterConfig;
  readonly stats = new ClusterStats();
  readonly log: Logger;
  readonly connectTimeoutMs: number;
  readonly keepAliveTimeS: number | undefined;
  readonly transports: TransportSocketMatcher;
  hadTraffic = false;
  private readonly deps: ClusterDeps;
  private hosts: Host[] = [];
  private levels: Level[] = [];
  private plan: PriorityPlan = { load: [], panic: [] };
  private overprovisioningFactor: number;
  private readonly initialAssignment: ClusterLoadAssignmentConfig | undefined;
  private readonly balancer: BalancerState = { rrCursor: [] };
  private readonly healthChecker: HealthChecker | undefined;
  private readonly outlier: OutlierDetector | undefined;
  private readonly dns: DnsRefresher | undefined;
  private stopped = false;
  // Circuit breaker state (priority DEFAULT).
  private readonly maxActiveRequests: number;
  private readonly maxPendingRequests: number;
  readonly maxConnections: number;
  private readonly maxRetries: number;
  private readonly retryBudget: { percent: number; minConcurrency: number } | undefined;
  private retriesActive = 0;
  private readonly pending: PendingWaiter[] = [];
  private pendingHead = 0;
  private readonly poolOptions: Omit<PoolOptions, "defaultHost" | "connect">;
  private readonly healthListeners = new Set<HostHealthListener>();
  /** Requests and tcp_proxy connections sleeping in a back-off, woken when a host may be usable. */
  private readonly waitList = new HostWaitList();
  private wakeQueued = false;
  private ringEntries = 1;

  constructor(
    config: ClusterConfig,
    deps: ClusterDeps,
    resources: ClusterResources = { transports: new TransportSocketMatcher(PLAIN_TRANSPORT) },
  ) {
    this.name = config.name;
    this.transports = resources.transports;
    this.initialAssignment = resources.assignment;
    this.overprovisioningFactor = config.load_assignment.policy.overprovisioning_factor;
    this.clusterName = config.name;
    this.config = config;
    this.deps = deps;
    this.log = deps.log;
    this.connectTimeoutMs = config.connect_timeout;
    this.keepAliveTimeS = config.upstream_connection_options?.tcp_keepalive
      ? (config.upstream_connection_options.tcp_keepalive.keepalive_time ?? 7200)
      : undefined;
    const t = config.circuit_breakers?.thresholds.find((x) => x.priority === "DEFAULT");
    this.maxConnections = t?.max_connections ?? 1024;
    // HTTP/1.1 carries one request per connection, so active requests are bounded by both limits.
    this.maxActiveRequests = Math.min(t?.max_requests ?? 1024, this.maxConnections);
    this.maxPendingRequests = t?.max_pending_requests ?? 1024;
    this.maxRetries = t?.max_retries ?? 3;
    this.retryBudget = t?.retry_budget
      ? { percent: t.retry_budget.budget_percent.value, minConcurrency: t.retry_budget.min_retry_concurrency }
      : undefined;
    const proto =
      config.typed_extension_protocol_options?.[HTTP_PROTOCOL_OPTIONS_KEY]?.common_http_protocol_options;
    const idle = proto?.idle_timeout ?? 3_600_000;
    this.poolOptions = {
      connections: this.maxConnections,
      idleTimeoutMs: idle,
      // Close a pooled connection this long before the server's Keep-Alive: timeout hint runs out,
      // so a request is not sent on a connection the server is about to drop (the stale keep-alive race).
      keepAliveThresholdMs: 1000,
      maxRequestsPerConnection: proto?.max_requests_per_connection ?? 0,
      // Node's limit for a message head (--max-http-header-size, 16 KiB by default).
      maxHeadBytes: nodeMaxHeaderSize(),
    };
    const hc = config.health_checks[0];
    this.healthChecker = hc === undefined ? undefined : new HealthChecker(hc, this, this.transports);
    this.outlier =
      config.outlier_detection === undefined
        ? undefined
        : new OutlierDetector(config.outlier_detection, this, deps.now, deps.random);
    this.dns =
      config.type === "STRICT_DNS" ? new DnsRefresher(config, this, deps.now, deps.random) : undefined;
  }

  /** Resolves endpoints and starts checking. Resolves after the first DNS pass (STRICT_DNS). */
  async start(): Promise<void> {
    this.transports.watch(this.log);
    if (this.config.type === "STATIC") {
      this.setHosts(this.staticHosts());
      return;
    }
    if (this.config.type === "EDS") {
      if (this.initialAssignment !== undefined) this.applyAssignment(this.initialAssignment);
      return;
    }
    await this.dns?.start();
  }

  /** Resolves when the first health-check round is done (Envoy's cluster warming). */
  async warmed(): Promise<void> {
    await this.healthChecker?.initialRound();
  }

  private staticHosts(): Host[] {
    const out: Host[] = [];
    for (const loc of this.config.load_assignment.endpoints) {
      for (const ep of loc.lb_endpoints) {
        const sa = ep.endpoint.address.socket_address;
        const transport = this.transports.resolve(ep.metadata?.filter_metadata[TRANSPORT_SOCKET_MATCH_KEY]);
        out.push(
          new Host(sa.address, sa.port_value, loc.priority, ep.endpoint.hostname, transport.transport),
        );
      }
    }
    return out;
  }

  /** The ClusterLoadAssignment name an EDS cluster subscribes to (Envoy: service_name, else its name). */
  get serviceName(): string {
    return this.config.eds_cluster_config?.service_name ?? this.config.name;
  }

  /**
   * An EDS update: adds and removes only the hosts that changed and applies health_status to the
   * others in place (pools, health-check and outlier state stay). A host turning DRAINING leaves
   * rotation and its idle pooled connections close; requests in flight on it finish.
   */
  applyAssignment(cla: ClusterLoadAssignmentConfig): void {
    const status = new Map<string, HealthStatus>();
    const next: Host[] = [];
    for (const loc of cla.endpoints) {
      for (const ep of loc.lb_endpoints) {
        const sa = ep.endpoint.address.socket_address;
        const transport = this.transports.resolve(ep.metadata?.filter_metadata[TRANSPORT_SOCKET_MATCH_KEY]);
        const host = new Host(
          sa.address,
          sa.port_value,
          loc.priority,
          ep.endpoint.hostname,
          transport.transport,
        );
        next.push(host);
        status.set(`${host.priority}/${host.key}`, ep.health_status);
      }
    }
    if (next.length === 0) this.stats.counters.update_empty++;
    const factorChanged = this.overprovisioningFactor !== cla.policy.overprovisioning_factor;
    this.overprovisioningFactor = cla.policy.overprovisioning_factor;
    this.setHosts(next);
    const changed: Host[] = [];
    for (const host of this.hosts) {
      const health = status.get(`${host.priority}/${host.key}`) ?? "UNKNOWN";
      if (host.edsHealth === health) continue;
      const wasDraining = host.draining();
      host.edsHealth = health;
      changed.push(host);
      if (host.draining() && !wasDraining) this.drainHost(host);
    }
    if (changed.length > 0 || factorChanged) this.recompute();
    for (const host of changed) this.notifyHealth(host);
  }

  /** Idle pooled connections to `host` close now; those carrying a request close when it ends. */
  private drainHost(host: Host): void {
    const pool = host.pool;
    host.pool = undefined;
    if (pool !== undefined) void pool.close().catch(() => undefined);
    this.log.info({ cluster: this.name, upstream: host.key, priority: host.priority }, "host draining (EDS)");
  }

  /** A STRICT_DNS answer: the hosts it names, keeping the state of those that stay. */
  applyDnsAnswer(resolved: readonly ResolvedEndpoint[]): boolean {
    return this.setHosts(
      resolved.map(
        (r) =>
          new Host(
            r.address,
            r.port,
            r.priority,
            r.hostname,
            this.transports.resolve(r.transportMatch).transport,
          ),
      ),
    );
  }

  /** Replaces the endpoint set, keeping state (health, pools) of endpoints that stay. */
  private setHosts(next: Host[]): boolean {
    const old = new Map(this.hosts.map((h) => [`${h.priority}/${h.key}`, h]));
    const merged: Host[] = [];
    for (const h of next) {
      const id = `${h.priority}/${h.key}`;
      const existing = old.get(id);
      if (existing !== undefined) {
        merged.push(existing);
        old.delete(id);
      } else {
        merged.push(h);
      }
    }
    const changed =
      old.size > 0 || merged.length !== this.hosts.length || merged.some((h, i) => h !== this.hosts[i]);
    if (!changed) return false;
    const added = merged.filter((h) => !this.hosts.includes(h));
    this.hosts = merged;
    for (const gone of old.values()) this.retireHost(gone);
    for (const h of added) this.healthChecker?.addHost(h);
    this.stats.counters.membership_change++;
    this.recompute();
    if (added.length > 0) this.scheduleWake();
    return true;
  }

  private retireHost(host: Host): void {
    this.healthChecker?.removeHost(host);
    const pool = host.pool;
    host.pool = undefined;
    if (pool !== undefined) void pool.close().catch(() => undefined);
  }

  private recompute(): void {
    const hadHealthy = this.levels.some((l) => l.healthy.length > 0);
    const levels: Level[] = [];
    for (const h of this.hosts) {
      while (levels.length <= h.priority) levels.push({ all: [], healthy: [], panic: [] });
      const level = levels[h.priority];
      if (level === undefined) continue;
      // A DRAINING host takes no new work, even in panic (Envoy excludes it from load balancing).
      if (h.draining()) continue;
      level.all.push(h);
      if (h.isHealthy()) level.healthy.push(h);
    }
    if (this.config.lb_policy === "RING_HASH") {
      const rc = this.config.ring_hash_lb_config;
      const perHost = entriesPerHost(
        this.hosts.length,
        rc?.minimum_ring_size ?? 1024,
        rc?.maximum_ring_size ?? 8_388_608,
      );
      this.ringEntries = perHost;
      for (const level of levels) {
        level.allRing = buildRing(level.all, perHost);
        level.healthyRing = buildRing(level.healthy, perHost);
      }
    }
    this.levels = levels;
    this.refreshPanicSets();
    // The last healthy host left rotation: its replacement may already be in DNS.
    if (hadHealthy && !levels.some((l) => l.healthy.length > 0)) this.dns?.soon("all_unhealthy");
    this.plan = computePriorityPlan(
      levels.map((l) => ({ healthy: l.healthy.length, total: l.all.length })),
      this.overprovisioningFactor,
      this.config.common_lb_config.healthy_panic_threshold.value,
    );
  }

  /** Rebuilds each level's panic set (and its ring): after health or reachability changed. */
  private refreshPanicSets(): void {
    const ringHash = this.config.lb_policy === "RING_HASH";
    for (const level of this.levels) {
      level.panic = panicSet(level.all);
      if (ringHash) level.panicRing = buildRing(level.panic, this.ringEntries);
    }
  }

  // ---- load balancing ------------------------------------------------------------------------

  /**
   * The host for the next request or connection, or undefined when the cluster has none. With
   * `avoid` (retry_host_predicate previous_hosts), up to `maxReselects` more picks look for a host
   * not in it; the last pick stands if none is found, as in Envoy. `lastFailed` (a retry's previous
   * host) is never picked while the candidates hold another host.
   */
  chooseHost(avoid?: readonly Host[], maxReselects = 0, hash?: number, lastFailed?: Host): Host | undefined {
    let host = this.pickOnce(hash, lastFailed);
    if (avoid === undefined || avoid.length === 0) return host;
    // No reselect can find a host outside `avoid` when it holds them all; otherwise at most one
    // reselect per host (the configured count has no upper bound, and picks draw only from the
    // hosts in rotation at one priority, which `avoid` may cover while other hosts are outside it).
    if (this.hosts.every((h) => avoid.includes(h))) return host;
    const reselects = Math.min(maxReselects, this.hosts.length);
    for (let i = 1; i <= reselects && host !== undefined && avoid.includes(host); i++) {
      // A reselect with a hash policy perturbs the hash, or it would land on the same host.
      host = this.pickOnce(hash === undefined ? undefined : hash32(String(hash), i), lastFailed);
    }
    return host;
  }

  private pickOnce(hash: number | undefined, exclude: Host | undefined): Host | undefined {
    if (!this.hadTraffic) {
      this.hadTraffic = true;
      this.healthChecker?.trafficStarted();
    }
    const levels = this.levels;
    if (levels.length === 0) return undefined;
    const draw = hash === undefined ? this.deps.random() * 100 : hash % 100;
    const index = levels.length === 1 ? 0 : pickPriority(this.plan.load, draw);
    const level = levels[index];
    if (level === undefined) return undefined;
    let candidates: readonly Host[] = level.healthy;
    let ring = level.healthyRing;
    let at = index;
    if (this.plan.panic[index] === true || candidates.length === 0) {
      if (this.plan.panic[index] === true) this.stats.counters.lb_healthy_panic++;
      const panic = this.panicCandidates(index, level);
      candidates = panic.hosts;
      ring = panic.ring;
      at = panic.level;
    }
    if (hash !== undefined && ring !== undefined) return ringLookupExcept(ring, hash, exclude);
    return pickHost(
      this.config.lb_policy,
      withoutHost(candidates, exclude),
      at,
      this.balancer,
      this.deps.random,
      this.choiceCount(),
    );
  }

  /**
   * Panic routing for level `index`: its panic set; when every host of it is known unreachable,
   * another level's healthy hosts or panic set; when there are none anywhere, every host of the level
   * (as Envoy): the request meets the failure and is held by its retries, as when everything is down.
   */
  private panicCandidates(index: number, level: Level): Candidates {
    if (level.panic.length > 0) return { hosts: level.panic, ring: level.panicRing, level: index };
    for (let j = 0; j < this.levels.length; j++) {
      const other = this.levels[j];
      if (j === index || other === undefined) continue;
      if (other.healthy.length > 0) return { hosts: other.healthy, ring: other.healthyRing, level: j };
      if (other.panic.length > 0) return { hosts: other.panic, ring: other.panicRing, level: j };
    }
    return { hosts: level.all, ring: level.allRing, level: index };
  }

  private choiceCount(): number {
    return this.config.least_request_lb_config?.choice_count ?? 2;
  }

  /** Hosts whose last connect or check did not complete a TCP handshake (Host.unreachable). */
  unreachableCount(): number {
    let n = 0;
    for (const h of this.hosts) if (h.unreachable) n++;
    return n;
  }

  membership(): { healthy: number; total: number; degraded: number } {
    let healthy = 0;
    for (const h of this.hosts) if (h.isHealthy()) healthy++;
    return { healthy, total: this.hosts.length, degraded: 0 };
  }

  allHosts(): readonly Host[] {
    return this.hosts;
  }

  hostCount(): number {
    return this.hosts.length;
  }

  priorityPlan(): PriorityPlan {
    return this.plan;
  }

  // ---- health events ---------------------------------------------------------------------------

  onActiveHealthChanged(host: Host, healthy: boolean, failure?: HealthCheckTransition): void {
    this.log.info(
      {
        cluster: this.name,
        upstream: host.key,
        priority: host.priority,
        healthy,
        cause: "active_hc",
        ...(failure === undefined
          ? {}
          : {
              errorClass: failure.cls,
              err: failure.message,
              consecutiveFailures: failure.consecutiveFailures,
              // A refused check took the host out before unhealthy_threshold failures.
              ...(failure.confirmed ? {} : { beforeThreshold: true }),
            }),
      },
      healthy ? "host healthy" : "host unhealthy",
    );
    this.recompute();
    // Connections are cut once the failure is confirmed by unhealthy_threshold checks (Envoy's
    // rule), so a server that closed its listener to drain keeps its sessions until then.
    if (!healthy && failure?.confirmed !== false && this.config.close_connections_on_host_health_failure)
      this.closeHostConnections(host);
    this.notifyHealth(host);
    if (healthy) this.scheduleWake();
  }

  onActiveHealthConfirmed(host: Host, failure: HealthCheckTransition): void {
    this.log.info(
      {
        cluster: this.name,
        upstream: host.key,
        priority: host.priority,
        errorClass: failure.cls,
        err: failure.message,
        consecutiveFailures: failure.consecutiveFailures,
      },
      "host unhealthy confirmed",
    );
    if (this.config.close_connections_on_host_health_failure) this.closeHostConnections(host);
  }

  /** The server at `host` closed, reset or refused a connection: health-check it now (rate-limited). */
  onUpstreamSignal(host: Host, reason: ImmediateCheckReason): void {
    this.healthChecker?.checkSoon(host, reason);
    this.dns?.soon("going_away");
  }

  /** Registers a listener for hosts leaving or rejoining rotation; returns its removal. */
  onHostHealth(listener: HostHealthListener): () => void {
    this.healthListeners.add(listener);
    return () => {
      this.healthListeners.delete(listener);
    };
  }

  private notifyHealth(host: Host): void {
    const healthy = host.isHealthy() && !host.draining();
    for (const listener of this.healthListeners) listener(host, healthy);
  }

  // ---- reachability and held requests -----------------------------------------------------------

  /** A connect to `host` ended (connect.ts); an established one may be what held requests wait for. */
  onConnectResult(host: Host, reachable: boolean, established: boolean): void {
    if ((this.setReachable(host, reachable) && reachable) || established) this.scheduleWake();
  }

  /** An active check of `host` ended; `reachable` whether its TCP handshake completed. */
  onCheckReachability(host: Host, reachable: boolean): void {
    if (this.setReachable(host, reachable) && reachable) this.scheduleWake();
  }

  /** Records the host's reachability; true when it changed. */
  private setReachable(host: Host, reachable: boolean): boolean {
    if (host.unreachable !== reachable) return false;
    host.unreachable = !reachable;
    // A host in rotation is in every panic set anyway; recompute() rebuilds them when it leaves.
    if (!host.isHealthy()) this.refreshPanicSets();
    if (!reachable)
      this.log.debug(
        { cluster: this.name, upstream: host.key },
        "host unreachable: left out of panic routing",
      );
    return true;
  }

  /** Sleeps until a host may be usable (see onHostAvailable); leave with stopWaiting(). */
  waitForHost(waiter: HostWaiter): void {
    this.waitList.add(waiter);
  }

  stopWaiting(waiter: HostWaiter): void {
    this.waitList.delete(waiter);
  }

  /**
   * Wakes the held requests after the current event is handled (a connect callback inside the
   * pool, a health transition), so a woken request never re-enters the code that woke it.
   */
  private scheduleWake(): void {
    if (this.wakeQueued || this.waitList.size === 0) return;
    this.wakeQueued = true;
    queueMicrotask(() => {
      this.wakeQueued = false;
      if (!this.stopped) this.stats.held_requests_woken += this.waitList.wakeAll();
    });
  }

  onActiveHealthPassed(host: Host): void {
    this.outlier?.activeCheckPassed(host);
  }

  onOutlierChanged(host: Host, ejected: boolean): void {
    this.log.info(
      {
        cluster: this.name,
        upstream: host.key,
        priority: host.priority,
        ejected,
        ejections: host.ejectionCount,
      },
      ejected ? "host ejected (outlier)" : "host returned from ejection",
    );
    this.recompute();
    this.notifyHealth(host);
    if (!ejected) this.scheduleWake();
  }

  /** Cut every connection to `host` so clients reconnect (through us) to a healthy one. */
  closeHostConnections(host: Host): void {
    for (const s of host.sessions) s.close("host_unhealthy");
    const pool = host.pool;
    host.pool = undefined;
    if (pool !== undefined) void pool.destroy().catch(() => undefined);
  }

  // ---- passive results -------------------------------------------------------------------------

  recordStatus(host: Host, status: number): void {
    this.outlier?.recordStatus(host, status);
  }

  recordLocalFailure(host: Host, kind: "connect_failed" | "timeout" | "reset"): void {
    this.outlier?.recordLocalFailure(host, kind);
  }

  recordConnectSuccess(host: Host): void {
    this.outlier?.recordLocalSuccess(host);
  }

  // ---- connections -----------------------------------------------------------------------------

  /** The keep-alive pool for `host`, created on first use. */
  poolFor(host: Host): Pool {
    let pool = host.pool;
    if (pool === undefined) {
      pool = new Pool({
        ...this.poolOptions,
        defaultHost: host.key,
        connect: (callback, onread) => {
          connectUpstream(this, host, callback, undefined, undefined, onread);
        },
      });
      host.pool = pool;
      // A retry of a request that was in flight when a reload retired this cluster: its connection
      // closes once the response is done (stop() already closed the pools it knew).
      if (this.stopped) void pool.close();
    }
    return pool;
  }

  // ---- circuit breakers ------------------------------------------------------------------------

  /** Takes a request slot if one is free (max_requests, and max_connections for HTTP/1.1). */
  tryAcquireRequest(): boolean {
    if (this.stats.upstream_rq_active >= this.maxActiveRequests) return false;
    this.stats.upstream_rq_active++;
    return true;
  }

  /** Queues behind the breaker; false when max_pending_requests overflows (the caller answers 503). */
  enqueuePending(waiter: PendingWaiter): boolean {
    if (this.stats.upstream_rq_pending_active >= this.maxPendingRequests) {
      this.stats.counters.upstream_rq_pending_overflow++;
      return false;
    }
    this.stats.counters.upstream_rq_pending_total++;
    this.stats.upstream_rq_pending_active++;
    this.pending.push(waiter);
    return true;
  }

  /** A queued waiter gave up (timeout, client gone) before getting a slot. */
  cancelPending(waiter: PendingWaiter): void {
    const i = this.pending.indexOf(waiter, this.pendingHead);
    if (i === -1) return;
    this.pending.splice(i, 1);
    this.stats.upstream_rq_pending_active--;
  }

  releaseRequest(): void {
    this.stats.upstream_rq_active--;
    if (this.pendingHead < this.pending.length) {
      const next = this.pending[this.pendingHead];
      this.pending[this.pendingHead] = undefined as unknown as PendingWaiter;
      this.pendingHead++;
      if (this.pendingHead > 64 && this.pendingHead * 2 > this.pending.length) {
        this.pending.splice(0, this.pendingHead);
        this.pendingHead = 0;
      }
      this.stats.upstream_rq_pending_active--;
      this.stats.upstream_rq_active++;
      next?.onRequestSlot();
    }
  }

  /**
   * Takes a retry slot: max_retries concurrent retries, or with retry_budget
   * max(min_retry_concurrency, budget_percent × outstanding requests). Requests waiting in a
   * back-off count as outstanding, so a burst held through an outage keeps its budget.
   */
  tryAcquireRetry(): boolean {
    const s = this.stats;
    let limit = this.maxRetries;
    if (this.retryBudget !== undefined) {
      // +1: the request asking has already released its own request slot.
      const outstanding = s.upstream_rq_active + s.upstream_rq_pending_active + this.retriesActive + 1;
      limit = Math.max(
        this.retryBudget.minConcurrency,
        Math.floor((this.retryBudget.percent / 100) * outstanding),
      );
    }
    if (this.retriesActive >= limit) {
      s.counters.upstream_rq_retry_overflow++;
      return false;
    }
    this.retriesActive++;
    return true;
  }

  releaseRetry(): void {
    this.retriesActive--;
  }

  /** Stops timers and closes idle pools; in-flight requests finish on their connections. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.transports.unwatch();
    this.dns?.stop();
    this.healthChecker?.stop();
    this.outlier?.stop();
    this.healthListeners.clear();
    this.waitList.clear();
    await Promise.all(
      this.hosts.map(async (h) => {
        const pool = h.pool;
        h.pool = undefined;
        if (pool !== undefined) await pool.close().catch(() => undefined);
      }),
    );
  }
}
