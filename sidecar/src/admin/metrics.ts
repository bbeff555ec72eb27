// Prometheus text in Envoy's naming: envoy_cluster_<stat>{envoy_cluster_name="…"},
// envoy_http_<stat>{envoy_http_conn_manager_prefix="…"}, envoy_tcp_<stat>{envoy_tcp_prefix="…"}.
// Tether-only series are tether_*.
import { DecisionCacheStats } from "../listeners/http/decision-cache.ts";
import { HttpListener } from "../listeners/http/listener.ts";
import type { HttpStats } from "../listeners/http/stats.ts";
import type { Listener } from "../listeners/manager.ts";
import { TcpListener } from "../listeners/tcp.ts";
import type { Cluster } from "../upstream/cluster.ts";
import type { XdsStats } from "../xds/subscriber.ts";
import {
  CLUSTER_COUNTERS,
  CONNECT_FAILURE_CLASSES,
  ENVOY_BUCKETS_MS,
  HEALTH_CHECK_FAILURE_CLASSES,
  IMMEDIATE_CHECK_REASONS,
  EARLY_DNS_REASONS,
  type Histogram,
} from "../upstream/stats.ts";

export interface ReloadCounts {
  success: number;
  failure: number;
  /** False from a rejected reload until the next accepted one: the old config is still running. */
  lastSuccessful: boolean;
}

type Sample = [labels: string, value: number];

/**
 * The text format. Samples with the same labels are one series, summed (Prometheus would keep only
 * one of two equal series): two decision caches under one stat_prefix, say.
 */
class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: "counter" | "gauge", samples: readonly Sample[]): void {
    if (samples.length === 0) return;
    const series = new Map<string, number>();
    for (const [labels, value] of samples) series.set(labels, (series.get(labels) ?? 0) + value);
    this.lines.push(`# TYPE ${name} ${type}`);
    for (const [labels, value] of series) this.lines.push(`${name}{${labels}} ${value}`);
  }

  histogram(name: string, samples: readonly [labels: string, h: Histogram][]): void {
    if (samples.length === 0) return;
    const series = new Map<string, { counts: number[]; sum: number; count: number }>();
    for (const [labels, h] of samples) {
      const s = series.get(labels) ?? { counts: ENVOY_BUCKETS_MS.map(() => 0), sum: 0, count: 0 };
      ENVOY_BUCKETS_MS.forEach((_, i) => {
        s.counts[i] = (s.counts[i] ?? 0) + (h.counts[i] ?? 0);
      });
      s.sum += h.sum;
      s.count += h.count;
      series.set(labels, s);
    }
    this.lines.push(`# TYPE ${name} histogram`);
    for (const [labels, h] of series) {
      let acc = 0;
      ENVOY_BUCKETS_MS.forEach((le, i) => {
        acc += h.counts[i] ?? 0;
        this.lines.push(`${name}_bucket{${labels},le="${le}"} ${acc}`);
      });
      this.lines.push(`${name}_bucket{${labels},le="+Inf"} ${h.count}`);
      this.lines.push(`${name}_sum{${labels}} ${h.sum}`);
      this.lines.push(`${name}_count{${labels}} ${h.count}`);
    }
  }

  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

const RESPONSE_CLASSES = ["1", "2", "3", "4", "5"] as const;
const RESPONSE_CLASS_COUNTERS: ReadonlySet<string> = new Set(
  RESPONSE_CLASSES.map((k) => `upstream_rq_${k}xx`),
);

function clusterFamilies(out: Exposition, clusters: readonly Cluster[]): void {
  const l = (c: Cluster): string => `envoy_cluster_name="${label(c.name)}"`;
  for (const counter of CLUSTER_COUNTERS) {
    if (RESPONSE_CLASS_COUNTERS.has(counter)) continue;
    // As Envoy's Prometheus output: ssl.fail_verify_san → envoy_cluster_ssl_fail_verify_san.
    out.family(
      `envoy_cluster_${counter.replaceAll(".", "_")}`,
      "counter",
      clusters.map((c) => [l(c), c.stats.counters[counter]]),
    );
  }
  const gauges: [string, (c: Cluster) => number][] = [
    ["upstream_cx_active", (c) => c.stats.upstream_cx_active],
    ["upstream_rq_active", (c) => c.stats.upstream_rq_active],
    ["upstream_rq_pending_active", (c) => c.stats.upstream_rq_pending_active],
    ["outlier_detection_ejections_active", (c) => c.stats.outlier_detection_ejections_active],
    ["membership_healthy", (c) => c.membership().healthy],
    ["membership_degraded", (c) => c.membership().degraded],
    ["membership_total", (c) => c.membership().total],
  ];
  for (const [name, get] of gauges)
    out.family(
      `envoy_cluster_${name}`,
      "gauge",
      clusters.map((c) => [l(c), get(c)]),
    );
  // Envoy's Prometheus output folds upstream_rq_<N>xx into one family with a class label.
  out.family(
    "envoy_cluster_upstream_rq_xx",
    "counter",
    clusters.flatMap((c) =>
      RESPONSE_CLASSES.map((k): Sample => [
        `${l(c)},envoy_response_code_class="${k}"`,
        c.stats.counters[`upstream_rq_${k}xx`],
      ]),
    ),
  );
  out.histogram(
    "envoy_cluster_upstream_rq_time",
    clusters.map((c) => [l(c), c.stats.rqTime]),
  );
  out.family(
    "tether_held_requests",
    "gauge",
    clusters.map((c) => [l(c), c.stats.held_requests]),
  );
  out.family(
    "tether_held_requests_woken_total",
    "counter",
    clusters.map((c) => [l(c), c.stats.held_requests_woken]),
  );
  out.family(
    "tether_upstream_hosts_unreachable",
    "gauge",
    clusters.map((c) => [l(c), c.unreachableCount()]),
  );
  out.family(
    "tether_upstream_connect_failures_total",
    "counter",
    clusters.flatMap((c) =>
      CONNECT_FAILURE_CLASSES.map((cls): Sample => [`${l(c)},class="${cls}"`, c.stats.connectFailures[cls]]),
    ),
  );
  out.family(
    "tether_health_check_failures_total",
    "counter",
    clusters.flatMap((c) =>
      c.config.health_checks.length === 0
        ? []
        : HEALTH_CHECK_FAILURE_CLASSES.map((cls): Sample => [
            `${l(c)},class="${cls}"`,
            c.stats.healthCheckFailures[cls],
          ]),
    ),
  );
  out.family(
    "tether_health_check_immediate_total",
    "counter",
    clusters.flatMap((c) =>
      c.config.health_checks.length === 0
        ? []
        : IMMEDIATE_CHECK_REASONS.map((reason): Sample => [
            `${l(c)},reason="${reason}"`,
            c.stats.immediateHealthChecks[reason],
          ]),
    ),
  );
  out.family(
    "tether_dns_early_resolve_total",
    "counter",
    clusters.flatMap((c) =>
      c.config.type !== "STRICT_DNS"
        ? []
        : EARLY_DNS_REASONS.map((reason): Sample => [
            `${l(c)},reason="${reason}"`,
            c.stats.earlyDnsResolves[reason],
          ]),
    ),
  );
}

const HTTP_FIELDS = [
  ["downstream_cx_total", "counter"],
  ["downstream_cx_active", "gauge"],
  ["downstream_cx_protocol_error", "counter"],
  ["downstream_rq_total", "counter"],
  ["downstream_rq_active", "gauge"],
  ["downstream_rq_timeout", "counter"],
  ["downstream_rq_header_timeout", "counter"],
  ["downstream_rq_idle_timeout", "counter"],
  ["downstream_cx_idle_timeout", "counter"],
  ["downstream_rq_ws_on_non_ws_route", "counter"],
  ["no_route", "counter"],
  ["no_cluster", "counter"],
  ["rq_overflow", "counter"],
] as const;

const TCP_FIELDS = [
  ["downstream_cx_total", "counter"],
  ["downstream_cx_active", "gauge"],
  ["downstream_cx_rx_bytes_total", "counter"],
  ["downstream_cx_tx_bytes_total", "counter"],
  ["downstream_cx_no_route", "counter"],
  ["idle_timeout", "counter"],
  ["upstream_connect_attempts_exceeded", "counter"],
] as const;

function listenerFamilies(out: Exposition, listeners: readonly Listener[]): void {
  const http = listeners.filter((x): x is HttpListener => x instanceof HttpListener);
  const hl = (x: HttpListener): string => `envoy_http_conn_manager_prefix="${label(x.stats.prefix)}"`;
  // Listeners that share a stat_prefix share one stats object: each is written once.
  const httpStats = [...new Set(http.map((x) => x.stats))];
  const hp = (st: HttpStats): string => `envoy_http_conn_manager_prefix="${label(st.prefix)}"`;
  for (const [field, type] of HTTP_FIELDS) {
    out.family(
      `envoy_http_${field}`,
      type,
      httpStats.map((st) => [hp(st), st[field]]),
    );
  }
  const classes = ["1", "2", "3", "4", "5"] as const;
  out.family(
    "envoy_http_downstream_rq_xx",
    "counter",
    httpStats.flatMap((st) =>
      classes.map((k): Sample => [`${hp(st)},envoy_response_code_class="${k}"`, st[`downstream_rq_${k}xx`]]),
    ),
  );
  out.histogram(
    "envoy_http_downstream_rq_time",
    httpStats.map((st) => [hp(st), st.downstream_rq_time]),
  );
  const cached = http.filter((x) => x.cache !== undefined);
  const cs = (x: HttpListener): DecisionCacheStats => x.cache?.stats ?? new DecisionCacheStats();
  for (const field of ["hits", "misses", "insertions", "expired", "evicted"] as const) {
    out.family(
      `tether_decision_cache_${field}_total`,
      "counter",
      cached.map((x) => [hl(x), cs(x)[field]]),
    );
  }
  out.family(
    "tether_decision_cache_invalidations_total",
    "counter",
    cached.flatMap((x): Sample[] => [
      [`${hl(x)},reason="session"`, cs(x).invalidated_session],
      [`${hl(x)},reason="policy_changed"`, cs(x).invalidated_policy],
    ]),
  );
  out.family(
    "tether_decision_cache_entries",
    "gauge",
    cached.map((x) => [hl(x), x.cache?.size ?? 0]),
  );
  streamFamilies(out, http, hl);
  const tcpStats = [
    ...new Set(listeners.filter((x): x is TcpListener => x instanceof TcpListener).map((x) => x.stats)),
  ];
  for (const [field, type] of TCP_FIELDS) {
    out.family(
      `envoy_tcp_${field}`,
      type,
      tcpStats.map((st) => [`envoy_tcp_prefix="${label(st.prefix)}"`, st[field]]),
    );
  }
  connectionLimitFamilies(out, listeners);
}

/**
 * Each listener's connection cap: the connection_limit filter's stats under its stat_prefix, and
 * the default limit's overflow as Envoy's listener stat (labelled with the address, as Envoy's).
 */
function connectionLimitFamilies(out: Exposition, listeners: readonly Listener[]): void {
  const defaults = listeners.filter((x) => x.limit.prefix === undefined);
  out.family(
    "envoy_listener_downstream_cx_overflow",
    "counter",
    defaults.map((x) => [
      `envoy_listener_address="${label(`${x.address.address}_${x.address.port}`)}"`,
      x.limit.stats.downstream_cx_overflow,
    ]),
  );
  const filtered = listeners.filter((x) => x.limit.prefix !== undefined);
  const cl = (x: Listener): string => `envoy_connection_limit_prefix="${label(x.limit.prefix ?? "")}"`;
  out.family(
    "envoy_connection_limit_limited_connections",
    "counter",
    filtered.map((x) => [cl(x), x.limit.stats.limited_connections]),
  );
  out.family(
    "envoy_connection_limit_active_connections",
    "gauge",
    filtered.map((x) => [cl(x), x.limit.active]),
  );
}

/** The decision caches' subscriptions to the policy servers' notification streams. */
function streamFamilies(
  out: Exposition,
  http: readonly HttpListener[],
  hl: (x: HttpListener) => string,
): void {
  const subscribed = http.flatMap((x) =>
    x.subscription === undefined ? [] : [{ x, s: x.subscription.stream }],
  );
  for (const field of ["connects", "disconnects", "events", "bad_events"] as const) {
    out.family(
      `tether_decision_cache_stream_${field}_total`,
      "counter",
      subscribed.map(({ x, s }) => [hl(x), s.stats[field]]),
    );
  }
  out.family(
    "tether_decision_cache_stream_connected",
    "gauge",
    subscribed.map(({ x, s }) => [hl(x), s.connected ? 1 : 0]),
  );
}

/** The ADS client, in Envoy's names (control_plane.*, cluster_manager.cds.*, listener_manager.lds.*). */
function xdsFamilies(out: Exposition, xds: XdsStats): void {
  out.family("envoy_control_plane_connected_state", "gauge", [["", xds.connected ? 1 : 0]]);
  for (const [prefix, c] of [
    ["envoy_cluster_manager_cds", xds.cds],
    ["envoy_listener_manager_lds", xds.lds],
  ] as const) {
    for (const field of ["update_attempt", "update_success", "update_rejected"] as const) {
      out.family(`${prefix}_${field}`, "counter", [["", c[field]]]);
    }
  }
}

export function renderMetrics(
  clusters: readonly Cluster[],
  listeners: readonly Listener[],
  reloads: ReloadCounts,
  live: boolean,
  xds?: XdsStats,
): string {
  const out = new Exposition();
  out.family("envoy_server_live", "gauge", [["", live ? 1 : 0]]);
  if (xds !== undefined) xdsFamilies(out, xds);
  clusterFamilies(out, clusters);
  listenerFamilies(out, listeners);
  out.family("tether_config_reload_total", "counter", [
    ['result="success"', reloads.success],
    ['result="failure"', reloads.failure],
  ]);
  out.family("tether_config_last_reload_successful", "gauge", [["", reloads.lastSuccessful ? 1 : 0]]);
  return out.text().replace(/\{\} /g, " ");
}
