// When a STRICT_DNS cluster resolves its names. On a timer (dns_refresh_rate, or the answer's TTL
// with respect_dns_ttl, or dns_failure_refresh_rate's back-off after a failure), and — what makes a
// rolling restart cheap — at once when a host shows a sign of going away or the last healthy host
// leaves rotation: a replacement server is then usually already in DNS. A failed resolution keeps
// the last good answer, as Envoy does.
import type { ClusterConfig } from "@tether/envoy";
import type { Logger } from "../log.ts";
import { timerDelay } from "../timers.ts";
import { JitteredBackoff, type RandomSource } from "./backoff.ts";
import { EndpointResolver, type ResolvedEndpoint } from "./dns.ts";
import type { ClusterStats, EarlyDnsReason } from "./stats.ts";

/** Early re-resolutions are at most this frequent, whatever the signs. */
export const EARLY_RESOLVE_MIN_INTERVAL_MS = 500;
/**
 * After a sign, re-resolve every EARLY_RESOLVE_MIN_INTERVAL_MS until the answer changes, for at most
 * this long: a DNS server's own cache (CoreDNS in Kubernetes keeps answers 5 s) may still hand out
 * the old set at first.
 */
export const SIGN_WINDOW_MS = 5_000;

export interface DnsRefreshOwner {
  readonly name: string;
  readonly log: Logger;
  readonly stats: ClusterStats;
  /** Replaces the cluster's hosts with the answer's; true when the membership changed. */
  applyDnsAnswer(endpoints: readonly ResolvedEndpoint[]): boolean;
}

export interface RefreshInputs {
  /** The resolution succeeded. */
  readonly ok: boolean;
  readonly refreshRateMs: number;
  /** With respect_dns_ttl, the answer's smallest TTL (undefined: none, or not respected). */
  readonly ttlMs: number | undefined;
  /** After a failure: the failure back-off's next delay, when dns_failure_refresh_rate is set. */
  readonly failureDelayMs: number | undefined;
  /** Inside a sign's window with the answer unchanged: re-resolve soon. */
  readonly watching: boolean;
}

/** The delay before the next timed resolution. A TTL of 0 falls back to dns_refresh_rate. */
export function nextRefreshDelay(i: RefreshInputs): number {
  let delay = i.ok
    ? i.ttlMs !== undefined && i.ttlMs > 0
      ? i.ttlMs
      : i.refreshRateMs
    : (i.failureDelayMs ?? i.refreshRateMs);
  if (i.watching) delay = Math.min(delay, EARLY_RESOLVE_MIN_INTERVAL_MS);
  return delay;
}

export class DnsRefresher {
  private readonly config: ClusterConfig;
  private readonly owner: DnsRefreshOwner;
  private readonly now: () => number;
  private readonly resolver: EndpointResolver;
  private readonly failureBackoff: JitteredBackoff | undefined;
  private timer: NodeJS.Timeout | undefined;
  private dueAt = Infinity;
  private inFlight = false;
  /** A sign arrived while a resolution was in flight: resolve again right after it. */
  private again = false;
  private lastStart = -Infinity;
  private watchUntil = 0;
  private stopped = false;

  constructor(config: ClusterConfig, owner: DnsRefreshOwner, now: () => number, random: RandomSource) {
    this.config = config;
    this.owner = owner;
    this.now = now;
    this.resolver = new EndpointResolver(config);
    const f = config.dns_failure_refresh_rate;
    this.failureBackoff =
      f === undefined ? undefined : new JitteredBackoff(f.base_interval, f.max_interval, random);
  }

  /** The first resolution; resolves when it is done (ok or not). */
  start(): Promise<void> {
    return this.resolveNow();
  }

  /** A sign that the answer may have changed: resolve at once, rate-limited. */
  soon(reason: EarlyDnsReason): void {
    if (this.stopped) return;
    this.owner.stats.earlyDnsResolves[reason]++;
    this.watchUntil = this.now() + SIGN_WINDOW_MS;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.schedule(Math.max(0, this.lastStart + EARLY_RESOLVE_MIN_INTERVAL_MS - this.now()));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.resolver.cancel();
  }

  /** Read after an await: stop() may have run meanwhile. */
  private halted(): boolean {
    return this.stopped;
  }

  /** Runs the next resolution after `delayMs`, unless one is already due sooner. */
  private schedule(delayMs: number): void {
    const at = this.now() + delayMs;
    if (this.timer !== undefined && this.dueAt <= at) return;
    clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.dueAt = Infinity;
      void this.resolveNow();
    }, timerDelay(delayMs));
  }

  private async resolveNow(): Promise<void> {
    if (this.stopped || this.inFlight) return;
    this.inFlight = true;
    this.lastStart = this.now();
    const counters = this.owner.stats.counters;
    counters.update_attempt++;
    let ok = false;
    let changed = false;
    let ttlMs: number | undefined;
    try {
      const answer = await this.resolver.resolve();
      if (this.halted()) return;
      counters.update_success++;
      ok = true;
      ttlMs = this.config.respect_dns_ttl ? answer.ttlMs : undefined;
      changed = this.owner.applyDnsAnswer(answer.endpoints);
      this.failureBackoff?.reset();
    } catch (err) {
      if (this.halted()) return;
      counters.update_failure++;
      this.owner.stats.connectFailures.dns++;
      this.owner.log.warn(
        { cluster: this.owner.name, errorClass: "dns", err: (err as Error).message },
        "dns resolution failed; keeping the last answer",
      );
    } finally {
      this.inFlight = false;
    }
    if (changed) this.watchUntil = 0;
    const delay = nextRefreshDelay({
      ok,
      refreshRateMs: this.config.dns_refresh_rate,
      ttlMs,
      failureDelayMs: ok ? undefined : this.failureBackoff?.next(),
      watching: this.now() < this.watchUntil,
    });
    if (this.again) {
      this.again = false;
      this.schedule(EARLY_RESOLVE_MIN_INTERVAL_MS);
    }
    this.schedule(delay);
  }
}
