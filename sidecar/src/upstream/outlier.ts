// Passive outlier detection: consecutive 5xx / gateway failures / local-origin failures eject a host
// for base_ejection_time × times ejected (capped), within max_ejection_percent — or one host when
// always_eject_one_host is set, so a two-host cluster can still eject its dead member.
import type { OutlierDetectionConfig } from "@tether/envoy";
import { timerDelay } from "../timers.ts";
import type { RandomSource } from "./backoff.ts";
import type { Host } from "./host.ts";
import type { ClusterStats } from "./stats.ts";

export type LocalOriginFailure = "connect_failed" | "timeout" | "reset";

export interface OutlierOwner {
  readonly stats: ClusterStats;
  hostCount(): number;
  allHosts(): Iterable<Host>;
  onOutlierChanged(host: Host, ejected: boolean): void;
}

export class OutlierDetector {
  private readonly config: OutlierDetectionConfig;
  private readonly owner: OutlierOwner;
  private readonly now: () => number;
  private readonly random: RandomSource;
  private readonly timer: NodeJS.Timeout;

  constructor(config: OutlierDetectionConfig, owner: OutlierOwner, now: () => number, random: RandomSource) {
    this.config = config;
    this.owner = owner;
    this.now = now;
    this.random = random;
    this.timer = setInterval(() => {
      this.sweep();
    }, timerDelay(config.interval));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** An HTTP response came back from `host`. */
  recordStatus(host: Host, status: number): void {
    if (status >= 500) {
      host.consecutive5xx++;
      if (status >= 502 && status <= 504) host.consecutiveGatewayFailure++;
      else host.consecutiveGatewayFailure = 0;
      this.check(host);
      return;
    }
    host.consecutive5xx = 0;
    host.consecutiveGatewayFailure = 0;
  }

  /** A locally originated failure (connect failure, timeout, reset) talking to `host`. */
  recordLocalFailure(host: Host, kind: LocalOriginFailure): void {
    if (this.config.split_external_local_origin_errors) {
      host.consecutiveLocalOriginFailure++;
      if (host.consecutiveLocalOriginFailure >= this.config.consecutive_local_origin_failure) {
        this.tryEject(host, this.config.enforcing_consecutive_local_origin_failure, undefined);
      }
      return;
    }
    // Without the split, Envoy maps local failures onto HTTP codes: timeout → 504, others → 503.
    this.recordStatus(host, kind === "timeout" ? 504 : 503);
  }

  /** A connection to `host` succeeded (only meaningful with split_external_local_origin_errors). */
  recordLocalSuccess(host: Host): void {
    host.consecutiveLocalOriginFailure = 0;
  }

  /** Active health checking passed: Envoy unejects by default (successful_active_health_check_uneject_host). */
  activeCheckPassed(host: Host): void {
    if (host.outlierEjected && this.config.successful_active_health_check_uneject_host) this.uneject(host);
  }

  private check(host: Host): void {
    const c = this.config;
    if (c.consecutive_5xx > 0 && host.consecutive5xx >= c.consecutive_5xx) {
      this.owner.stats.counters.outlier_detection_ejections_detected_consecutive_5xx++;
      this.tryEject(host, c.enforcing_consecutive_5xx, "5xx");
    } else if (
      c.consecutive_gateway_failure > 0 &&
      host.consecutiveGatewayFailure >= c.consecutive_gateway_failure
    ) {
      this.owner.stats.counters.outlier_detection_ejections_detected_consecutive_gateway_failure++;
      this.tryEject(host, c.enforcing_consecutive_gateway_failure, "gateway");
    }
  }

  private tryEject(host: Host, enforcingPercent: number, _kind: "5xx" | "gateway" | undefined): void {
    if (host.outlierEjected) return;
    host.consecutive5xx = 0;
    host.consecutiveGatewayFailure = 0;
    host.consecutiveLocalOriginFailure = 0;
    if (this.random() * 100 >= enforcingPercent) return;
    const stats = this.owner.stats;
    const active = stats.outlier_detection_ejections_active;
    const ejectedPercent = (100 * (active + 1)) / Math.max(1, this.owner.hostCount());
    const allowed =
      ejectedPercent <= this.config.max_ejection_percent ||
      (this.config.always_eject_one_host && active === 0);
    if (!allowed) {
      stats.counters.outlier_detection_ejections_overflow++;
      return;
    }
    host.ejectionCount++;
    const duration = Math.min(
      this.config.base_ejection_time * host.ejectionCount,
      Math.max(this.config.max_ejection_time, this.config.base_ejection_time),
    );
    host.outlierEjected = true;
    host.ejectedUntil = this.now() + duration;
    stats.outlier_detection_ejections_active++;
    stats.counters.outlier_detection_ejections_enforced_total++;
    this.owner.onOutlierChanged(host, true);
  }

  private uneject(host: Host): void {
    host.outlierEjected = false;
    this.owner.stats.outlier_detection_ejections_active--;
    this.owner.onOutlierChanged(host, false);
  }

  /** Interval sweep: return hosts whose ejection elapsed; slowly forget past ejections of good hosts. */
  sweep(): void {
    const now = this.now();
    for (const host of this.owner.allHosts()) {
      if (host.outlierEjected) {
        if (now >= host.ejectedUntil) this.uneject(host);
      } else if (host.ejectionCount > 0) {
        host.ejectionCount--;
      }
    }
  }
}
