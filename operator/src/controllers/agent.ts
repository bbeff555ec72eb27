/** Agent → Deployment + sidecar ConfigMap + agent-config ConfigMap; status from the Deployment. */
import {
  labelSelectorString,
  type AgentSpec,
  type Condition,
  type PolicyServerClusterSpec,
} from "../api/index.ts";
import { RESOURCES, type KubeObject } from "../kube/resources.ts";
import { renderAgent, selectorLabels, type RouteVerdict } from "../render/index.ts";
import { applyChildren, applyFailure, writeStatusIfChanged, type ApplyOutcome } from "./children.ts";
import {
  configRejectedCondition,
  invalidSpecStatus,
  mergeConditions,
  type ConditionUpdate,
  type StatusWithConditions,
} from "./conditions.ts";
import type { ControllerContext } from "./context.ts";
import {
  deploymentReadiness,
  generationOf,
  ownerMeta,
  parseAgent,
  parsePolicyServerCluster,
} from "./parse.ts";
import { acceptedRoutes, verdictsFor } from "./route-verdicts.ts";
import { notify } from "./notify.ts";
import { applyXdsCaBundle, pruneXdsCaBundle } from "./xds-ca.ts";

type Resolution =
  | { ok: true; spec: PolicyServerClusterSpec; condition: ConditionUpdate }
  | { ok: false; condition: ConditionUpdate };

function resolvePolicyServers(ctx: ControllerContext, namespace: string, spec: AgentSpec): Resolution {
  const name = spec.policyServerClusterRef.name;
  const psc = ctx.stores.policyServerClusters.get(namespace, name);
  const type = "PolicyServerResolved";
  if (psc === undefined) {
    return {
      ok: false,
      condition: {
        type,
        status: "False",
        reason: "NotFound",
        message: `PolicyServerCluster ${name} not found in namespace ${namespace}`,
      },
    };
  }
  const parsed = parsePolicyServerCluster(psc);
  if (!parsed.ok) {
    return {
      ok: false,
      condition: {
        type,
        status: "False",
        reason: "InvalidReference",
        message: `PolicyServerCluster ${name} is invalid: ${parsed.message}`,
      },
    };
  }
  const where =
    parsed.spec.managed !== undefined
      ? "managed"
      : `${parsed.spec.external?.servers.length ?? 0} external servers`;
  return {
    ok: true,
    spec: parsed.spec,
    condition: {
      type,
      status: "True",
      reason: "Resolved",
      message: `PolicyServerCluster ${name} (${where}, protocol ${parsed.spec.protocol}, port ${parsed.spec.port})`,
    },
  };
}

function routesCondition(verdicts: readonly RouteVerdict[]): ConditionUpdate {
  const type = "RoutesAccepted";
  if (verdicts.length === 0)
    return { type, status: "True", reason: "NoRoutes", message: "No ProxyRoutes attach to this Agent" };
  const rejected = verdicts.filter((v) => v.accepted.status !== "True");
  if (rejected.length === 0) {
    return {
      type,
      status: "True",
      reason: "Accepted",
      message: `Serving ProxyRoutes ${verdicts.map((v) => v.route.name).join(", ")}`,
    };
  }
  return {
    type,
    status: "False",
    reason: "RoutesRejected",
    message: rejected.map((v) => `ProxyRoute ${v.route.name}: ${v.accepted.message}`).join("; "),
  };
}

function readyCondition(
  resolution: Resolution,
  outcome: ApplyOutcome | undefined,
  namespace: string,
  deployment: KubeObject | undefined,
): ConditionUpdate {
  const type = "Ready";
  if (!resolution.ok)
    return {
      type,
      status: "False",
      reason: "PolicyServerNotResolved",
      message: resolution.condition.message,
    };
  const failure = outcome === undefined ? undefined : applyFailure(outcome, namespace, "Agent", type);
  if (failure !== undefined) return failure;
  const r = deploymentReadiness(deployment);
  if (r.readyReplicas >= r.desired) {
    return {
      type,
      status: "True",
      reason: "Available",
      message: `${r.readyReplicas}/${r.desired} agent pods ready`,
    };
  }
  return {
    type,
    status: "False",
    reason: "Progressing",
    message: `${r.readyReplicas}/${r.desired} agent pods ready`,
  };
}

export async function reconcileAgent(ctx: ControllerContext, namespace: string, name: string): Promise<void> {
  const object = ctx.stores.agents.get(namespace, name);
  if (object === undefined || object.metadata.deletionTimestamp !== undefined) {
    // Gone (or going): the namespace's shared CA bundle goes with the last Agent or Broker.
    await pruneXdsCaBundle(ctx, namespace);
    return;
  }
  const generation = generationOf(object);
  const previous = object["status"] as { conditions?: Condition[] } | undefined;
  const parsed = parseAgent(object);
  if (!parsed.ok) {
    await finish(ctx, object, invalidSpecStatus(previous?.conditions, generation, parsed.message, ctx.now()));
    return;
  }
  const spec = parsed.spec;
  const resolution = resolvePolicyServers(ctx, namespace, spec);
  const verdicts = verdictsFor(ctx, namespace, name);
  let outcome: ApplyOutcome | undefined;
  if (resolution.ok) {
    const children = renderAgent({
      owner: ownerMeta("Agent", object),
      spec,
      policyServers: { name: spec.policyServerClusterRef.name, spec: resolution.spec },
      routes: acceptedRoutes(verdicts),
      options: ctx.render,
    });
    if (spec.sidecar.xds.enabled) await applyXdsCaBundle(ctx, namespace);
    outcome = await applyChildren(ctx, object.metadata.uid ?? "", [
      children.deployment,
      children.sidecarConfig,
      children.agentConfig,
    ]);
  }
  // Without a resolved PolicyServerCluster the children are left as they were: a sidecar keeps
  // serving its last config rather than losing its servers.
  const deployment =
    outcome?.observed.get(`Deployment/${name}`) ?? ctx.stores.deployments.get(namespace, name);
  const owned =
    deployment !== undefined && outcome?.conflicts.every((c) => c.kind !== "Deployment") !== false;
  const ready = readyCondition(resolution, outcome, namespace, owned ? deployment : undefined);
  const conditions = mergeConditions(
    previous?.conditions,
    [
      ready,
      resolution.condition,
      routesCondition(verdicts),
      ...configRejectedCondition(ctx.xds?.configRejected("agent", namespace, name), previous?.conditions),
    ],
    generation,
    ctx.now(),
  );
  const r = deploymentReadiness(owned ? deployment : undefined);
  await finish(
    ctx,
    object,
    {
      observedGeneration: generation,
      conditions,
      replicas: r.replicas,
      readyReplicas: r.readyReplicas,
      selector: labelSelectorString(selectorLabels(ownerMeta("Agent", object), "agent")),
    },
    outcome,
  );
}

async function finish(
  ctx: ControllerContext,
  object: KubeObject,
  status: StatusWithConditions,
  outcome?: ApplyOutcome,
): Promise<void> {
  const before = object["status"] as { conditions?: ConditionUpdate[] } | undefined;
  const changed = await writeStatusIfChanged(ctx, RESOURCES.agents, ctx.stores.agents, object, status);
  notify(ctx, object, before?.conditions, changed ? status.conditions : undefined, outcome);
}
