/**
 * Broker → Deployment `<name>` running the sidecar standalone, Service `<name>`, and ConfigMap
 * `<name>-sidecar` with a tcp_proxy listener in front of the health-checked backends.
 */
import type { BrokerSpec } from "../api/index.ts";
import type { Deployment, RenderOptions } from "./agent.ts";
import { bootstrapYaml, type ConfigMap } from "./configmap.ts";
import { xdsCaVolume } from "./xds-ca.ts";
import {
  PROXY_PROTOCOL_UPSTREAM_TYPE,
  RAW_BUFFER_TYPE,
  TCP_PROXY_TYPE,
  type BootstrapInput,
  type ClusterInput,
  type HealthCheckInput,
  type InnerTransportSocketInput,
  type ListenerInput,
  type TransportSocketInput,
} from "@tether/envoy";
import {
  admin,
  discoveryType,
  envoyDuration,
  healthCheck,
  loadAssignment,
  localAdminCluster,
  outlierDetection,
  PUBLIC_ADMIN_LISTENER,
  publicAdminListener,
  socketAddress,
  tlsTransportSocket,
  requiredPort,
  type UpstreamServer,
} from "./envoy.ts";
import { childMeta, childNames, selectorLabels, serviceHost, type OwnerMeta } from "./meta.ts";
import { accessLogVolume, sidecarDrainArgs, terminationGracePeriod, withAccessLog } from "./lifecycle.ts";
import {
  configMapVolume,
  sidecarContainer,
  withTemplateHash,
  xdsTokenVolume,
  type JsonObject,
  type PodTemplate,
} from "./pod.ts";
import type { Service } from "./policy-server-cluster.ts";
import { sidecarXds, withXds, XDS_TOKEN_AUDIENCE, xdsGroup, type EdsService } from "./xds.ts";

/** Connection attempts per new client connection (tcp_proxy max_connect_attempts). */
const BROKER_CONNECT_ATTEMPTS = 3;
export const BROKER_CLUSTER = "backends";
export const BROKER_LISTENER = "broker";
const DEFAULT_ADMIN_PORT = 9901;
const DEFAULT_LOCAL_ADMIN_PORT = 15000;
/** The transport_socket_matches entry a `tls` health check selects with its match criteria. */
export const TLS_HEALTH_CHECK_SOCKET = "tls-health-check";
const TLS_HEALTH_CHECK_MATCH = { tether_health_check: "tls" } as const;

export interface BrokerInput {
  readonly owner: OwnerMeta;
  readonly spec: BrokerSpec;
  readonly options: RenderOptions;
}

export interface BrokerChildren {
  readonly deployment: Deployment;
  readonly service: Service;
  readonly sidecarConfig: ConfigMap;
}

/** The public admin port (read-only /ready, /stats/prometheus): 9901 unless the broker listens there itself. */
export function brokerAdminPort(spec: BrokerSpec): number {
  return spec.port === DEFAULT_ADMIN_PORT ? DEFAULT_ADMIN_PORT + 1 : DEFAULT_ADMIN_PORT;
}

/** The full admin's loopback port: 15000 unless the broker listens there itself. */
export function brokerLocalAdminPort(spec: BrokerSpec): number {
  return spec.port === DEFAULT_LOCAL_ADMIN_PORT ? DEFAULT_LOCAL_ADMIN_PORT + 1 : DEFAULT_LOCAL_ADMIN_PORT;
}

export function brokerBackends(spec: BrokerSpec, namespace: string, clusterDomain: string): UpstreamServer[] {
  const ref = spec.backends.serviceRef;
  if (ref !== undefined) {
    return [{ host: serviceHost(ref.name, namespace, clusterDomain), port: ref.port, priority: 0 }];
  }
  return (spec.backends.servers ?? []).map((s) => ({
    host: s.host,
    port: requiredPort(s.port, s.host),
    priority: s.priority,
  }));
}

export function renderBrokerBootstrap(input: BrokerInput): BootstrapInput {
  const { spec, owner } = input;
  const servers = brokerBackends(spec, owner.namespace, input.options.clusterDomain);
  const cluster: ClusterInput = {
    name: BROKER_CLUSTER,
    type: discoveryType(servers),
    connect_timeout: "5s",
    lb_policy: spec.balance === "leastConnections" ? "LEAST_REQUEST" : "ROUND_ROBIN",
    load_assignment: loadAssignment(BROKER_CLUSTER, servers),
    health_checks: [brokerHealthCheck(spec)],
    outlier_detection: outlierDetection(),
    close_connections_on_host_health_failure: true,
  };
  if (spec.healthCheck.type === "tls") {
    // Traffic stays raw TCP (passthrough); only the check's connections pick this TLS socket.
    cluster.transport_socket_matches = [
      {
        name: TLS_HEALTH_CHECK_SOCKET,
        match: { ...TLS_HEALTH_CHECK_MATCH },
        transport_socket: withProxyProtocol(spec, tlsTransportSocket({})),
      },
    ];
  }
  if (spec.proxyProtocol === "v2") {
    cluster.transport_socket = withProxyProtocol(spec, {
      name: "envoy.transport_sockets.raw_buffer",
      typed_config: { "@type": RAW_BUFFER_TYPE },
    });
  }
  const listener: ListenerInput = {
    name: BROKER_LISTENER,
    address: socketAddress("0.0.0.0", spec.port),
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.tcp_proxy",
            typed_config: {
              "@type": TCP_PROXY_TYPE,
              stat_prefix: "broker",
              cluster: BROKER_CLUSTER,
              idle_timeout: envoyDuration(spec.idleTimeout),
              // A backend that just died is still in rotation until health checks notice; a second
              // and third attempt (balanced afresh) move the new connection to a live backend.
              max_connect_attempts: BROKER_CONNECT_ATTEMPTS,
              backoff_options: { base_interval: "0.100s", max_interval: "1s" },
            },
          },
        ],
      },
    ],
  };
  const group = xdsGroup(owner.namespace, "broker", owner.name);
  // The access log is part of the listener, so the xDS snapshot carries it as the ConfigMap does.
  const bootstrap: BootstrapInput = withAccessLog(
    {
      node: { id: `${owner.namespace}/${owner.name}`, cluster: group },
      admin: admin(brokerLocalAdminPort(spec)),
      static_resources: {
        listeners: [listener, publicAdminListener(brokerAdminPort(spec))],
        clusters: [cluster, localAdminCluster(brokerLocalAdminPort(spec))],
      },
    },
    spec.sidecar.accessLog,
    PUBLIC_ADMIN_LISTENER,
  );
  const xds = sidecarXds(input);
  return xds === undefined ? bootstrap : withXds(bootstrap, xds, `${owner.namespace}/${owner.name}`, group);
}

/** A Broker's in-cluster backends (serviceRef), served as an EDS cluster over xDS. */
export function brokerEdsServices(input: BrokerInput): EdsService[] {
  const ref = input.spec.backends.serviceRef;
  if (ref === undefined) return [];
  return [{ cluster: BROKER_CLUSTER, namespace: input.owner.namespace, service: ref.name, port: ref.port }];
}

/**
 * A tcp connect check; for `tls` the same check over the TLS socket of transport_socket_matches,
 * so it passes only when the TLS handshake completes. The backends' certificates are not verified
 * (the Broker names no CA): the check proves the backend speaks TLS, not who it is.
 */
function brokerHealthCheck(spec: BrokerSpec): HealthCheckInput {
  const check = healthCheck({ ...spec.healthCheck, type: "tcp" });
  if (spec.healthCheck.type === "tls") check.transport_socket_match_criteria = { ...TLS_HEALTH_CHECK_MATCH };
  return check;
}

/** With PROXY protocol v2, every connection (checks included) starts with the header, then `inner`. */
function withProxyProtocol(spec: BrokerSpec, inner: InnerTransportSocketInput): TransportSocketInput {
  if (spec.proxyProtocol !== "v2") return inner;
  return {
    name: "envoy.transport_sockets.upstream_proxy_protocol",
    typed_config: {
      "@type": PROXY_PROTOCOL_UPSTREAM_TYPE,
      config: { version: "V2" },
      transport_socket: inner,
    },
  };
}

/** The Broker's pod: its podTemplate's placement settings around what the operator runs (ours win). */
function brokerPodSpec(
  pt: BrokerSpec["podTemplate"],
  selector: Record<string, string>,
  ours: PodTemplate["spec"],
): PodTemplate {
  const metadata: PodTemplate["metadata"] = { labels: { ...(pt.metadata?.labels ?? {}), ...selector } };
  if (pt.metadata?.annotations !== undefined && Object.keys(pt.metadata.annotations).length > 0) {
    metadata.annotations = { ...pt.metadata.annotations };
  }
  const placement: JsonObject = {};
  if (pt.nodeSelector !== undefined) placement["nodeSelector"] = { ...pt.nodeSelector };
  if (pt.tolerations !== undefined) placement["tolerations"] = structuredClone(pt.tolerations);
  if (pt.affinity !== undefined) placement["affinity"] = structuredClone(pt.affinity);
  if (pt.imagePullSecrets !== undefined)
    placement["imagePullSecrets"] = pt.imagePullSecrets.map((s) => ({ ...s }));
  if (pt.priorityClassName !== undefined) placement["priorityClassName"] = pt.priorityClassName;
  return { metadata, spec: { ...placement, ...ours } };
}

export function renderBroker(input: BrokerInput): BrokerChildren {
  const { owner, spec } = input;
  const selector = selectorLabels(owner, "broker");
  const grace = terminationGracePeriod(spec.terminationGracePeriodSeconds, undefined);
  const logVolume = accessLogVolume(spec.sidecar.accessLog);
  const xds = sidecarXds(input);
  const xdsToken = xds?.tokenAuth === true;
  const xdsCa = xds?.tls === true;
  const image =
    spec.sidecar.image === undefined || spec.sidecar.image === ""
      ? input.options.sidecarImage
      : spec.sidecar.image;
  const template: PodTemplate = brokerPodSpec(spec.podTemplate, selector, {
    terminationGracePeriodSeconds: grace,
    containers: [
      sidecarContainer({
        image,
        imagePullPolicy: input.options.sidecarImagePullPolicy,
        adminPort: brokerAdminPort(spec),
        ports: [{ name: "broker", containerPort: spec.port }],
        xdsCa,
        resources: spec.podTemplate.resources,
        args: sidecarDrainArgs(spec.sidecar.drain, grace),
        xdsGroup: xds === undefined ? undefined : xdsGroup(owner.namespace, "broker", owner.name),
        xdsToken,
        ...(logVolume === undefined ? {} : { extraMounts: [logVolume.mount] }),
      }),
    ],
    volumes: [
      configMapVolume("tether-sidecar-config", childNames.sidecarConfigMap(owner.name)),
      ...(logVolume === undefined ? [] : [logVolume.volume]),
      ...(xdsCa ? [xdsCaVolume()] : []),
      ...(xdsToken ? [xdsTokenVolume(XDS_TOKEN_AUDIENCE)] : []),
    ],
  });
  const deployment: Deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: childMeta(owner, childNames.deployment(owner.name), "broker"),
    spec: {
      replicas: spec.replicas,
      selector: { matchLabels: selector },
      template: withTemplateHash(template),
    },
  };
  const service: Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: childMeta(owner, childNames.service(owner.name), "broker"),
    spec: {
      type: spec.service.type,
      selector,
      ports: [
        { name: "broker", port: spec.service.port ?? spec.port, targetPort: spec.port, protocol: "TCP" },
      ],
    },
  };
  const sidecarConfig: ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMeta(owner, childNames.sidecarConfigMap(owner.name), "broker"),
    data: {
      "envoy.yaml": bootstrapYaml(owner, renderBrokerBootstrap(input)),
    },
  };
  return { deployment, service, sidecarConfig };
}
