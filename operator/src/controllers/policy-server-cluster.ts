/** PolicyServerCluster → (managed) Deployment + headless Service; status endpoints from the Deployment. */
import type { Condition } from "../api/index.ts";
import { RESOURCES, type KubeObject } from "../kube/resources.ts";
import { renderPolicyServerCluster } from "../render/index.ts";
import { applyChildren, applyFailure, writeStatusIfChanged, type ApplyOutcome } from "./children.ts";
import {
  invalidSpecStatus,
  mergeConditions,
  type ConditionUpdate,
  type StatusWithConditions,
} from "./conditions.ts";
import type { ControllerContext } from "./context.ts";
import { notify } from "./notify.ts";
import { deploymentReadiness, generationOf, ownerMeta, parsePolicyServerCluster } from "./parse.ts";

export async function reconcilePolicyServerCluster(
  ctx: ControllerContext,
  namespace: string,
  name: string,
): Promise<void> {
  const object = ctx.stores.policyServerClusters.get(namespace, name);
  if (object === undefined || object.metadata.deletionTimestamp !== undefined) return;
  const generation = generationOf(object);
  const previous = (object["status"] as { conditions?: Condition[] } | undefined)?.conditions;
  const parsed = parsePolicyServerCluster(object);
  if (!parsed.ok) {
    await finish(ctx, object, invalidSpecStatus(previous, generation, parsed.message, ctx.now()));
    return;
  }
  const spec = parsed.spec;
  const children = renderPolicyServerCluster(ownerMeta("PolicyServerCluster", object), spec);
  if (children === undefined) {
    const count = spec.external?.servers.length ?? 0;
    const ready: ConditionUpdate = {
      type: "Ready",
      status: "True",
      reason: "External",
      message: `${count} external server${count === 1 ? "" : "s"}; each agent's sidecar health-checks them`,
    };
    await finish(ctx, object, {
      observedGeneration: generation,
      conditions: mergeConditions(previous, [ready], generation, ctx.now()),
    });
    return;
  }
  const outcome = await applyChildren(ctx, object.metadata.uid ?? "", [
    children.deployment,
    children.service,
  ]);
  const deployment = outcome.observed.get(`Deployment/${name}`);
  const r = deploymentReadiness(deployment);
  const failure = applyFailure(outcome, namespace, "PolicyServerCluster");
  let ready: ConditionUpdate;
  if (failure !== undefined) {
    ready = failure;
  } else if (r.readyReplicas >= r.desired) {
    ready = {
      type: "Ready",
      status: "True",
      reason: "Available",
      message: `${r.readyReplicas}/${r.desired} policy-server pods ready`,
    };
  } else {
    ready = {
      type: "Ready",
      status: "False",
      reason: "Progressing",
      message: `${r.readyReplicas}/${r.desired} policy-server pods ready`,
    };
  }
  await finish(
    ctx,
    object,
    {
      observedGeneration: generation,
      conditions: mergeConditions(previous, [ready], generation, ctx.now()),
      endpoints: {
        ready: deployment === undefined ? 0 : r.readyReplicas,
        total: spec.managed?.replicas ?? 0,
      },
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
  const before = (object["status"] as { conditions?: Condition[] } | undefined)?.conditions;
  const changed = await writeStatusIfChanged(
    ctx,
    RESOURCES.policyServerClusters,
    ctx.stores.policyServerClusters,
    object,
    status,
  );
  notify(ctx, object, before, changed ? status.conditions : undefined, outcome);
}
