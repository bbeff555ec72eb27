/** ProxyRoute: nothing of its own to create (it renders into its Agent); status says if it is served. */
import type { Condition } from "../api/index.ts";
import { RESOURCES } from "../kube/resources.ts";
import { writeStatusIfChanged } from "./children.ts";
import { mergeConditions, type ConditionUpdate } from "./conditions.ts";
import type { ControllerContext } from "./context.ts";
import { notify } from "./notify.ts";
import { generationOf } from "./parse.ts";
import { verdictsFor } from "./route-verdicts.ts";

export async function reconcileProxyRoute(
  ctx: ControllerContext,
  namespace: string,
  name: string,
): Promise<void> {
  const object = ctx.stores.proxyRoutes.get(namespace, name);
  if (object === undefined || object.metadata.deletionTimestamp !== undefined) return;
  const generation = generationOf(object);
  const agentName = (object["spec"] as { agentRef?: { name?: string } } | undefined)?.agentRef?.name ?? "";
  const verdict = verdictsFor(ctx, namespace, agentName).find((v) => v.route.name === name);
  const accepted: ConditionUpdate = {
    type: "Accepted",
    ...(verdict?.accepted ?? { status: "False", reason: "InvalidSpec", message: "spec.agentRef: required" }),
  };
  const resolved: ConditionUpdate = { type: "ResolvedRefs", ...(verdict?.resolvedRefs ?? accepted) };
  const failing = [resolved, accepted].find((c) => c.status !== "True");
  const ready: ConditionUpdate =
    failing === undefined
      ? { type: "Ready", status: "True", reason: "Accepted", message: accepted.message }
      : { type: "Ready", status: "False", reason: failing.reason, message: failing.message };
  const previous = (object["status"] as { conditions?: Condition[] } | undefined)?.conditions;
  const status = {
    observedGeneration: generation,
    conditions: mergeConditions(previous, [ready, accepted, resolved], generation, ctx.now()),
  };
  const changed = await writeStatusIfChanged(
    ctx,
    RESOURCES.proxyRoutes,
    ctx.stores.proxyRoutes,
    object,
    status,
  );
  notify(ctx, object, previous, changed ? status.conditions : undefined, undefined);
}
