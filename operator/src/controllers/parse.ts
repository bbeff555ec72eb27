/** Parsing the cached objects' specs with the API's schemas (defaults applied, errors by field). */
import {
  agentSpec,
  describeErrors,
  parseSpec,
  policyServerClusterSpec,
  proxyRouteSpec,
  brokerSpec,
  type AgentSpec,
  type BrokerSpec,
  type PolicyServerClusterSpec,
  type ProxyRouteSpec,
} from "../api/index.ts";
import type { KubeObject } from "../kube/resources.ts";
import type { OwnerMeta } from "../render/index.ts";
import type { TetherKind } from "./context.ts";

export type Parsed<T> = { ok: true; spec: T } | { ok: false; message: string };

function parse<T>(schema: Parameters<typeof parseSpec>[0], object: KubeObject): Parsed<T> {
  const result = parseSpec(schema, object["spec"]);
  if (result.ok) return { ok: true, spec: result.value as T };
  return { ok: false, message: describeErrors(result.errors) };
}

export const parseAgent = (o: KubeObject): Parsed<AgentSpec> => parse<AgentSpec>(agentSpec, o);
export const parsePolicyServerCluster = (o: KubeObject): Parsed<PolicyServerClusterSpec> =>
  parse<PolicyServerClusterSpec>(policyServerClusterSpec, o);
export const parseBroker = (o: KubeObject): Parsed<BrokerSpec> => parse<BrokerSpec>(brokerSpec, o);
export const parseProxyRoute = (o: KubeObject): Parsed<ProxyRouteSpec> =>
  parse<ProxyRouteSpec>(proxyRouteSpec, o);

export function ownerMeta(kind: TetherKind, object: KubeObject): OwnerMeta {
  return {
    kind,
    name: object.metadata.name,
    namespace: object.metadata.namespace ?? "",
    uid: object.metadata.uid ?? "",
  };
}

export function generationOf(object: KubeObject): number {
  return object.metadata.generation ?? 0;
}

/** A Deployment's ready pods and whether it has caught up with its spec. */
export function deploymentReadiness(deployment: KubeObject | undefined): {
  replicas: number;
  readyReplicas: number;
  desired: number;
} {
  const spec = (deployment?.["spec"] ?? {}) as { replicas?: number };
  const status = (deployment?.["status"] ?? {}) as { replicas?: number; readyReplicas?: number };
  return {
    replicas: status.replicas ?? 0,
    readyReplicas: status.readyReplicas ?? 0,
    desired: spec.replicas ?? 1,
  };
}
