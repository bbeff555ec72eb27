// Active health checking (tcp connect or HTTP GET on a path), with Envoy's threshold semantics: a
// host leaves rotation after unhealthy_threshold consecutive failures and returns after
// healthy_threshold passes; a new host is admitted on its first pass. A failed check has a class
// (refused / timeout / tls / … / status), counted and logged when a run of failures starts.
import type net from "node:net";

import type { HealthCheckConfig } from "../config/schema.ts";
import type { Logger } from "../log.ts";
import { classifyConnectError, dial, PLAIN_TRANSPORT, type Transport } from "./connect.ts";
import type { Host } from "./host.ts";
import type { ClusterStats, HealthCheckFailureClass } from "./stats.ts";
import { TransportSocketMatcher, type NamedTransport } from "./transport-match.ts";

export interface HealthCheckFailure {
  readonly cls: HealthCheckFailureClass;
  readonly message: string | undefined;
}

export interface HealthCheckOwner {
  readonly name: string;
  readonly log: Logger;
  readonly stats: ClusterStats;
  /** True once any request was routed to the cluster (Envoy then leaves no_traffic_interval). */
  readonly hadTraffic: boolean;
  /** `failure`: the check that took the host out of rotation. */
  onActiveHealthChanged(host: Host, healthy: boolean, failure?: HealthCheckFailure): void;
  onActiveHealthPassed(host: Host): void;
}

interface HostCheckState {
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  /** The class of the last failure, so a run of equal failures is logged once. */
  lastFailureClass: HealthCheckFailureClass | undefined;
  timer: NodeJS.Timeout | undefined;
  inFlight: net.Socket | undefined;
}

export class HealthChecker {
  private readonly config: HealthCheckConfig;
  private readonly owner: HealthCheckOwner;
  private readonly states = new Map<Host, HostCheckState>();
  private stopped = false;
  private initialRemaining = 0;
  private initialWaiters: (() => void)[] = [];

  /** The transport picked by transport_socket_match_criteria; undefined → each host's own. */
  private readonly criteriaTransport: NamedTransport | undefined;

  /**
   * Checks connect the way traffic does, as in Envoy: over the host's transport socket (a TLS
   * cluster's tcp check is a full handshake; a PROXY-protocol cluster's checks send a LOCAL header),
   * unless transport_socket_match_criteria pick one of the cluster's transport_socket_matches.
   */
  constructor(
    config: HealthCheckConfig,
    owner: HealthCheckOwner,
    transports: TransportSocketMatcher = new TransportSocketMatcher(PLAIN_TRANSPORT),
  ) {
    this.config = config;
    this.owner = owner;
    const criteria = config.transport_socket_match_criteria;
    this.criteriaTransport = criteria === undefined ? undefined : transports.resolve(criteria);
  }

  private transportFor(host: Host): Transport {
    return this.criteriaTransport?.transport ?? host.transport;
  }

  addHost(host: Host): void {
    host.failedActiveHc = true;
    host.pendingActiveHc = true;
    const state: HostCheckState = {
      consecutiveFailures: 0,
      consecutiveSuccesses: 0,
      lastFailureClass: undefined,
      timer: undefined,
      inFlight: undefined,
    };
    this.states.set(host, state);
    this.initialRemaining++;
    this.runCheck(host, state);
  }

  removeHost(host: Host): void {
    const state = this.states.get(host);
    if (state === undefined) return;
    clearTimeout(state.timer);
    state.inFlight?.destroy();
    this.states.delete(host);
    if (host.pendingActiveHc) this.initialDone(host);
  }

  /** Resolves when every host known now has had one check result (Envoy's cluster warming). */
  initialRound(): Promise<void> {
    if (this.initialRemaining === 0) return Promise.resolve();
    return new Promise((resolve) => this.initialWaiters.push(resolve));
  }

  /** The cluster saw its first request: checks that waited on no_traffic_interval run sooner. */
  trafficStarted(): void {
    for (const [host, state] of this.states) {
      if (state.timer !== undefined && state.inFlight === undefined) {
        clearTimeout(state.timer);
        this.schedule(host, state);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    for (const state of this.states.values()) {
      clearTimeout(state.timer);
      state.inFlight?.destroy();
    }
    this.states.clear();
    for (const w of this.initialWaiters) w();
    this.initialWaiters = [];
  }

  private intervalFor(host: Host): number {
    if (!this.owner.hadTraffic) return this.config.no_traffic_interval;
    if (host.failedActiveHc && this.config.unhealthy_interval !== undefined)
      return this.config.unhealthy_interval;
    return this.config.interval;
  }

  private schedule(host: Host, state: HostCheckState): void {
    if (this.stopped) return;
    state.timer = setTimeout(() => {
      state.timer = undefined;
      this.runCheck(host, state);
    }, this.intervalFor(host));
  }

  private initialDone(host: Host): void {
    host.pendingActiveHc = false;
    this.initialRemaining--;
    if (this.initialRemaining <= 0) {
      this.initialRemaining = 0;
      for (const w of this.initialWaiters) w();
      this.initialWaiters = [];
    }
  }

  private runCheck(host: Host, state: HostCheckState): void {
    if (this.stopped) return;
    this.owner.stats.counters.health_check_attempt++;
    const done = (result: ProbeResult): void => {
      state.inFlight = undefined;
      if (this.stopped || this.states.get(host) !== state) return;
      this.record(host, state, result);
      this.schedule(host, state);
    };
    state.inFlight = probe(host, this.config, this.transportFor(host), done);
  }

  private record(host: Host, state: HostCheckState, result: ProbeResult): void {
    const c = this.owner.stats.counters;
    const wasPending = host.pendingActiveHc;
    if (result.failure === undefined) {
      c.health_check_success++;
      state.consecutiveFailures = 0;
      state.lastFailureClass = undefined;
      state.consecutiveSuccesses++;
      if (
        host.failedActiveHc &&
        (wasPending || state.consecutiveSuccesses >= this.config.healthy_threshold)
      ) {
        host.failedActiveHc = false;
        this.owner.onActiveHealthChanged(host, true);
      }
      this.owner.onActiveHealthPassed(host);
    } else {
      const failure = result.failure;
      c.health_check_failure++;
      if (failure.cls !== "status") c.health_check_network_failure++;
      this.owner.stats.healthCheckFailures[failure.cls]++;
      state.consecutiveSuccesses = 0;
      state.consecutiveFailures++;
      this.logFailure(host, state, failure);
      if (!host.failedActiveHc && state.consecutiveFailures >= this.config.unhealthy_threshold) {
        host.failedActiveHc = true;
        this.owner.onActiveHealthChanged(host, false, failure);
      }
    }
    if (wasPending) this.initialDone(host);
  }

  /** The first failure of a run (or one of another class) at warn; repeats at debug. */
  private logFailure(host: Host, state: HostCheckState, failure: HealthCheckFailure): void {
    const fields = {
      cluster: this.owner.name,
      upstream: host.key,
      errorClass: failure.cls,
      err: failure.message,
      consecutiveFailures: state.consecutiveFailures,
      ...(this.criteriaTransport === undefined ? {} : { transportSocket: this.criteriaTransport.name }),
    };
    if (state.lastFailureClass === failure.cls) this.owner.log.debug(fields, "health check failed");
    else this.owner.log.warn(fields, "health check failed");
    state.lastFailureClass = failure.cls;
  }
}

interface ProbeResult {
  /** Undefined when the check passed. */
  readonly failure: HealthCheckFailure | undefined;
}

const PASSED: ProbeResult = { failure: undefined };

function failed(cls: HealthCheckFailureClass, message: string | undefined): ProbeResult {
  return { failure: { cls, message } };
}

/** One check; returns the socket so a stop can cut it short. `done` runs exactly once. */
function probe(
  host: Host,
  config: HealthCheckConfig,
  transport: Transport,
  done: (result: ProbeResult) => void,
): net.Socket {
  let finished = false;
  let socket: net.Socket | null = null;
  const finish = (result: ProbeResult): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket?.destroy();
    done(result);
  };
  const timer = setTimeout(() => {
    finish(failed("timeout", `no result within ${config.timeout} ms`));
  }, config.timeout);
  const raw = dial(host, transport, undefined, config.timeout, (failure, connected) => {
    if (failure !== null || connected === null) {
      finish(failed(failure?.cls ?? "other", failure?.cause?.message));
      return;
    }
    socket = connected;
    connected.on("error", (err) => {
      finish(failed(classifyConnectError(err), err.message));
    });
    connected.on("close", () => {
      finish(failed("reset", "connection closed before a response"));
    });
    const http = config.http_health_check;
    if (http === undefined) {
      finish(PASSED);
      return;
    }
    const hostHeader = http.host ?? host.hostname ?? host.key;
    connected.write(
      `GET ${http.path} HTTP/1.1\r\nhost: ${hostHeader}\r\nuser-agent: Envoy/HC\r\nconnection: close\r\n\r\n`,
    );
    let head = "";
    connected.setEncoding("latin1");
    connected.on("data", (chunk: string) => {
      head += chunk;
      const eol = head.indexOf("\r\n");
      if (eol === -1) {
        if (head.length > 4096) finish(failed("status", "no status line in the first 4096 bytes"));
        return;
      }
      const status = Number(head.slice(0, eol).split(" ")[1]);
      finish(statusExpected(status, http.expected_statuses) ? PASSED : failed("status", `status ${status}`));
    });
  });
  socket = raw;
  return raw;
}

function statusExpected(
  status: number,
  ranges: readonly { start: number; end: number }[] | undefined,
): boolean {
  if (!Number.isFinite(status)) return false;
  // Envoy's default expected range is [200, 201): only 200 passes.
  if (ranges === undefined || ranges.length === 0) return status === 200;
  return ranges.some((r) => status >= r.start && status < r.end);
}
