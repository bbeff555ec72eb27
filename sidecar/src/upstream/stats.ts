// Plain-number counters per cluster, rendered to Prometheus text at scrape time. Keeping them as
// fields (not prom-client label lookups) keeps the per-request cost to a few increments.

/** Envoy's default histogram buckets, in milliseconds. */
export const ENVOY_BUCKETS_MS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
] as const;

export class Histogram {
  readonly counts: number[] = ENVOY_BUCKETS_MS.map(() => 0);
  count = 0;
  sum = 0;

  observe(ms: number): void {
    this.count++;
    this.sum += ms;
    for (let i = 0; i < ENVOY_BUCKETS_MS.length; i++) {
      if (ms <= (ENVOY_BUCKETS_MS[i] ?? Infinity)) {
        this.counts[i] = (this.counts[i] ?? 0) + 1;
        return;
      }
    }
  }
}

export const CLUSTER_COUNTERS = [
  "upstream_cx_total",
  "upstream_cx_connect_fail",
  "upstream_cx_connect_timeout",
  "upstream_cx_destroy_local",
  "upstream_cx_destroy_remote",
  "upstream_cx_overflow",
  "upstream_cx_rx_bytes_total",
  "upstream_cx_tx_bytes_total",
  // Envoy's cluster.<name>.ssl.fail_verify_san: a certificate failed match_typed_subject_alt_names.
  "ssl.fail_verify_san",
  "upstream_rq_total",
  "upstream_rq_completed",
  "upstream_rq_retry",
  "upstream_rq_retry_success",
  "upstream_rq_retry_overflow",
  "upstream_rq_retry_limit_exceeded",
  "upstream_rq_retry_backoff_exponential",
  "upstream_rq_pending_overflow",
  "upstream_rq_pending_total",
  "upstream_rq_timeout",
  "upstream_rq_per_try_timeout",
  "upstream_rq_rx_reset",
  "upstream_rq_1xx",
  "upstream_rq_2xx",
  "upstream_rq_3xx",
  "upstream_rq_4xx",
  "upstream_rq_5xx",
  "health_check_attempt",
  "health_check_success",
  "health_check_failure",
  "health_check_network_failure",
  "outlier_detection_ejections_enforced_total",
  "outlier_detection_ejections_detected_consecutive_5xx",
  "outlier_detection_ejections_detected_consecutive_gateway_failure",
  "outlier_detection_ejections_overflow",
  "lb_healthy_panic",
  "membership_change",
  "update_attempt",
  "update_success",
  "update_failure",
  // EDS: an assignment the schema refused (NACKed), and one with no endpoints.
  "update_rejected",
  "update_empty",
] as const;
export type ClusterCounter = (typeof CLUSTER_COUNTERS)[number];

export const CONNECT_FAILURE_CLASSES = [
  "refused",
  "timeout",
  "dns",
  "tls",
  "unreachable",
  "reset",
  "other",
] as const;
export type ConnectFailureClass = (typeof CONNECT_FAILURE_CLASSES)[number];

/** Why an active health check failed: a connect failure class, or `status` (an unexpected HTTP answer). */
export const HEALTH_CHECK_FAILURE_CLASSES = [...CONNECT_FAILURE_CLASSES, "status"] as const;
export type HealthCheckFailureClass = (typeof HEALTH_CHECK_FAILURE_CLASSES)[number];

/**
 * Why an out-of-band ("immediate") active health check of a host was run: its server closed
 * (`remote_close`, a FIN we did not ask for) or reset (`remote_reset`) an established connection, or
 * a new connection to it was refused (`connect_refused`) or reset during the connect (`connect_reset`).
 */
export const IMMEDIATE_CHECK_REASONS = [
  "remote_close",
  "remote_reset",
  "connect_refused",
  "connect_reset",
] as const;
export type ImmediateCheckReason = (typeof IMMEDIATE_CHECK_REASONS)[number];

/**
 * Why a STRICT_DNS cluster re-resolved before its refresh timer: one of its hosts showed a sign of
 * going away (`going_away`), or its last healthy host left rotation (`all_unhealthy`).
 */
export const EARLY_DNS_REASONS = ["going_away", "all_unhealthy"] as const;
export type EarlyDnsReason = (typeof EARLY_DNS_REASONS)[number];

export class ClusterStats {
  readonly counters: Record<ClusterCounter, number>;
  // Gauges.
  upstream_cx_active = 0;
  upstream_rq_active = 0;
  upstream_rq_pending_active = 0;
  outlier_detection_ejections_active = 0;
  /** Requests waiting in a retry back-off or in the pending queue: the "held" requests. */
  held_requests = 0;
  /** Held requests and connections woken from a back-off because a host may be usable (host-wait.ts). */
  held_requests_woken = 0;
  readonly rqTime = new Histogram();
  readonly connectFailures: Record<ConnectFailureClass, number>;
  readonly healthCheckFailures: Record<HealthCheckFailureClass, number>;
  /** Out-of-band health checks run, by what asked for them (also counted in health_check_attempt). */
  readonly immediateHealthChecks: Record<ImmediateCheckReason, number>;
  /** Re-resolutions a sign asked for ahead of the refresh timer (STRICT_DNS). */
  readonly earlyDnsResolves: Record<EarlyDnsReason, number> = { going_away: 0, all_unhealthy: 0 };

  constructor() {
    this.counters = Object.fromEntries(CLUSTER_COUNTERS.map((c) => [c, 0])) as Record<ClusterCounter, number>;
    this.connectFailures = Object.fromEntries(CONNECT_FAILURE_CLASSES.map((c) => [c, 0])) as Record<
      ConnectFailureClass,
      number
    >;
    this.healthCheckFailures = Object.fromEntries(HEALTH_CHECK_FAILURE_CLASSES.map((c) => [c, 0])) as Record<
      HealthCheckFailureClass,
      number
    >;
    this.immediateHealthChecks = Object.fromEntries(IMMEDIATE_CHECK_REASONS.map((r) => [r, 0])) as Record<
      ImmediateCheckReason,
      number
    >;
  }

  countStatus(status: number): void {
    const c = this.counters;
    if (status < 200) c.upstream_rq_1xx++;
    else if (status < 300) c.upstream_rq_2xx++;
    else if (status < 400) c.upstream_rq_3xx++;
    else if (status < 500) c.upstream_rq_4xx++;
    else c.upstream_rq_5xx++;
  }
}

/** Per-host numbers, shown at /clusters like Envoy's admin page. */
export class HostStats {
  cx_active = 0;
  cx_total = 0;
  cx_connect_fail = 0;
  rq_total = 0;
  rq_error = 0;
  rq_success = 0;
  rq_timeout = 0;
  rq_active = 0;
}
