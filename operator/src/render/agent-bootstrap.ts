/**
 * An Agent's sidecar bootstrap: a listener on 127.0.0.1:<listener.port> the agent connects to, the
 * policy-server cluster behind it, and the HTTP listeners and clusters of its ProxyRoutes.
 */
import type { AgentSpec, PolicyServerClusterSpec } from "../api/index.ts";
import { parseDuration } from "../api/index.ts";
import {
  attemptsWithin,
  DECISION_CACHE_TYPE,
  HCM_TYPE,
  TCP_PROXY_TYPE,
  type BootstrapInput,
  type ClusterInput,
  type DecisionCacheInput,
  type HttpFilterInput,
  type ListenerInput,
  type NetworkFilterInput,
  type RouteInput,
  type RouteMatchInput,
} from "@tether/envoy";
import {
  admin,
  discoveryType,
  envoyDuration,
  healthCheck,
  httpProtocolOptions,
  loadAssignment,
  localAdminCluster,
  outlierDetection,
  publicAdminListener,
  PUBLIC_ADMIN_LISTENER,
  routerFilter,
  socketAddress,
  tlsTransportSocket,
  type UpstreamServer,
} from "./envoy.ts";
import { withAccessLog } from "./lifecycle.ts";
import { serviceHost } from "./meta.ts";
import { SIDECAR_CONTAINER } from "./pod.ts";
import { renderRoutes, routeClusterName, type AcceptedRoute } from "./routes.ts";
import { secretFile } from "./secrets.ts";
import { withXds, xdsGroup, type EdsService, type XdsTarget } from "./xds.ts";

export const POLICY_SERVER_CLUSTER = "policy-server";
export const POLICY_SERVER_LISTENER = "policy-server";
/** Where policy servers publish decision-cache notifications (newline-delimited JSON, kept open). */
export const NOTIFICATION_STREAM_PATH = "/notifications/stream";

export interface PolicyServers {
  readonly name: string;
  readonly spec: PolicyServerClusterSpec;
}

export interface AgentBootstrapInput {
  readonly name: string;
  readonly namespace: string;
  readonly spec: AgentSpec;
  readonly policyServers: PolicyServers;
  readonly routes: readonly AcceptedRoute[];
  readonly clusterDomain: string;
  /** The operator's ADS server; when set the bootstrap gains dynamic_resources and tether_xds. */
  readonly xds?: XdsTarget | undefined;
}

/** The 127.0.0.1 port the agent connects to: listener.port, else the PolicyServerCluster's port. */
export function agentListenerPort(spec: AgentSpec, psc: PolicyServerClusterSpec): number {
  return spec.listener.port ?? psc.port;
}

/**
 * Ports a ProxyRoute cannot take, with what holds them (for status messages): the sidecar's own, and
 * the TCP containerPorts the agent's containers declare — they share the pod's network namespace, so
 * the sidecar could not bind those and the whole config reload would be refused.
 */
export function reservedPorts(
  spec: AgentSpec,
  psc: PolicyServerClusterSpec | undefined,
): Map<number, string> {
  const ports = new Map<number, string>([
    [spec.sidecar.adminPort, "the sidecar admin port"],
    [spec.sidecar.localAdminPort, "the sidecar's local admin port"],
  ]);
  const listener = psc === undefined ? spec.listener.port : agentListenerPort(spec, psc);
  if (listener !== undefined) ports.set(listener, "the policy-server listener");
  for (const [port, holder] of containerPorts(spec)) if (!ports.has(port)) ports.set(port, holder);
  return ports;
}

/**
 * TCP ports the agent's containers declare, with the container: its containers and its init
 * containers that keep running beside them (restartPolicy Always). The sidecar's is replaced by ours.
 */
function containerPorts(spec: AgentSpec): [number, string][] {
  const podSpec = spec.template.spec as { initContainers?: unknown };
  const init = Array.isArray(podSpec.initContainers) ? (podSpec.initContainers as unknown[]) : [];
  const running = [
    ...spec.template.spec.containers,
    ...init.filter((c) => (c as { restartPolicy?: unknown } | null)?.restartPolicy === "Always"),
  ];
  const out: [number, string][] = [];
  for (const container of running) {
    const c = container as { name?: unknown; ports?: unknown };
    if (typeof c.name !== "string" || c.name === SIDECAR_CONTAINER || !Array.isArray(c.ports)) continue;
    for (const p of c.ports as unknown[]) {
      const declared = p as { containerPort?: unknown; protocol?: unknown } | null;
      const port = declared?.containerPort;
      if (typeof port !== "number" || (declared?.protocol ?? "TCP") !== "TCP") continue;
      out.push([port, `container ${c.name} (containerPort ${port})`]);
    }
  }
  return out;
}

/** The policy servers as upstream addresses: the headless Service (one DNS answer per pod) or the list. */
export function policyServerAddresses(
  psc: PolicyServers,
  namespace: string,
  clusterDomain: string,
): UpstreamServer[] {
  if (psc.spec.managed !== undefined) {
    return [{ host: serviceHost(psc.name, namespace, clusterDomain), port: psc.spec.port, priority: 0 }];
  }
  return (psc.spec.external?.servers ?? []).map((s) => ({
    host: s.host,
    port: s.port ?? psc.spec.port,
    priority: s.priority,
  }));
}

function serverCount(psc: PolicyServerClusterSpec): number {
  if (psc.managed !== undefined) return Math.max(1, psc.managed.replicas);
  return Math.max(1, psc.external?.servers.length ?? 1);
}

function policyServerCluster(input: AgentBootstrapInput): ClusterInput {
  const { spec, policyServers } = input;
  const psc = policyServers.spec;
  const servers = policyServerAddresses(policyServers, input.namespace, input.clusterDomain);
  const cluster: ClusterInput = {
    name: POLICY_SERVER_CLUSTER,
    type: psc.managed !== undefined ? "STRICT_DNS" : discoveryType(servers),
    connect_timeout: envoyDuration(spec.reconnect.connectTimeout),
    lb_policy: "ROUND_ROBIN",
    load_assignment: loadAssignment(POLICY_SERVER_CLUSTER, servers, psc.failover.mode === "balanced"),
  };
  // Managed servers get new pod IPs when they restart: re-resolve as often as they are checked.
  if (cluster.type === "STRICT_DNS") cluster.dns_refresh_rate = envoyDuration(psc.healthCheck.interval);
  cluster.health_checks = [healthCheck(psc.healthCheck)];
  cluster.outlier_detection = outlierDetection();
  // pool.maxConnections is per server; Envoy's breaker is per cluster.
  cluster.circuit_breakers = {
    thresholds: [
      {
        max_connections: spec.pool.maxConnections * serverCount(psc),
        // Requests held while no server answers wait here; a retry budget replaces Envoy's 3 retries.
        max_pending_requests: spec.pool.maxConnections * serverCount(psc),
        retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: spec.pool.maxConnections },
      },
    ],
  };
  if (psc.protocol === "tcp") {
    // A dead server's connections are cut so the agent reconnects through the sidecar.
    cluster.close_connections_on_host_health_failure = true;
    cluster.upstream_connection_options = {
      tcp_keepalive: { keepalive_time: 30, keepalive_interval: 5, keepalive_probes: 3 },
    };
  } else {
    cluster.typed_extension_protocol_options = httpProtocolOptions(
      spec.pool.idleTimeout,
      spec.pool.maxRequestsPerConnection,
    );
  }
  if (psc.tls.enabled) {
    const ca = psc.tls.caSecretRef;
    const client = psc.tls.clientCertSecretRef;
    cluster.transport_socket = tlsTransportSocket({
      serverName: psc.tls.serverName,
      verifyName: psc.tls.insecureSkipVerify ? undefined : psc.tls.serverName,
      caFile: ca === undefined ? undefined : secretFile(ca.name, ca.key),
      clientCert:
        client === undefined
          ? undefined
          : { certFile: secretFile(client.name, "tls.crt"), keyFile: secretFile(client.name, "tls.key") },
    });
  }
  return cluster;
}

function holdAttempts(spec: AgentSpec): number {
  const r = spec.reconnect;
  return attemptsWithin(
    parseDuration(r.holdTimeout),
    parseDuration(r.retryInterval),
    parseDuration(r.maxRetryInterval),
  );
}

function tcpListenerFilter(spec: AgentSpec): NetworkFilterInput {
  return {
    name: "envoy.filters.network.tcp_proxy",
    typed_config: {
      "@type": TCP_PROXY_TYPE,
      stat_prefix: "policy_server",
      cluster: POLICY_SERVER_CLUSTER,
      // pool.idleTimeout: an idle connection is closed before a server or a middlebox drops it
      // silently; the agent reconnects through the sidecar, whose address never changes.
      idle_timeout: envoyDuration(spec.pool.idleTimeout),
      // New connections are held while no server answers: attempts with back-off up to holdTimeout.
      max_connect_attempts: holdAttempts(spec),
      backoff_options: {
        base_interval: envoyDuration(spec.reconnect.retryInterval),
        max_interval: envoyDuration(spec.reconnect.maxRetryInterval),
      },
    },
  };
}

/**
 * The decision cache. `cache.notifications` (hybrid mode) subscribes it to the policy servers'
 * notification stream, reconnecting with the Agent's reconnect back-off; POST /notifications on the
 * sidecar's admin port invalidates in either case. `cache.keyHeaders` become `key_headers`, always
 * written, so the sidecar's own default never decides whose decision is whose.
 */
function decisionCacheFilter(spec: AgentSpec): HttpFilterInput {
  const config: DecisionCacheInput = {
    "@type": DECISION_CACHE_TYPE,
    ttl: envoyDuration(spec.cache.ttl),
    notifications: true,
    key_headers: [...spec.cache.keyHeaders],
  };
  if (spec.cache.notifications) {
    config.notification_stream = {
      cluster: POLICY_SERVER_CLUSTER,
      path: NOTIFICATION_STREAM_PATH,
      timeout: envoyDuration(spec.reconnect.connectTimeout),
      retry_back_off: {
        base_interval: envoyDuration(spec.reconnect.retryInterval),
        max_interval: envoyDuration(spec.reconnect.maxRetryInterval),
      },
    };
  }
  // Tether's own filter: a real Envoy (or an xDS validator) may skip it instead of refusing the listener.
  return { name: "tether.filters.http.decision_cache", typed_config: config, is_optional: true };
}

function policyRoute(spec: AgentSpec, idempotent: boolean, method?: string): RouteInput {
  const match: RouteMatchInput = { prefix: "/" };
  if (method !== undefined) match.headers = [{ name: ":method", string_match: { exact: method } }];
  return {
    name: `policy-server/${method ?? "idempotent"}`,
    match,
    route: {
      cluster: POLICY_SERVER_CLUSTER,
      // holdTimeout is the deadline of the whole request, retries included.
      timeout: envoyDuration(spec.reconnect.holdTimeout),
      retry_policy: {
        retry_on: idempotent ? "connect-failure,reset" : "connect-failure,reset-before-request",
        num_retries: holdAttempts(spec) - 1,
        // An answer that never comes (a lost node's connections hang) is retried elsewhere, but only
        // for requests that may safely be sent twice.
        ...(idempotent && parseDuration(spec.reconnect.perTryTimeout) > 0
          ? { per_try_timeout: envoyDuration(spec.reconnect.perTryTimeout) }
          : {}),
        retry_back_off: {
          base_interval: envoyDuration(spec.reconnect.retryInterval),
          max_interval: envoyDuration(spec.reconnect.maxRetryInterval),
        },
      },
    },
  };
}

function httpListenerFilter(spec: AgentSpec): NetworkFilterInput {
  const routes = [
    ...["POST", "PATCH", "CONNECT"].map((m) => policyRoute(spec, false, m)),
    policyRoute(spec, true),
  ];
  return {
    name: "envoy.filters.network.http_connection_manager",
    typed_config: {
      "@type": HCM_TYPE,
      stat_prefix: "policy_server",
      codec_type: "AUTO",
      route_config: {
        name: POLICY_SERVER_LISTENER,
        virtual_hosts: [{ name: POLICY_SERVER_LISTENER, domains: ["*"], routes }],
      },
      http_filters: [...(spec.cache.enabled ? [decisionCacheFilter(spec)] : []), routerFilter()],
    },
  };
}

/** The whole bootstrap, as a plain object (serialized to YAML by the ConfigMap renderer). */
export function renderAgentBootstrap(input: AgentBootstrapInput): BootstrapInput {
  const { spec, policyServers } = input;
  const psc = policyServers.spec;
  const policyListener: ListenerInput = {
    name: POLICY_SERVER_LISTENER,
    address: socketAddress("127.0.0.1", agentListenerPort(spec, psc)),
    filter_chains: [
      { filters: [psc.protocol === "tcp" ? tcpListenerFilter(spec) : httpListenerFilter(spec)] },
    ],
  };
  const routes = renderRoutes(input.routes, input.namespace, input.clusterDomain);
  const group = xdsGroup(input.namespace, "agent", input.name);
  // The access log is part of the listeners themselves, so the xDS snapshot (rendered from this
  // bootstrap) carries it as the ConfigMap does.
  const bootstrap: BootstrapInput = withAccessLog(
    {
      node: { id: `${input.namespace}/${input.name}`, cluster: group },
      admin: admin(spec.sidecar.localAdminPort),
      static_resources: {
        listeners: [policyListener, ...routes.listeners, publicAdminListener(spec.sidecar.adminPort)],
        clusters: [
          policyServerCluster(input),
          ...routes.clusters,
          localAdminCluster(spec.sidecar.localAdminPort),
        ],
      },
    },
    spec.sidecar.accessLog,
    PUBLIC_ADMIN_LISTENER,
  );
  return input.xds === undefined
    ? bootstrap
    : withXds(bootstrap, input.xds, `${input.namespace}/${input.name}`, group);
}

/**
 * The clusters whose endpoints are in-cluster Services, served as EDS over xDS: managed policy
 * servers (their headless Service) and ProxyRoute serviceRef backends. External hosts keep DNS.
 */
export function agentEdsServices(input: AgentBootstrapInput): EdsService[] {
  const out: EdsService[] = [];
  const { policyServers, namespace } = input;
  if (policyServers.spec.managed !== undefined) {
    out.push({
      cluster: POLICY_SERVER_CLUSTER,
      namespace,
      service: policyServers.name,
      port: policyServers.spec.port,
    });
  }
  for (const route of input.routes) {
    const ref = route.spec.backend.serviceRef;
    if (ref === undefined || route.missingBackend !== undefined) continue;
    out.push({ cluster: routeClusterName(route.name), namespace, service: ref.name, port: ref.port });
  }
  return out;
}
