/** Broker → Deployment (sidecar standalone) + Service + sidecar ConfigMap; status from the Deployment. */
import { labelSelectorString, type Condition } from "../api/index.ts";
import { RESOURCES, type KubeObject } from "../kube/resources.ts";
import { renderBroker, selectorLabels } from "../render/index.ts";
import { applyChildren, applyFailure, writeStatusIfChanged, type ApplyOutcome } from "./children.ts";
import {
  configRejectedCondition,
  invalidSpecStatus,
  mergeConditions,
  type ConditionUpdate,
  type StatusWithConditions,
} from "./conditions.ts";
import type { ControllerContext } from "./context.ts";
import { notify } from "./notify.ts";
import { applyXdsCaBundle, pruneXdsCaBundle } from "./xds-ca.ts";
import { deploymentReadiness, generationOf, ownerMeta, parseBroker } from "./parse.ts";

export async function reconcileBroker(
  ctx: ControllerContext,
  namespace: string,
  name: string,
): Promise<void> {
  const object = ctx.stores.brokers.get(namespace, name);
  if (object === undefined || object.metadata.deletionTimestamp !== undefined) {
    // Gone (or going): the namespace's shared CA bundle goes with the last Agent or Broker.
    await pruneXdsCaBundle(ctx, namespace);
    return;
  }
  const generation = generationOf(object);
  const previous = (object["status"] as { conditions?: Condition[] } | undefined)?.conditions;
  const parsed = parseBroker(object);
  if (!parsed.ok) {
    await finish(ctx, object, invalidSpecStatus(previous, generation, parsed.message, ctx.now()));
    return;
  }
  const spec = parsed.spec;
  const children = renderBroker({ owner: ownerMeta("Broker", object), spec, options: ctx.render });
  if (spec.sidecar.xds.enabled) await applyXdsCaBundle(ctx, namespace);
  const outcome = await applyChildren(ctx, object.metadata.uid ?? "", [
    children.sidecarConfig,
    children.deployment,
    children.service,
  ]);
  const deployment = outcome.observed.get(`Deployment/${name}`);
  const r = deploymentReadiness(deployment);
  const serviceRef = spec.backends.serviceRef;
  const failure = applyFailure(outcome, namespace, "Broker");
  let ready: ConditionUpdate;
  if (failure !== undefined) {
    ready = failure;
  } else if (serviceRef !== undefined && ctx.stores.services.get(namespace, serviceRef.name) === undefined) {
    ready = {
      type: "Ready",
      status: "False",
      reason: "BackendNotFound",
      message: `Service ${serviceRef.name} not found in namespace ${namespace}`,
    };
  } else if (r.readyReplicas >= r.desired) {
    ready = {
      type: "Ready",
      status: "True",
      reason: "Available",
      message: `${r.readyReplicas}/${r.desired} broker pods ready`,
    };
  } else {
    ready = {
      type: "Ready",
      status: "False",
      reason: "Progressing",
      message: `${r.readyReplicas}/${r.desired} broker pods ready`,
    };
  }
  await finish(
    ctx,
    object,
    {
      observedGeneration: generation,
      conditions: mergeConditions(
        previous,
        [ready, ...configRejectedCondition(ctx.xds?.configRejected("broker", namespace, name), previous)],
        generation,
        ctx.now(),
      ),
      replicas: r.replicas,
      readyReplicas: r.readyReplicas,
      selector: labelSelectorString(selectorLabels(ownerMeta("Broker", object), "broker")),
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
  const changed = await writeStatusIfChanged(ctx, RESOURCES.brokers, ctx.stores.brokers, object, status);
  notify(ctx, object, before, changed ? status.conditions : undefined, outcome);
}
