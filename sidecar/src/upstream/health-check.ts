// Active health checking (tcp connect or HTTP GET on a path), with Envoy's threshold semantics: a
// host leaves rotation after unhealthy_threshold consecutive failures and returns after
// healthy_threshold passes; a new host is admitted on its first pass. A failed check has a class
// (refused / timeout / tls / … / status), counted and logged when a run of failures starts. An HTTP
// check reuses its connection for the next one (reuse_connection, as in Envoy; health-probe.ts).
//
// Two Tether additions, so a server that is going away stops getting new connections at once rather
// than after unhealthy_threshold intervals (a deliberate difference from Envoy):
// - checkSoon(): the cluster asks for an out-of-band check when the server closed or reset a
//   connection, or refused one. It runs at once unless a check is running (then right after it).
//   While the host's checks pass, at most one per host per max(250 ms, interval / 4) (a later ask
//   brings the next check forward to that time); once a check failed, asks are not delayed, and a
//   failed out-of-band check is followed by another 50 ms later, until one passes or
//   unhealthy_threshold takes the host out — so the extra checks stay bounded either way.
// - A check refused outright (nothing listens on the address) takes the host out of rotation on its
//   own. Its connections are cut (close_connections_on_host_health_failure) only once
//   unhealthy_threshold checks have failed, as before, so a server draining its sessions keeps them.
import type { HealthCheckConfig } from "@tether/envoy";
import type { Logger } from "../log.ts";
import { PLAIN_TRANSPORT, type Transport } from "./connect.ts";
import { HostProbe, type ProbeResult } from "./health-probe.ts";
import { timerDelay } from "../timers.ts";
import type { Host } from "./host.ts";
import { checkOutcome, FIRST_CHECK, nextCheckDelay, type CheckOutcome } from "./check-interval.ts";
import type { ClusterStats, HealthCheckFailureClass, ImmediateCheckReason } from "./stats.ts";
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
  /**
   * The host entered or left rotation. Leaving: `failure` is the check that took it out, and
   * `failure.confirmed` whether unhealthy_threshold consecutive checks have failed (false when a
   * refused check took it out on its own).
   */
  onActiveHealthChanged(host: Host, healthy: boolean, failure?: HealthCheckTransition): void;
  /** A host taken out by a refused check has now failed unhealthy_threshold checks in a row. */
  onActiveHealthConfirmed(host: Host, failure: HealthCheckTransition): void;
  onActiveHealthPassed(host: Host): void;
  /** A check ended: `reachable` is whether its TCP handshake completed (before the result is recorded). */
  onCheckReachability?(host: Host, reachable: boolean): void;
}

export interface HealthCheckTransition extends HealthCheckFailure {
  readonly consecutiveFailures: number;
  /** unhealthy_threshold consecutive failures reached (Envoy's rule). */
  readonly confirmed: boolean;
}

/** The scheduling clock, injected by tests; checks' own timeouts run on real timers. */
export interface CheckClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const SYSTEM_CLOCK: CheckClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, timerDelay(ms)),
  clearTimeout: (handle) => {
    clearTimeout(handle as NodeJS.Timeout | undefined);
  },
};

/** Out-of-band checks of a passing host are at least max(this, interval / 4) apart. */
export const MIN_IMMEDIATE_CHECK_GAP_MS = 250;
/** A failed out-of-band check (not a refusal) is followed by another this much later. */
export const IMMEDIATE_FOLLOW_UP_MS = 50;

interface HostCheckState {
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  /** The class of the last failure, so a run of equal failures is logged once. */
  lastFailureClass: HealthCheckFailureClass | undefined;
  /** The next check's timer and when it fires (clock time). */
  timer: unknown;
  nextAt: number;
  /** The host's checks on the wire, with the connection kept between them (reuse_connection). */
  readonly probe: HostProbe;
  inFlight: boolean;
  /** Set when the armed timer runs an out-of-band check: what asked for it. */
  immediateReason: ImmediateCheckReason | undefined;
  /** An out-of-band check asked for while a check was running; considered when that one ends. */
  wanted: ImmediateCheckReason | undefined;
  /** When the last out-of-band check started (clock time). */
  lastImmediateAt: number;
  /** Out of rotation by a refused check, unhealthy_threshold not reached yet. */
  outBeforeThreshold: boolean;
  /** The last check's result and what it did to the host: picks the next interval. */
  last: CheckOutcome;
}

export class HealthChecker {
  private readonly config: HealthCheckConfig;
  private readonly owner: HealthCheckOwner;
  private readonly states = new Map<Host, HostCheckState>();
  private stopped = false;
  private initialRemaining = 0;
  private initialWaiters: (() => void)[] = [];
  private readonly clock: CheckClock;
  private readonly immediateGapMs: number;

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
    clock: CheckClock = SYSTEM_CLOCK,
  ) {
    this.config = config;
    this.owner = owner;
    this.clock = clock;
    this.immediateGapMs = Math.max(MIN_IMMEDIATE_CHECK_GAP_MS, config.interval / 4);
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
      nextAt: Infinity,
      probe: new HostProbe(host, this.config, this.transportFor(host)),
      inFlight: false,
      immediateReason: undefined,
      wanted: undefined,
      lastImmediateAt: -Infinity,
      outBeforeThreshold: false,
      last: FIRST_CHECK,
    };
    this.states.set(host, state);
    this.initialRemaining++;
    this.runCheck(host, state);
  }

  removeHost(host: Host): void {
    const state = this.states.get(host);
    if (state === undefined) return;
    this.clock.clearTimeout(state.timer);
    state.probe.close();
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
      if (state.timer !== undefined && !state.inFlight && state.immediateReason === undefined) {
        this.clock.clearTimeout(state.timer);
        this.schedule(host, state);
      }
    }
  }

  /**
   * A sign that `host`'s server may be going away (it closed, reset or refused a connection): check it
   * now, out of band — unless it is out of rotation already (its checks bring it back). Never two
   * checks of a host at once: asked during a check, it is considered when that one ends. While the
   * host passes, rate-limited to one per max(250 ms, interval / 4): a later ask brings the next check
   * forward to that time. After a failed check (the host is then at most unhealthy_threshold − 1
   * failures from leaving rotation) an ask runs at once.
   */
  checkSoon(host: Host, reason: ImmediateCheckReason): void {
    const state = this.states.get(host);
    if (this.stopped || state === undefined || host.failedActiveHc) return;
    if (state.inFlight) {
      state.wanted ??= reason;
      return;
    }
    const now = this.clock.now();
    const at =
      state.consecutiveFailures > 0 ? now : Math.max(now, state.lastImmediateAt + this.immediateGapMs);
    this.bringForward(host, state, reason, at);
  }

  /** Arms an out-of-band check for clock time `at` (now or later), unless the next check is sooner. */
  private bringForward(host: Host, state: HostCheckState, reason: ImmediateCheckReason, at: number): void {
    const now = this.clock.now();
    // The armed check comes no later (a regular one, or an out-of-band one already brought forward).
    if (state.timer !== undefined && state.nextAt <= at) return;
    this.clock.clearTimeout(state.timer);
    state.timer = undefined;
    state.immediateReason = reason;
    if (at <= now) this.runCheck(host, state);
    else this.arm(host, state, at - now);
  }

  stop(): void {
    this.stopped = true;
    for (const state of this.states.values()) {
      this.clock.clearTimeout(state.timer);
      state.probe.close();
    }
    this.states.clear();
    for (const w of this.initialWaiters) w();
    this.initialWaiters = [];
  }

  private schedule(host: Host, state: HostCheckState): void {
    this.arm(host, state, nextCheckDelay(this.config, this.owner.hadTraffic, state.last));
  }

  private arm(host: Host, state: HostCheckState, delayMs: number): void {
    if (this.stopped) return;
    state.nextAt = this.clock.now() + delayMs;
    state.timer = this.clock.setTimeout(() => {
      state.timer = undefined;
      this.runCheck(host, state);
    }, delayMs);
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
    const reason = state.immediateReason;
    state.immediateReason = undefined;
    // This check answers whatever asked before it started.
    state.wanted = undefined;
    if (reason !== undefined) {
      state.lastImmediateAt = this.clock.now();
      this.owner.stats.immediateHealthChecks[reason]++;
      this.owner.log.debug(
        { cluster: this.owner.name, upstream: host.key, reason },
        "immediate health check",
      );
    }
    this.owner.stats.counters.health_check_attempt++;
    const done = (result: ProbeResult): void => {
      state.inFlight = false;
      if (this.stopped || this.states.get(host) !== state) return;
      this.owner.onCheckReachability?.(host, result.reachable);
      state.last = this.record(host, state, result);
      const wanted = state.wanted;
      state.wanted = undefined;
      this.schedule(host, state);
      if (host.failedActiveHc) return;
      const followUp = reason ?? wanted;
      if (result.failure !== undefined && followUp !== undefined) {
        // Suspect and still in rotation: look again shortly (a server closing its idle connections
        // an instant before its listener can reset the first look instead of refusing it).
        this.bringForward(host, state, followUp, this.clock.now() + IMMEDIATE_FOLLOW_UP_MS);
      } else if (wanted !== undefined) this.checkSoon(host, wanted);
    };
    state.inFlight = true;
    state.probe.run(done);
  }

  private record(host: Host, state: HostCheckState, result: ProbeResult): CheckOutcome {
    const c = this.owner.stats.counters;
    const wasPending = host.pendingActiveHc;
    const wasFailed = host.failedActiveHc;
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
        state.outBeforeThreshold = false;
        this.owner.onActiveHealthChanged(host, true);
      }
      this.owner.onActiveHealthPassed(host);
    } else {
      const failure = result.failure;
      c.health_check_failure++;
      if (failure.cls !== "status") c.health_check_network_failure++;
      if (result.sanMismatch) c["ssl.fail_verify_san"]++;
      this.owner.stats.healthCheckFailures[failure.cls]++;
      state.consecutiveSuccesses = 0;
      state.consecutiveFailures++;
      this.logFailure(host, state, failure);
      this.recordFailure(host, state, failure);
    }
    if (wasPending) this.initialDone(host);
    return checkOutcome(result.failure === undefined, wasFailed, host.failedActiveHc, wasPending);
  }

  /**
   * Envoy's rule: unhealthy_threshold consecutive failures take a host out. Tether's: a refused
   * connect (nothing listens there) takes it out at once; the threshold, reached later, confirms it.
   */
  private recordFailure(host: Host, state: HostCheckState, failure: HealthCheckFailure): void {
    const transition: HealthCheckTransition = {
      ...failure,
      consecutiveFailures: state.consecutiveFailures,
      confirmed: state.consecutiveFailures >= this.config.unhealthy_threshold,
    };
    if (!host.failedActiveHc) {
      if (!transition.confirmed && failure.cls !== "refused") return;
      host.failedActiveHc = true;
      state.outBeforeThreshold = !transition.confirmed;
      this.owner.onActiveHealthChanged(host, false, transition);
    } else if (state.outBeforeThreshold && transition.confirmed) {
      state.outBeforeThreshold = false;
      this.owner.onActiveHealthConfirmed(host, transition);
    }
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
