/** PolicyServerCluster (managed) → Deployment `<name>` + headless Service `<name>`. External: no children. */
import type { PolicyServerClusterSpec } from "../api/index.ts";
import type { Deployment } from "./agent.ts";
import { childMeta, childNames, selectorLabels, type ChildMeta, type OwnerMeta } from "./meta.ts";
import { userTemplate, withTemplateHash } from "./pod.ts";

export interface Service {
  apiVersion: "v1";
  kind: "Service";
  metadata: ChildMeta;
  spec: Record<string, unknown>;
}

export interface PolicyServerChildren {
  readonly deployment: Deployment;
  readonly service: Service;
}

/** Undefined for an external cluster: its servers live outside and nothing is created. */
export function renderPolicyServerCluster(
  owner: OwnerMeta,
  spec: PolicyServerClusterSpec,
): PolicyServerChildren | undefined {
  const managed = spec.managed;
  if (managed === undefined) return undefined;
  const selector = selectorLabels(owner, "policy-server");
  const deployment: Deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: childMeta(owner, childNames.deployment(owner.name), "policy-server"),
    spec: {
      replicas: managed.replicas,
      selector: { matchLabels: selector },
      template: withTemplateHash(userTemplate(managed.template, selector)),
    },
  };
  const service: Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: childMeta(owner, childNames.service(owner.name), "policy-server"),
    spec: {
      // Headless: DNS answers with every ready pod, so each sidecar balances and fails over itself.
      clusterIP: "None",
      selector,
      ports: [{ name: "policy-server", port: spec.port, targetPort: spec.port, protocol: "TCP" }],
    },
  };
  return { deployment, service };
}
