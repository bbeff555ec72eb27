/**
 * The Grafana dashboard shipped with the Helm chart, as data: each panel's PromQL lives here once,
 * so the chart's JSON is generated from it and tests can evaluate every query against a real
 * Prometheus scraping real sidecars and a real operator.
 */
import { LOCAL_ADMIN_CLUSTER, PUBLIC_ADMIN_STAT_PREFIX } from "../render/envoy.ts";

/**
 * The sidecar's public admin port is a listener forwarding to its own loopback admin (the kubelet's
 * probes, Prometheus' scrapes): that listener and cluster are not traffic of agents or brokers, so
 * every panel leaves them out.
 */
export const NOT_ADMIN_CLUSTER = `envoy_cluster_name!="${LOCAL_ADMIN_CLUSTER}"`;
export const NOT_ADMIN_LISTENER = `envoy_http_conn_manager_prefix!="${PUBLIC_ADMIN_STAT_PREFIX}"`;

/** Label selectors every data-plane query carries (Grafana template variables). */
const SIDECAR = `namespace=~"$namespace", app_kubernetes_io_instance=~"$agent", pod=~"$pod", envoy_cluster_name=~"$cluster", ${NOT_ADMIN_CLUSTER}`;
const LISTENER = 'namespace=~"$namespace", app_kubernetes_io_instance=~"$agent", pod=~"$pod"';
const OPERATOR = 'namespace=~"$operator_namespace"';
/** The one work queue of the operator, as controller-runtime labels it (operator/src/metrics.ts). */
const QUEUE = `${OPERATOR}, name="tether"`;
const RATE = "$__rate_interval";

export interface PanelTarget {
  readonly expr: string;
  readonly legend: string;
}

/** A step of a stat panel's thresholds: from `value` (null: from minus infinity) on, `color`. */
export interface ThresholdStep {
  readonly value: number | null;
  readonly color: "green" | "yellow" | "orange" | "red";
}

export interface Panel {
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly targets: readonly PanelTarget[];
  /** A single number with colored thresholds (default: a time series). */
  readonly stat?: { readonly thresholds: readonly ThresholdStep[] };
}

export interface Row {
  readonly title: string;
  readonly panels: readonly Panel[];
}

const byCluster = (expr: string): string => `sum by (envoy_cluster_name) (${expr})`;
const quantile = (q: number, metric: string, by: string): string =>
  `histogram_quantile(${q}, sum by (le, ${by}) (rate(${metric}[${RATE}])))`;

const byListener = (expr: string): string => `sum by (envoy_tcp_prefix) (${expr})`;
const GREEN_BELOW_ONE_RED: readonly ThresholdStep[] = [
  { value: null, color: "red" },
  { value: 1, color: "green" },
];

export const DASHBOARD_ROWS: readonly Row[] = [
  {
    title: "Overview",
    panels: [
      {
        title: "Healthy policy servers",
        description:
          "Policy servers passing health checks, summed over the selected agents (the fewest any one replica sees). Red at 0: requests are held, then fail.",
        unit: "short",
        stat: { thresholds: GREEN_BELOW_ONE_RED },
        targets: [
          {
            expr: `sum(min by (namespace, app_kubernetes_io_instance) (envoy_cluster_membership_healthy{${SIDECAR}, envoy_cluster_name="policy-server"}))`,
            legend: "healthy",
          },
        ],
      },
      {
        title: "Held requests now",
        description: "Requests waiting while no upstream answers, over every selected sidecar.",
        unit: "short",
        stat: {
          thresholds: [
            { value: null, color: "green" },
            { value: 1, color: "yellow" },
            { value: 50, color: "red" },
          ],
        },
        targets: [{ expr: `sum(tether_held_requests{${SIDECAR}})`, legend: "held" }],
      },
      {
        title: "Upstream error ratio",
        description: "Share of upstream requests answered 5xx, over every selected cluster.",
        unit: "percentunit",
        stat: {
          thresholds: [
            { value: null, color: "green" },
            { value: 0.01, color: "yellow" },
            { value: 0.05, color: "red" },
          ],
        },
        targets: [
          {
            expr: `sum(rate(envoy_cluster_upstream_rq_xx{${SIDECAR}, envoy_response_code_class="5"}[${RATE}])) / clamp_min(sum(rate(envoy_cluster_upstream_rq_total{${SIDECAR}}[${RATE}])), 1e-9)`,
            legend: "error ratio",
          },
        ],
      },
      {
        title: "Sidecars on their last config",
        description:
          "Share of sidecars whose last configuration reload was accepted (tether_config_last_reload_successful); below 1, some run a previous configuration.",
        unit: "percentunit",
        stat: {
          thresholds: [
            { value: null, color: "red" },
            { value: 1, color: "green" },
          ],
        },
        targets: [{ expr: `avg(tether_config_last_reload_successful{${LISTENER}})`, legend: "accepted" }],
      },
    ],
  },
  {
    title: "Data plane: requests",
    panels: [
      {
        title: "Request rate by cluster",
        description: "Requests the sidecars sent to each upstream cluster.",
        unit: "reqps",
        targets: [
          {
            expr: byCluster(`rate(envoy_cluster_upstream_rq_total{${SIDECAR}}[${RATE}])`),
            legend: "{{envoy_cluster_name}}",
          },
        ],
      },
      {
        title: "Error ratio by cluster",
        description:
          "Share of upstream requests answered 5xx (including the sidecar's own 503 when no server answered).",
        unit: "percentunit",
        targets: [
          {
            expr: `${byCluster(`rate(envoy_cluster_upstream_rq_xx{${SIDECAR}, envoy_response_code_class="5"}[${RATE}])`)} / clamp_min(${byCluster(`rate(envoy_cluster_upstream_rq_total{${SIDECAR}}[${RATE}])`)}, 1e-9)`,
            legend: "{{envoy_cluster_name}}",
          },
        ],
      },
      {
        title: "Upstream latency",
        description: "p50 and p99 of upstream request time, per cluster.",
        unit: "ms",
        targets: [
          {
            expr: quantile(0.5, `envoy_cluster_upstream_rq_time_bucket{${SIDECAR}}`, "envoy_cluster_name"),
            legend: "p50 {{envoy_cluster_name}}",
          },
          {
            expr: quantile(0.99, `envoy_cluster_upstream_rq_time_bucket{${SIDECAR}}`, "envoy_cluster_name"),
            legend: "p99 {{envoy_cluster_name}}",
          },
        ],
      },
      {
        title: "Client-visible responses by class",
        description: "Responses the sidecars' HTTP listeners returned to agents, by status class.",
        unit: "reqps",
        targets: [
          {
            expr: `sum by (envoy_response_code_class) (rate(envoy_http_downstream_rq_xx{${LISTENER}, ${NOT_ADMIN_LISTENER}}[${RATE}]))`,
            legend: "{{envoy_response_code_class}}xx",
          },
        ],
      },
      {
        title: "Retries",
        description: "Retries by cluster: connect failures and resets retried with back-off.",
        unit: "reqps",
        targets: [
          {
            expr: byCluster(`rate(envoy_cluster_upstream_rq_retry{${SIDECAR}}[${RATE}])`),
            legend: "{{envoy_cluster_name}}",
          },
        ],
      },
    ],
  },
  {
    title: "Data plane: connections and endpoints",
    panels: [
      {
        title: "Active upstream connections",
        description: "Open pooled connections from the sidecars to each cluster.",
        unit: "short",
        targets: [
          {
            expr: byCluster(`envoy_cluster_upstream_cx_active{${SIDECAR}}`),
            legend: "{{envoy_cluster_name}}",
          },
        ],
      },
      {
        title: "Held requests",
        description:
          "Requests waiting while no upstream answers (retry back-off or pending), instead of failing.",
        unit: "short",
        targets: [{ expr: byCluster(`tether_held_requests{${SIDECAR}}`), legend: "{{envoy_cluster_name}}" }],
      },
      {
        title: "Failed connects by class",
        description: "Connection attempts that failed: refused, timeout, dns, tls, unreachable.",
        unit: "cps",
        targets: [
          {
            expr: `sum by (class) (rate(tether_upstream_connect_failures_total{${SIDECAR}}[${RATE}]))`,
            legend: "{{class}}",
          },
        ],
      },
      {
        title: "Endpoints healthy vs total",
        description: "Upstream servers passing health checks, against all known servers.",
        unit: "short",
        targets: [
          {
            expr: byCluster(`envoy_cluster_membership_healthy{${SIDECAR}}`),
            legend: "healthy {{envoy_cluster_name}}",
          },
          {
            expr: byCluster(`envoy_cluster_membership_total{${SIDECAR}}`),
            legend: "total {{envoy_cluster_name}}",
          },
        ],
      },
      {
        title: "Outlier ejections",
        description: "Servers currently ejected by passive outlier detection.",
        unit: "short",
        targets: [
          {
            expr: byCluster(`envoy_cluster_outlier_detection_ejections_active{${SIDECAR}}`),
            legend: "{{envoy_cluster_name}}",
          },
        ],
      },
      {
        title: "Reconnects after restarts",
        description:
          "Upstream connections closed by the server (a restart) or by the sidecar after failed health checks, and new connections opened in their place.",
        unit: "cps",
        targets: [
          {
            expr: byCluster(`rate(envoy_cluster_upstream_cx_destroy_remote{${SIDECAR}}[${RATE}])`),
            legend: "closed by server {{envoy_cluster_name}}",
          },
          {
            expr: byCluster(`rate(envoy_cluster_upstream_cx_destroy_local{${SIDECAR}}[${RATE}])`),
            legend: "closed by sidecar {{envoy_cluster_name}}",
          },
          {
            expr: byCluster(`rate(envoy_cluster_upstream_cx_total{${SIDECAR}}[${RATE}])`),
            legend: "opened {{envoy_cluster_name}}",
          },
        ],
      },
    ],
  },
  {
    title: "Data plane: limits and health checks",
    panels: [
      {
        title: "Overflows",
        description:
          "Connections, pending requests and retries refused by a cluster's circuit breakers (cx / pending / retry overflow).",
        unit: "cps",
        targets: [
          {
            expr: byCluster(`rate(envoy_cluster_upstream_cx_overflow{${SIDECAR}}[${RATE}])`),
            legend: "connections {{envoy_cluster_name}}",
          },
          {
            expr: byCluster(`rate(envoy_cluster_upstream_rq_pending_overflow{${SIDECAR}}[${RATE}])`),
            legend: "pending {{envoy_cluster_name}}",
          },
          {
            expr: byCluster(`rate(envoy_cluster_upstream_rq_retry_overflow{${SIDECAR}}[${RATE}])`),
            legend: "retries {{envoy_cluster_name}}",
          },
        ],
      },
      {
        title: "Health-check failures by class",
        description: "Failed active health checks: refused, timeout, dns, tls, unreachable, reset, status.",
        unit: "cps",
        targets: [
          {
            expr: `sum by (envoy_cluster_name, class) (rate(tether_health_check_failures_total{${SIDECAR}}[${RATE}]))`,
            legend: "{{envoy_cluster_name}} {{class}}",
          },
        ],
      },
      {
        title: "Panic routing",
        description:
          "Requests routed to every host because too few were healthy (lb_healthy_panic): the cluster is in panic mode.",
        unit: "reqps",
        targets: [
          {
            expr: byCluster(`rate(envoy_cluster_lb_healthy_panic{${SIDECAR}}[${RATE}])`),
            legend: "{{envoy_cluster_name}}",
          },
        ],
      },
      {
        title: "Sidecar memory and CPU",
        description: "Resident memory (left) and CPU seconds per second of each sidecar.",
        unit: "bytes",
        targets: [
          {
            expr: `sum by (pod) (process_resident_memory_bytes{${LISTENER}})`,
            legend: "rss {{pod}}",
          },
          {
            expr: `sum by (pod) (rate(process_cpu_seconds_total{${LISTENER}}[${RATE}]))`,
            legend: "cpu {{pod}}",
          },
        ],
      },
    ],
  },
  {
    title: "Data plane: TCP listeners (tcp agents and Brokers)",
    panels: [
      {
        title: "TCP connections",
        description: "Downstream connections accepted per second and open now, per tcp_proxy listener.",
        unit: "short",
        targets: [
          {
            expr: byListener(`rate(envoy_tcp_downstream_cx_total{${LISTENER}}[${RATE}])`),
            legend: "accepted/s {{envoy_tcp_prefix}}",
          },
          {
            expr: byListener(`envoy_tcp_downstream_cx_active{${LISTENER}}`),
            legend: "open {{envoy_tcp_prefix}}",
          },
        ],
      },
      {
        title: "TCP bytes",
        description: "Bytes received from and sent to clients, per tcp_proxy listener.",
        unit: "Bps",
        targets: [
          {
            expr: byListener(`rate(envoy_tcp_downstream_cx_rx_bytes_total{${LISTENER}}[${RATE}])`),
            legend: "rx {{envoy_tcp_prefix}}",
          },
          {
            expr: byListener(`rate(envoy_tcp_downstream_cx_tx_bytes_total{${LISTENER}}[${RATE}])`),
            legend: "tx {{envoy_tcp_prefix}}",
          },
        ],
      },
      {
        title: "TCP connections given up",
        description:
          "Connections closed because no upstream could be reached within the connect attempts, or idle too long.",
        unit: "cps",
        targets: [
          {
            expr: byListener(`rate(envoy_tcp_upstream_connect_attempts_exceeded{${LISTENER}}[${RATE}])`),
            legend: "attempts exceeded {{envoy_tcp_prefix}}",
          },
          {
            expr: byListener(`rate(envoy_tcp_idle_timeout{${LISTENER}}[${RATE}])`),
            legend: "idle timeout {{envoy_tcp_prefix}}",
          },
        ],
      },
    ],
  },
  {
    title: "Data plane: cache and configuration",
    panels: [
      {
        title: "Decision cache hit ratio",
        description: "Share of decision requests answered from the sidecar's cache.",
        unit: "percentunit",
        targets: [
          {
            expr: `sum(rate(tether_decision_cache_hits_total{${LISTENER}}[${RATE}])) / clamp_min(sum(rate(tether_decision_cache_hits_total{${LISTENER}}[${RATE}])) + sum(rate(tether_decision_cache_misses_total{${LISTENER}}[${RATE}])), 1e-9)`,
            legend: "hit ratio",
          },
        ],
      },
      {
        title: "Config reloads",
        description: "Sidecar configuration reloads; a failure keeps the previous configuration.",
        unit: "short",
        targets: [
          {
            expr: `sum by (result) (increase(tether_config_reload_total{${LISTENER}}[${RATE}]))`,
            legend: "{{result}}",
          },
        ],
      },
      {
        title: "xDS connection",
        description:
          "1 while a sidecar holds its stream to the operator's ADS server (envoy_control_plane_connected_state), per pod; and the operator's open streams.",
        unit: "short",
        targets: [
          {
            expr: `max by (pod) (envoy_control_plane_connected_state{${LISTENER}})`,
            legend: "sidecar {{pod}}",
          },
          {
            expr: `sum(tether_operator_xds_streams{${OPERATOR}})`,
            legend: "operator streams",
          },
        ],
      },
      {
        title: "xDS pushes and NACKs",
        description:
          "Configurations the operator pushed, and the ones sidecars refused (NACK), by resource type; ADS streams the operator refused (identity check), by reason.",
        unit: "ops",
        targets: [
          {
            expr: `sum by (type) (rate(tether_operator_xds_pushes_total{${OPERATOR}}[${RATE}]))`,
            legend: "pushed {{type}}",
          },
          {
            expr: `sum by (type) (rate(tether_operator_xds_nacks_total{${OPERATOR}}[${RATE}]))`,
            legend: "NACK {{type}}",
          },
          {
            expr: `sum by (reason) (rate(tether_operator_xds_streams_refused_total{${OPERATOR}}[${RATE}]))`,
            legend: "stream refused {{reason}}",
          },
        ],
      },
    ],
  },
  {
    title: "Operator",
    panels: [
      {
        title: "Reconciles by kind and result",
        description: "Reconciles per second (controller_runtime_reconcile_total).",
        unit: "ops",
        targets: [
          {
            expr: `sum by (controller, result) (rate(controller_runtime_reconcile_total{${OPERATOR}}[${RATE}]))`,
            legend: "{{controller}} {{result}}",
          },
        ],
      },
      {
        title: "Reconcile errors",
        description: "Failed reconciles per second, by kind; the resource's Events say why.",
        unit: "ops",
        targets: [
          {
            expr: `sum by (controller) (rate(controller_runtime_reconcile_errors_total{${OPERATOR}}[${RATE}]))`,
            legend: "{{controller}}",
          },
        ],
      },
      {
        title: "Reconcile duration p99",
        description: "99th percentile of one reconcile, by kind.",
        unit: "s",
        targets: [
          {
            expr: quantile(
              0.99,
              `controller_runtime_reconcile_time_seconds_bucket{${OPERATOR}}`,
              "controller",
            ),
            legend: "{{controller}}",
          },
        ],
      },
      {
        title: "Queue depth and wait",
        description:
          "Keys waiting to be reconciled (workqueue_depth), and the p99 time a key waited in the queue before its reconcile started.",
        unit: "short",
        targets: [
          { expr: `sum by (pod) (workqueue_depth{${QUEUE}})`, legend: "depth {{pod}}" },
          {
            expr: quantile(0.99, `workqueue_queue_duration_seconds_bucket{${QUEUE}}`, "pod"),
            legend: "p99 wait (s) {{pod}}",
          },
        ],
      },
      {
        title: "Leader",
        description: "1 for the replica that holds the lease and writes.",
        unit: "short",
        targets: [{ expr: `max by (pod) (leader_election_master_status{${OPERATOR}})`, legend: "{{pod}}" }],
      },
      {
        title: "Watch restarts",
        description: "Watches restarted after an error, a stall or an expired resourceVersion.",
        unit: "short",
        targets: [
          {
            expr: `sum by (resource, reason) (increase(tether_operator_watch_restarts_total{${OPERATOR}}[${RATE}]))`,
            legend: "{{resource}} {{reason}}",
          },
        ],
      },
    ],
  },
];

interface Variable {
  name: string;
  label: string;
  query: string;
}

const VARIABLES: readonly Variable[] = [
  {
    name: "namespace",
    label: "Namespace",
    query: "label_values(envoy_cluster_upstream_rq_total, namespace)",
  },
  {
    name: "agent",
    label: "Agent or broker",
    query:
      'label_values(envoy_cluster_upstream_rq_total{namespace=~"$namespace"}, app_kubernetes_io_instance)',
  },
  {
    name: "pod",
    label: "Pod",
    query:
      'label_values(envoy_cluster_upstream_rq_total{namespace=~"$namespace", app_kubernetes_io_instance=~"$agent"}, pod)',
  },
  {
    name: "cluster",
    label: "Upstream cluster",
    query: `label_values(envoy_cluster_upstream_rq_total{namespace=~"$namespace", app_kubernetes_io_instance=~"$agent", pod=~"$pod", ${NOT_ADMIN_CLUSTER}}, envoy_cluster_name)`,
  },
  {
    name: "operator_namespace",
    label: "Operator namespace",
    query: "label_values(leader_election_master_status, namespace)",
  },
];

/** The Grafana dashboard model (schemaVersion 39), laid out two panels per line. */
export function grafanaDashboard(): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of DASHBOARD_ROWS) {
    panels.push({
      id: id++,
      type: "row",
      title: row.title,
      collapsed: false,
      gridPos: { h: 1, w: 24, x: 0, y },
      panels: [],
    });
    y += 1;
    const stats = row.panels.every((p) => p.stat !== undefined);
    // Stat panels: four short tiles per line; time series: two per line.
    const perLine = stats ? 4 : 2;
    const height = stats ? 4 : 8;
    row.panels.forEach((panel, i) => {
      const width = 24 / perLine;
      panels.push({
        id: id++,
        type: panel.stat === undefined ? "timeseries" : "stat",
        title: panel.title,
        description: panel.description,
        datasource: { type: "prometheus", uid: "${datasource}" },
        fieldConfig: {
          defaults:
            panel.stat === undefined
              ? { unit: panel.unit }
              : {
                  unit: panel.unit,
                  color: { mode: "thresholds" },
                  thresholds: { mode: "absolute", steps: panel.stat.thresholds },
                },
          overrides: [],
        },
        options:
          panel.stat === undefined
            ? { legend: { displayMode: "list", placement: "bottom" }, tooltip: { mode: "multi" } }
            : {
                reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
                colorMode: "background",
                graphMode: "area",
                textMode: "value",
              },
        gridPos: { h: height, w: width, x: (i % perLine) * width, y: y + Math.floor(i / perLine) * height },
        targets: panel.targets.map((t, j) => ({
          refId: String.fromCharCode(65 + j),
          expr: t.expr,
          legendFormat: t.legend,
          datasource: { type: "prometheus", uid: "${datasource}" },
        })),
      });
    });
    y += Math.ceil(row.panels.length / perLine) * height;
  }
  return {
    uid: "tether-overview",
    title: "Tether",
    description: "Tether sidecars (per upstream cluster) and the Tether operator.",
    tags: ["tether", "envoy", "operator"],
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: "30s",
    time: { from: "now-1h", to: "now" },
    timezone: "",
    templating: {
      list: [
        { name: "datasource", label: "Data source", type: "datasource", query: "prometheus", current: {} },
        ...VARIABLES.map((v) => ({
          name: v.name,
          label: v.label,
          type: "query",
          datasource: { type: "prometheus", uid: "${datasource}" },
          query: { query: v.query, refId: "PrometheusVariableQueryEditor-VariableQuery" },
          definition: v.query,
          includeAll: true,
          multi: true,
          allValue: ".*",
          current: { text: "All", value: "$__all" },
          refresh: 2,
          sort: 1,
        })),
      ],
    },
    annotations: { list: [] },
    panels,
  };
}

/** Every PromQL expression of the dashboard with its panel title (for tests). */
export function dashboardQueries(): { panel: string; expr: string }[] {
  return DASHBOARD_ROWS.flatMap((row) =>
    row.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr }))),
  );
}
