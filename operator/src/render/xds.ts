/**
 * The xDS side of a sidecar's config, derived from the same bootstrap the ConfigMap carries (one
 * source of truth): the bootstrap's `node`, `dynamic_resources` and `tether_xds` cluster, and the
 * dynamic listeners and clusters the operator's ADS server pushes, with in-cluster Service backends
 * turned into EDS clusters.
 */
import {
  HTTP_PROTOCOL_OPTIONS_KEY,
  HTTP_PROTOCOL_OPTIONS_TYPE,
  type BootstrapInput,
  type ClusterInput,
  type DynamicResourcesInput,
  type ListenerInput,
} from "@tether/envoy";
import { LOCAL_ADMIN_CLUSTER, PUBLIC_ADMIN_LISTENER, loadAssignment, tlsTransportSocket } from "./envoy.ts";
import { XDS_CA_FILE } from "./xds-ca.ts";

/** The static cluster the sidecar reaches the operator's ADS server through. */
export const XDS_CLUSTER = "tether_xds";
/** Default port of the operator's ADS server (chart value `xds.port`). */
export const DEFAULT_XDS_PORT = 18000;

/** The audience of the projected ServiceAccount token a sidecar presents to the ADS server. */
export const XDS_TOKEN_AUDIENCE = "tether";

/** Where sidecars reach the operator's ADS server: the `<fullname>-xds` Service. */
export interface XdsTarget {
  /** The Service's DNS name (`<svc>.<ns>.svc.<domain>`). */
  readonly host: string;
  readonly port: number;
  /** TLS to the server, verified against the mounted tether-xds-ca bundle for `host`. */
  readonly tls?: boolean | undefined;
  /** The server checks identities: sidecars get a projected token and send it (--xds-token-file). */
  readonly tokenAuth?: boolean;
}

/** The operator's xDS server for a sidecar, unless its Agent or Broker opted out (spec.sidecar.xds). */
export function sidecarXds(
  input: { readonly spec: { readonly sidecar: { readonly xds: { readonly enabled: boolean } } } } & {
    readonly options: { readonly xds?: XdsTarget | undefined };
  },
): XdsTarget | undefined {
  return input.spec.sidecar.xds.enabled ? input.options.xds : undefined;
}

export type XdsKind = "agent" | "broker";

/** `node.cluster` of every sidecar of one Agent or Broker; the ADS server keys snapshots by it. */
export function xdsGroup(namespace: string, kind: XdsKind, name: string): string {
  return `${namespace}/${kind}/${name}`;
}

/** A cluster whose endpoints come from a Service's EndpointSlices (EDS) when served over xDS. */
export interface EdsService {
  /** The cluster's name, also its EDS service_name and its ClusterLoadAssignment's cluster_name. */
  readonly cluster: string;
  readonly namespace: string;
  /** The Service whose EndpointSlices (label kubernetes.io/service-name) hold the endpoints. */
  readonly service: string;
  /** The Service port (mapped to the slices' port by the Service port's name). */
  readonly port: number;
}

/** Envoy's http2_protocol_options.connection_keepalive of the sidecars' connection to the operator. */
export const XDS_KEEPALIVE = { interval: "5s", timeout: "5s" } as const;

/**
 * How long a sidecar waits between attempts to reach the operator (full jitter below
 * min(max, base × 2^attempt)). Envoy's default caps the wait at 30 s, so a sidecar whose operator
 * was away for half a minute could wait up to 30 s more after it came back before its next config;
 * with 5 s, a fleet still spreads its reconnects over five seconds. The base is half Envoy's, so a
 * dead replica's sidecars are back on another within about a second: the xDS Service keeps sending
 * some connects to the dead replica's address until kube-proxy drops it, each refused at once, and
 * the sidecar's ADS client waits below the base again after each of its first three refusals in a
 * row; the first reconnects of the replica's sidecars spread over 0.25 s.
 */
export const XDS_RETRY_BACK_OFF = { base_interval: "0.25s", max_interval: "5s" } as const;

/**
 * A static STRICT_DNS cluster on the operator's xDS Service, speaking HTTP/2 (gRPC); with TLS, an
 * UpstreamTlsContext trusting the mounted CA bundle, SNI and the SAN checked against the Service name.
 */
export function xdsCluster(target: XdsTarget): ClusterInput {
  return {
    name: XDS_CLUSTER,
    type: "STRICT_DNS",
    connect_timeout: "1s",
    lb_policy: "ROUND_ROBIN",
    load_assignment: loadAssignment(XDS_CLUSTER, [{ host: target.host, port: target.port, priority: 0 }]),
    ...(target.tls === true
      ? {
          transport_socket: tlsTransportSocket({
            caFile: XDS_CA_FILE,
            serverName: target.host,
            verifyName: target.host,
          }),
        }
      : {}),
    typed_extension_protocol_options: {
      [HTTP_PROTOCOL_OPTIONS_KEY]: {
        "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
        // PINGs find a replica that vanished without closing the stream (a lost node) in ≤ 10 s,
        // not at TCP's timeouts; a replica that crashed closes its sockets and is noticed at once.
        explicit_http_config: { http2_protocol_options: { connection_keepalive: XDS_KEEPALIVE } },
      },
    },
  };
}

/** ADS for clusters and listeners over the tether_xds cluster (no RDS: route configs are inline). */
export function dynamicResources(): DynamicResourcesInput {
  return {
    ads_config: {
      api_type: "GRPC",
      transport_api_version: "V3",
      grpc_services: [
        { envoy_grpc: { cluster_name: XDS_CLUSTER, retry_policy: { retry_back_off: XDS_RETRY_BACK_OFF } } },
      ],
    },
    cds_config: { ads: {}, resource_api_version: "V3" },
    lds_config: { ads: {}, resource_api_version: "V3" },
  };
}

interface StaticResources {
  listeners: ListenerInput[];
  clusters: ClusterInput[];
}

function staticResources(bootstrap: BootstrapInput): StaticResources {
  const s = bootstrap.static_resources;
  return { listeners: s?.listeners ?? [], clusters: s?.clusters ?? [] };
}

/**
 * The bootstrap with what a sidecar needs to follow the operator: `node` (its id is a fallback; the
 * pod's `--service-node` wins), `dynamic_resources` and the `tether_xds` cluster. The static
 * resources stay whole, so the sidecar serves at once and for as long as the operator is away.
 */
export function withXds(
  bootstrap: BootstrapInput,
  target: XdsTarget,
  nodeId: string,
  group: string,
): BootstrapInput {
  const s = staticResources(bootstrap);
  const { node: _node, ...rest } = bootstrap;
  return {
    node: { id: nodeId, cluster: group },
    ...rest,
    static_resources: { listeners: s.listeners, clusters: [...s.clusters, xdsCluster(target)] },
    dynamic_resources: dynamicResources(),
  };
}

/** Static resources that never travel over xDS: the admin's own and the way to the operator. */
const STATIC_ONLY_CLUSTERS = new Set([XDS_CLUSTER, LOCAL_ADMIN_CLUSTER]);
const STATIC_ONLY_LISTENERS = new Set([PUBLIC_ADMIN_LISTENER]);

/** The cluster as EDS: same settings, endpoints from the ADS stream instead of DNS. */
export function asEdsCluster(cluster: ClusterInput): ClusterInput {
  const {
    load_assignment: _endpoints,
    dns_refresh_rate: _refresh,
    dns_lookup_family: _family,
    ...rest
  } = cluster;
  return {
    ...rest,
    type: "EDS",
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: "V3" }, service_name: cluster.name },
  };
}

/**
 * The listeners and clusters pushed over LDS and CDS: the bootstrap's, without the static-only
 * ones, and the clusters named in `eds` as EDS clusters.
 */
export function dynamicListenersAndClusters(
  bootstrap: BootstrapInput,
  eds: readonly EdsService[],
): { listeners: ListenerInput[]; clusters: ClusterInput[] } {
  const s = staticResources(bootstrap);
  const edsNames = new Set(eds.map((e) => e.cluster));
  return {
    listeners: s.listeners.filter((l) => !STATIC_ONLY_LISTENERS.has(l.name)),
    clusters: s.clusters
      .filter((c) => !STATIC_ONLY_CLUSTERS.has(c.name))
      .map((c) => (edsNames.has(c.name) ? asEdsCluster(c) : c)),
  };
}
