/**
 * Building blocks of the Envoy v3 bootstrap the sidecar runs. Only fields of the subset listed in
 * sidecar/README.md ("Supported configuration"), with Envoy's names and @type URLs, so the same file
 * runs on real Envoy. Where Tether's default differs from Envoy's, the field is written explicitly.
 */
import {
  HCM_TYPE,
  type AddressInput,
  type AdminInput,
  type ClusterInput,
  type ClusterLoadAssignmentInput,
  type HealthCheckInput,
  type HttpFilterInput,
  type HttpProtocolOptionsInput,
  type ListenerInput,
  type OutlierDetectionInput,
  type InnerTransportSocketInput,
  type UpstreamTlsContextInput,
  HTTP_PROTOCOL_OPTIONS_KEY,
  HTTP_PROTOCOL_OPTIONS_TYPE,
  ROUTER_TYPE,
  UPSTREAM_TLS_TYPE,
  toEnvoyDuration,
} from "@tether/envoy";
import { parseDuration } from "../api/index.ts";

/**
 * A JSON object of Envoy config, untyped: for tests walking rendered output. The renderers return the
 * input types of @tether/envoy's schema (ClusterInput, ListenerInput, BootstrapInput, …).
 */
export type EnvoyObject = Record<string, unknown>;

/** A cluster's typed_extension_protocol_options (the HTTP/1.1 pool settings live there). */
export type TypedExtensionProtocolOptionsInput = NonNullable<
  ClusterInput["typed_extension_protocol_options"]
>;

/** A Tether duration string (`250ms`) as an Envoy duration (`0.250s`). */
export function envoyDuration(tetherDuration: string): string {
  return toEnvoyDuration(parseDuration(tetherDuration));
}

export function socketAddress(address: string, port: number): AddressInput {
  return { socket_address: { address, port_value: port } };
}

export interface UpstreamServer {
  readonly host: string;
  readonly port: number;
  readonly priority: number;
}

/** Backend ports are required by the API schema; the parsed type still allows undefined. */
export function requiredPort(port: number | undefined, host: string): number {
  if (port === undefined) throw new TypeError(`server ${host} has no port`);
  return port;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isIpAddress(host: string): boolean {
  const m = IPV4.exec(host);
  if (m !== null) return m.slice(1).every((part) => Number(part) <= 255);
  return host.includes(":") && /^[0-9a-fA-F:.]+$/.test(host);
}

/** STATIC when every host is an IP address, STRICT_DNS otherwise (each DNS answer is a host). */
export function discoveryType(servers: readonly UpstreamServer[]): "STATIC" | "STRICT_DNS" {
  return servers.every((s) => isIpAddress(s.host)) ? "STATIC" : "STRICT_DNS";
}

/**
 * load_assignment with one locality per priority, lowest priority number first. With
 * `ignorePriorities` (balanced failover) every server lands in priority 0.
 */
export function loadAssignment(
  clusterName: string,
  servers: readonly UpstreamServer[],
  ignorePriorities = false,
): ClusterLoadAssignmentInput {
  const byPriority = new Map<number, UpstreamServer[]>();
  for (const s of servers) {
    const p = ignorePriorities ? 0 : s.priority;
    const list = byPriority.get(p) ?? [];
    list.push(s);
    byPriority.set(p, list);
  }
  const priorities = [...byPriority.keys()].sort((a, b) => a - b);
  // Envoy needs priorities to be contiguous from 0: renumber (0, 2) as (0, 1), keeping the order.
  const endpoints = priorities.map((p, index) => ({
    priority: index,
    lb_endpoints: (byPriority.get(p) ?? []).map((s) => ({
      endpoint: { address: socketAddress(s.host, s.port) },
    })),
  }));
  return { cluster_name: clusterName, endpoints };
}

export interface HealthCheckSpec {
  readonly type: string;
  readonly path?: string | undefined;
  readonly interval: string;
  readonly timeout: string;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

/** How often a server is checked while it is down or changing state (never less often than interval). */
export const DOWN_CHECK_INTERVAL_MS = 250;

/**
 * An active health check. `no_traffic_interval` is set to the interval: Envoy's default (60 s) would
 * leave an idle sidecar blind to a restarted server for a minute. While a server is out of rotation,
 * or a change of its state is pending, it is checked every 250 ms (unhealthy_interval and the edge
 * intervals), so a restarted server is found within a fraction of a second and a failing one is
 * confirmed quickly (docs/failover.md).
 */
export function healthCheck(hc: HealthCheckSpec): HealthCheckInput {
  const intervalMs = parseDuration(hc.interval);
  const interval = envoyDuration(hc.interval);
  const down = toEnvoyDuration(Math.min(DOWN_CHECK_INTERVAL_MS, intervalMs));
  const check: HealthCheckInput = {
    timeout: envoyDuration(hc.timeout),
    interval,
    no_traffic_interval: interval,
    unhealthy_interval: down,
    unhealthy_edge_interval: down,
    healthy_edge_interval: down,
    unhealthy_threshold: hc.unhealthyThreshold,
    healthy_threshold: hc.healthyThreshold,
  };
  // The API promises any 2xx is healthy; Envoy's default accepts only 200.
  if (hc.type === "http") {
    check.http_health_check = { path: hc.path ?? "/", expected_statuses: [{ start: 200, end: 300 }] };
  } else check.tcp_health_check = {};
  return check;
}

/**
 * Passive outlier detection. Tether's defaults differ from Envoy's on purpose: a small cluster may
 * eject every failing host (max_ejection_percent 100, always_eject_one_host), so failover to the
 * next priority does not wait for the active health check.
 */
export function outlierDetection(): OutlierDetectionInput {
  return {
    consecutive_5xx: 5,
    consecutive_gateway_failure: 3,
    enforcing_consecutive_gateway_failure: 100,
    consecutive_local_origin_failure: 3,
    interval: "5s",
    base_ejection_time: "10s",
    max_ejection_time: "60s",
    max_ejection_percent: 100,
    always_eject_one_host: true,
  };
}

/** Upstream HTTP/1.1 pool settings. max_requests_per_connection 0 (unlimited) is left out. */
export function httpProtocolOptions(
  idleTimeout: string,
  maxRequestsPerConnection: number,
): TypedExtensionProtocolOptionsInput {
  const common: NonNullable<HttpProtocolOptionsInput["common_http_protocol_options"]> = {
    idle_timeout: envoyDuration(idleTimeout),
  };
  if (maxRequestsPerConnection > 0) common.max_requests_per_connection = maxRequestsPerConnection;
  return {
    [HTTP_PROTOCOL_OPTIONS_KEY]: {
      "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
      common_http_protocol_options: common,
      explicit_http_config: { http_protocol_options: {} },
    },
  };
}

export interface UpstreamTls {
  /** Sent as SNI. */
  readonly serverName?: string | undefined;
  /** The DNS name the server's certificate must carry (a subject alt name; wildcards as in Envoy). */
  readonly verifyName?: string | undefined;
  /** Path of the CA bundle inside the sidecar container. */
  readonly caFile?: string | undefined;
  /** Paths of the client certificate and key inside the sidecar container. */
  readonly clientCert?: { readonly certFile: string; readonly keyFile: string } | undefined;
}

type CommonTlsContextInput = NonNullable<UpstreamTlsContextInput["common_tls_context"]>;

/** An UpstreamTlsContext. Without caFile and verifyName nothing is verified (Envoy's semantics). */
export function tlsTransportSocket(tls: UpstreamTls): InnerTransportSocketInput {
  const common: CommonTlsContextInput = {};
  const validation: NonNullable<CommonTlsContextInput["validation_context"]> = {};
  if (tls.caFile !== undefined) validation.trusted_ca = { filename: tls.caFile };
  if (tls.verifyName !== undefined && tls.verifyName !== "") {
    validation.match_typed_subject_alt_names = [{ san_type: "DNS", matcher: { exact: tls.verifyName } }];
  }
  if (Object.keys(validation).length > 0) common.validation_context = validation;
  if (tls.clientCert !== undefined) {
    common.tls_certificates = [
      {
        certificate_chain: { filename: tls.clientCert.certFile },
        private_key: { filename: tls.clientCert.keyFile },
      },
    ];
  }
  const context: UpstreamTlsContextInput = {
    "@type": UPSTREAM_TLS_TYPE,
    ...(tls.serverName !== undefined && tls.serverName !== "" ? { sni: tls.serverName } : {}),
    common_tls_context: common,
  };
  return { name: "envoy.transport_sockets.tls", typed_config: context };
}

export function routerFilter(): HttpFilterInput {
  return { name: "envoy.filters.http.router", typed_config: { "@type": ROUTER_TYPE } };
}

/**
 * The admin block: loopback only, as Envoy and Istio bind it. Its /config_dump, /clusters and
 * POST /notifications are for the pod's own containers; the kubelet and Prometheus use the
 * read-only public admin listener below.
 */
export function admin(localPort: number): AdminInput {
  return { address: socketAddress("127.0.0.1", localPort) };
}

/** The listener serving the admin's read-only paths on the pod IP (Istio's 15090 listener, likewise). */
export const PUBLIC_ADMIN_LISTENER = "tether-admin-public";
/** Its HCM stat_prefix: envoy_http_*{envoy_http_conn_manager_prefix="tether_admin_public"}. */
export const PUBLIC_ADMIN_STAT_PREFIX = "tether_admin_public";
/** The STATIC cluster of that listener: the sidecar's own admin on 127.0.0.1. */
export const LOCAL_ADMIN_CLUSTER = "tether-admin-local";
/** What the kubelet (probes) and Prometheus (PodMonitor) read: GET only, exact paths only. */
export const PUBLIC_ADMIN_PATHS: readonly string[] = ["/ready", "/stats/prometheus", "/metrics"];

/**
 * An HTTP listener on 0.0.0.0:`port` that forwards GET of exactly the PUBLIC_ADMIN_PATHS to
 * LOCAL_ADMIN_CLUSTER; any other method or path gets the listener's 404 (no route matched).
 */
export function publicAdminListener(port: number): ListenerInput {
  const routes = PUBLIC_ADMIN_PATHS.map((path) => ({
    name: `${PUBLIC_ADMIN_LISTENER}${path}`,
    match: { path, headers: [{ name: ":method", string_match: { exact: "GET" } }] },
    route: { cluster: LOCAL_ADMIN_CLUSTER, timeout: "5s" },
  }));
  return {
    name: PUBLIC_ADMIN_LISTENER,
    address: socketAddress("0.0.0.0", port),
    // Left out of the shutdown drain: the kubelet's probes must keep getting 503, not a refused connect.
    drain_type: "MODIFY_ONLY",
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type": HCM_TYPE,
              stat_prefix: PUBLIC_ADMIN_STAT_PREFIX,
              codec_type: "AUTO",
              route_config: {
                name: PUBLIC_ADMIN_LISTENER,
                virtual_hosts: [{ name: PUBLIC_ADMIN_LISTENER, domains: ["*"], routes }],
              },
              http_filters: [routerFilter()],
            },
          },
        ],
      },
    ],
  };
}

/** The admin on loopback as an upstream of the public admin listener. */
export function localAdminCluster(localPort: number): ClusterInput {
  return {
    name: LOCAL_ADMIN_CLUSTER,
    type: "STATIC",
    connect_timeout: "1s",
    lb_policy: "ROUND_ROBIN",
    load_assignment: loadAssignment(LOCAL_ADMIN_CLUSTER, [
      { host: "127.0.0.1", port: localPort, priority: 0 },
    ]),
  };
}
