// Active health checking (tcp connect or HTTP GET on a path), with Envoy's threshold semantics: a
// host leaves rotation after unhealthy_threshold consecutive failures and returns after
// healthy_threshold passes; a new host is admitted on its first pass.
import type net from "node:net";

import type { HealthCheckConfig } from "../config/schema.ts";
import { dial, PLAIN_TRANSPORT, type Transport } from "./connect.ts";
import type { Host } from "./host.ts";
import type { ClusterStats } from "./stats.ts";

export interface HealthCheckOwner {
  readonly stats: ClusterStats;
  /** True once any request was routed to the cluster (Envoy then leaves no_traffic_interval). */
  readonly hadTraffic: boolean;
  onActiveHealthChanged(host: Host, healthy: boolean): void;
  onActiveHealthPassed(host: Host): void;
}

interface HostCheckState {
  consecutiveFailures: number;
  consecutiveSuccesses: number;
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

  private readonly transport: Transport;

  /**
   * `transport`: the cluster's transport socket, used by checks too, as in Envoy (a TLS cluster's
   * tcp check is a full handshake; a PROXY-protocol cluster's checks send a LOCAL header).
   */
  constructor(config: HealthCheckConfig, owner: HealthCheckOwner, transport: Transport = PLAIN_TRANSPORT) {
    this.config = config;
    this.owner = owner;
    this.transport = transport;
  }

  addHost(host: Host): void {
    host.failedActiveHc = true;
    host.pendingActiveHc = true;
    const state: HostCheckState = {
      consecutiveFailures: 0,
      consecutiveSuccesses: 0,
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
    const done = (ok: boolean, network: boolean): void => {
      state.inFlight = undefined;
      if (this.stopped || this.states.get(host) !== state) return;
      this.record(host, state, ok, network);
      this.schedule(host, state);
    };
    state.inFlight = probe(host, this.config, this.transport, done);
  }

  private record(host: Host, state: HostCheckState, ok: boolean, network: boolean): void {
    const c = this.owner.stats.counters;
    const wasPending = host.pendingActiveHc;
    if (ok) {
      c.health_check_success++;
      state.consecutiveFailures = 0;
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
      c.health_check_failure++;
      if (network) c.health_check_network_failure++;
      state.consecutiveSuccesses = 0;
      state.consecutiveFailures++;
      if (!host.failedActiveHc && state.consecutiveFailures >= this.config.unhealthy_threshold) {
        host.failedActiveHc = true;
        this.owner.onActiveHealthChanged(host, false);
      }
    }
    if (wasPending) this.initialDone(host);
  }
}

type ProbeDone = (ok: boolean, networkFailure: boolean) => void;

/** One check; returns the socket so a stop can cut it short. `done` runs exactly once. */
function probe(host: Host, config: HealthCheckConfig, transport: Transport, done: ProbeDone): net.Socket {
  let finished = false;
  let socket: net.Socket | null = null;
  const finish = (ok: boolean, network: boolean): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket?.destroy();
    done(ok, network);
  };
  const timer = setTimeout(() => {
    finish(false, true);
  }, config.timeout);
  const raw = dial(host, transport, undefined, config.timeout, (failure, connected) => {
    if (failure !== null || connected === null) {
      finish(false, true);
      return;
    }
    socket = connected;
    connected.on("error", () => {
      finish(false, true);
    });
    connected.on("close", () => {
      finish(false, true);
    });
    const http = config.http_health_check;
    if (http === undefined) {
      finish(true, false);
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
        if (head.length > 4096) finish(false, false);
        return;
      }
      const status = Number(head.slice(0, eol).split(" ")[1]);
      finish(statusExpected(status, http.expected_statuses), false);
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
