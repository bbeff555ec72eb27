/** PolicyServerCluster (managed) → Deployment `<name>` + headless Service `<name>`. External: no children. */
import { parseDuration, type PolicyServerClusterSpec } from "../api/index.ts";
import type { Deployment } from "./agent.ts";
import { childMeta, childNames, selectorLabels, type ChildMeta, type OwnerMeta } from "./meta.ts";
import { userTemplate, withTemplateHash, type JsonObject, type PodTemplate } from "./pod.ts";

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
      template: withTemplateHash(withDrain(userTemplate(managed.template, selector), spec.drain)),
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

/** Whole seconds, rounded up (the pod API counts in seconds). */
function seconds(duration: string): number {
  return Math.ceil(parseDuration(duration) / 1000);
}

/**
 * Server-side drain: each container sleeps `preStopDelay` in preStop before SIGTERM (the kubelet's
 * own sleep action, so any image works), while its endpoint is `serving`+`terminating` and the
 * sidecars treat it as DRAINING; the grace period covers the sleep. The template's own wins.
 */
export function withDrain(template: PodTemplate, drain: PolicyServerClusterSpec["drain"]): PodTemplate {
  const delay = seconds(drain.preStopDelay);
  const grace = Math.max(seconds(drain.gracePeriod), delay + 1);
  const containers = template.spec.containers.map((c): JsonObject => {
    const lifecycle = (c["lifecycle"] ?? {}) as JsonObject;
    if (lifecycle["preStop"] !== undefined || delay === 0) return c;
    return { ...c, lifecycle: { ...lifecycle, preStop: { sleep: { seconds: delay } } } };
  });
  return {
    ...template,
    spec: {
      ...template.spec,
      containers,
      terminationGracePeriodSeconds: template.spec["terminationGracePeriodSeconds"] ?? grace,
    },
  };
}
