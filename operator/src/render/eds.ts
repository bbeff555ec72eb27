/**
 * EndpointSlices (discovery.k8s.io/v1) → an Envoy ClusterLoadAssignment (EDS). Ready endpoints are
 * HEALTHY; serving and terminating ones DRAINING (in-flight requests finish, no new ones); anything
 * else, and every endpoint no slice lists any more, is left out, which removes it from the sidecar.
 */
import type { ClusterLoadAssignmentInput } from "@tether/envoy";
import { socketAddress } from "./envoy.ts";

/** The label an EndpointSlice names its Service by. */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

export interface EndpointSliceLike {
  readonly addressType?: string;
  readonly endpoints?:
    | readonly {
        readonly addresses?: readonly string[];
        readonly conditions?: {
          readonly ready?: boolean;
          readonly serving?: boolean;
          readonly terminating?: boolean;
        };
      }[]
    | null;
  readonly ports?:
    readonly { readonly name?: string; readonly port?: number; readonly protocol?: string }[] | null;
}

export interface ServicePortLike {
  readonly name?: string;
  readonly port: number;
  readonly protocol?: string;
}

export type EndpointHealth = "HEALTHY" | "DRAINING";

/** Envoy's health of one slice endpoint, or undefined when it takes no traffic at all. */
export function endpointHealth(
  conditions: {
    readonly ready?: boolean;
    readonly serving?: boolean;
    readonly terminating?: boolean;
  } = {},
): EndpointHealth | undefined {
  // The API: a nil ready means ready; a nil serving means the same as ready.
  const ready = conditions.ready ?? true;
  const terminating = conditions.terminating ?? false;
  const serving = conditions.serving ?? ready;
  if (ready && !terminating) return "HEALTHY";
  if (terminating && serving) return "DRAINING";
  return undefined;
}

type Hosts = Map<string, { address: string; port: number; health: EndpointHealth }>;

function addEndpoint(
  hosts: Hosts,
  endpoint: NonNullable<EndpointSliceLike["endpoints"]>[number],
  port: number,
): void {
  const health = endpointHealth(endpoint.conditions);
  if (health === undefined) return;
  for (const address of endpoint.addresses ?? []) {
    const key = `${address}|${String(port)}`;
    // The same pod may sit in two slices while they are rebalanced: HEALTHY wins.
    if (hosts.get(key)?.health === "HEALTHY") continue;
    hosts.set(key, { address, port, health });
  }
}

/**
 * The ClusterLoadAssignment of `clusterName` from the Service's slices. The Service port is mapped
 * to the slices' port by its name, as kube-proxy does (an unnamed port is the "" name). No Service
 * port, no endpoints.
 */
export function clusterLoadAssignment(
  clusterName: string,
  servicePort: ServicePortLike | undefined,
  slices: readonly EndpointSliceLike[],
): ClusterLoadAssignmentInput {
  const hosts: Hosts = new Map();
  if (servicePort !== undefined) {
    const portName = servicePort.name ?? "";
    for (const slice of slices) {
      if (slice.addressType !== "IPv4" && slice.addressType !== "IPv6") continue;
      const port = (slice.ports ?? []).find(
        (p) => (p.name ?? "") === portName && (p.protocol ?? "TCP") === "TCP",
      )?.port;
      if (port === undefined) continue;
      for (const endpoint of slice.endpoints ?? []) addEndpoint(hosts, endpoint, port);
    }
  }
  const lbEndpoints = [...hosts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, h]) => ({ endpoint: { address: socketAddress(h.address, h.port) }, health_status: h.health }));
  return {
    cluster_name: clusterName,
    endpoints: lbEndpoints.length === 0 ? [] : [{ priority: 0, lb_endpoints: lbEndpoints }],
  };
}
