/** What every controller gets: the caches, the API client, events, render options, metrics. */
import type { Logger } from "pino";
import type { KubeTransport } from "../kube/client.ts";
import type { EventRecorder } from "../kube/events.ts";
import type { Store } from "../kube/store.ts";
import type { RenderOptions, XdsKind } from "../render/index.ts";
import type { ConditionUpdate } from "./conditions.ts";

export interface Stores {
  readonly policyServerClusters: Store;
  readonly agents: Store;
  readonly brokers: Store;
  readonly proxyRoutes: Store;
  /** Only objects labelled managed-by=tether-operator. */
  readonly deployments: Store;
  /** Every Service (ProxyRoutes and Brokers may reference any). */
  readonly services: Store;
  /** Only objects labelled managed-by=tether-operator. */
  readonly configMaps: Store;
  /** Metadata of every Deployment: which names are taken, and by whom. */
  readonly deploymentNames: Store;
  /** Metadata of every ConfigMap: which names are taken, and by whom. */
  readonly configMapNames: Store;
  /** Every EndpointSlice (discovery.k8s.io/v1): the endpoints the xDS server pushes (EDS). */
  readonly endpointSlices: Store;
}

export interface ControllerContext {
  readonly client: KubeTransport;
  readonly stores: Stores;
  readonly events: EventRecorder;
  readonly render: RenderOptions;
  readonly logger: Logger;
  /** The clock for condition timestamps. */
  readonly now: () => Date;
  /** The CA bundle (PEM) sidecars verify the xDS server with, when it serves TLS. */
  readonly xdsCa?: { bundle(): string };
  /** What the sidecars said of their xDS config (ConfigRejected), when the xDS server runs. */
  readonly xds?: {
    configRejected(kind: XdsKind, namespace: string, name: string): ConditionUpdate | undefined;
  };
}

export type TetherKind = "PolicyServerCluster" | "Agent" | "Broker" | "ProxyRoute";

/** Queue keys: `Kind/namespace/name`. */
export function queueKey(kind: TetherKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

export function parseQueueKey(key: string): { kind: TetherKind; namespace: string; name: string } {
  const [kind, namespace, name] = key.split("/");
  return { kind: kind as TetherKind, namespace: namespace ?? "", name: name ?? "" };
}
