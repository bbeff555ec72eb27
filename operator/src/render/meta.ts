/**
 * Names, labels and owner references shared by every rendered child. The API contract fixes these: tests,
 * dashboards and users select on them.
 */
import { API_VERSION } from "../api/index.ts";

export const MANAGED_BY = "tether-operator";
/** On the pod template: changes only when the pod template itself changes (config hot-reloads). */
export const POD_TEMPLATE_HASH_ANNOTATION = "tether.dev/pod-template-hash";
/**
 * On a pod not made by an Agent (an existing workload's): the Agent, in the same namespace, whose
 * sidecar the sidecar-injection webhook adds and whose config the xDS server serves that pod.
 */
export const AGENT_ANNOTATION = "tether.dev/agent";

export type Component = "policy-server" | "agent" | "broker";

/** The identity of a Tether resource, as its children need it. */
export interface OwnerMeta {
  readonly kind: "PolicyServerCluster" | "Agent" | "Broker" | "ProxyRoute";
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

export interface ChildMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences: OwnerReference[];
}

/** The labels a Deployment selects its pods by (immutable once created, so never add to them). */
export function selectorLabels(owner: OwnerMeta, component: Component): Record<string, string> {
  return {
    "app.kubernetes.io/name": "tether",
    "app.kubernetes.io/instance": owner.name,
    "app.kubernetes.io/component": component,
  };
}

/** Every child's labels: the selector labels plus managed-by. */
export function childLabels(owner: OwnerMeta, component: Component): Record<string, string> {
  return { ...selectorLabels(owner, component), "app.kubernetes.io/managed-by": MANAGED_BY };
}

export function ownerReference(owner: OwnerMeta): OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: owner.kind,
    name: owner.name,
    uid: owner.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function childMeta(owner: OwnerMeta, name: string, component: Component): ChildMeta {
  return {
    name,
    namespace: owner.namespace,
    labels: childLabels(owner, component),
    ownerReferences: [ownerReference(owner)],
  };
}

/** Child names, as the API contract fixes them. */
export const childNames = {
  deployment: (owner: string): string => owner,
  service: (owner: string): string => owner,
  sidecarConfigMap: (owner: string): string => `${owner}-sidecar`,
  agentConfigMap: (owner: string): string => `${owner}-agent-config`,
} as const;

/** The DNS name of a Service in the cluster. */
export function serviceHost(name: string, namespace: string, clusterDomain: string): string {
  return `${name}.${namespace}.svc.${clusterDomain}`;
}
