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
const SIDECAR = `namespace=~"$namespace", app_kubernetes_io_instance=~"$agent", envoy_cluster_name=~"$cluster", ${NOT_ADMIN_CLUSTER}`;
const LISTENER = 'namespace=~"$namespace", app_kubernetes_io_instance=~"$agent"';
const OPERATOR = 'namespace=~"$operator_namespace"';
const RATE = "$__rate_interval";

export interface PanelTarget {
  readonly expr: string;
  readonly legend: string;
}

export interface Panel {
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly targets: readonly PanelTarget[];
}

export interface Row {
  readonly title: string;
  readonly panels: readonly Panel[];
}

const byCluster = (expr: string): string => `sum by (envoy_cluster_name) (${expr})`;
const quantile = (q: number, metric: string, by: string): string =>
  `histogram_quantile(${q}, sum by (le, ${by}) (rate(${metric}[${RATE}])))`;

export const DASHBOARD_ROWS: readonly Row[] = [
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
    ],
  },
  {
    title: "Operator",
    panels: [
      {
        title: "Reconciles by kind and result",
        description: "Reconciles per second.",
        unit: "ops",
        targets: [
          {
            expr: `sum by (kind, result) (rate(tether_operator_reconcile_total{${OPERATOR}}[${RATE}]))`,
            legend: "{{kind}} {{result}}",
          },
        ],
      },
      {
        title: "Reconcile errors",
        description: "Failed reconciles per second, by kind; the resource's Events say why.",
        unit: "ops",
        targets: [
          {
            expr: `sum by (kind) (rate(tether_operator_reconcile_total{${OPERATOR}, result="error"}[${RATE}]))`,
            legend: "{{kind}}",
          },
        ],
      },
      {
        title: "Reconcile duration p99",
        description: "99th percentile of one reconcile, by kind.",
        unit: "s",
        targets: [
          {
            expr: quantile(0.99, `tether_operator_reconcile_duration_seconds_bucket{${OPERATOR}}`, "kind"),
            legend: "{{kind}}",
          },
        ],
      },
      {
        title: "Queue depth",
        description: "Keys waiting to be reconciled.",
        unit: "short",
        targets: [{ expr: `sum by (pod) (tether_operator_queue_depth{${OPERATOR}})`, legend: "{{pod}}" }],
      },
      {
        title: "Leader",
        description: "1 for the replica that holds the lease and writes.",
        unit: "short",
        targets: [{ expr: `max by (pod) (tether_operator_leader{${OPERATOR}})`, legend: "{{pod}}" }],
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
    name: "cluster",
    label: "Upstream cluster",
    query: `label_values(envoy_cluster_upstream_rq_total{namespace=~"$namespace", app_kubernetes_io_instance=~"$agent", ${NOT_ADMIN_CLUSTER}}, envoy_cluster_name)`,
  },
  {
    name: "operator_namespace",
    label: "Operator namespace",
    query: "label_values(tether_operator_leader, namespace)",
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
    row.panels.forEach((panel, i) => {
      panels.push({
        id: id++,
        type: "timeseries",
        title: panel.title,
        description: panel.description,
        datasource: { type: "prometheus", uid: "${datasource}" },
        fieldConfig: { defaults: { unit: panel.unit }, overrides: [] },
        options: { legend: { displayMode: "list", placement: "bottom" }, tooltip: { mode: "multi" } },
        gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: y + Math.floor(i / 2) * 8 },
        targets: panel.targets.map((t, j) => ({
          refId: String.fromCharCode(65 + j),
          expr: t.expr,
          legendFormat: t.legend,
          datasource: { type: "prometheus", uid: "${datasource}" },
        })),
      });
    });
    y += Math.ceil(row.panels.length / 2) * 8;
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
