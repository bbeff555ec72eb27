/** The resource types the operator reads and writes, and their REST paths. */
import { GROUP, VERSION } from "../api/index.ts";

export interface ResourceType {
  /** "" for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
}

export const RESOURCES = {
  policyServerClusters: {
    group: GROUP,
    version: VERSION,
    plural: "policyserverclusters",
    kind: "PolicyServerCluster",
  },
  agents: { group: GROUP, version: VERSION, plural: "agents", kind: "Agent" },
  brokers: { group: GROUP, version: VERSION, plural: "brokers", kind: "Broker" },
  proxyRoutes: { group: GROUP, version: VERSION, plural: "proxyroutes", kind: "ProxyRoute" },
  deployments: { group: "apps", version: "v1", plural: "deployments", kind: "Deployment" },
  services: { group: "", version: "v1", plural: "services", kind: "Service" },
  configMaps: { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" },
  endpointSlices: {
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    kind: "EndpointSlice",
  },
  events: { group: "", version: "v1", plural: "events", kind: "Event" },
  leases: { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease" },
} as const satisfies Record<string, ResourceType>;

export function apiVersionOf(r: ResourceType): string {
  return r.group === "" ? r.version : `${r.group}/${r.version}`;
}

/** `/apis/apps/v1/namespaces/ns/deployments/name`; namespace undefined or "" = all namespaces. */
export function resourcePath(
  r: ResourceType,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  let path = r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (namespace !== undefined && namespace !== "") path += `/namespaces/${encodeURIComponent(namespace)}`;
  path += `/${r.plural}`;
  if (name !== undefined) path += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) path += `/${subresource}`;
  return path;
}

/** What the operator reads of any object. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  managedFields?: unknown;
  ownerReferences?: {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
  }[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}
