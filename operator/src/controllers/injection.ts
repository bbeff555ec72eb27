/**
 * What the admission webhook needs to inject an Agent's sidecar into a pod, from the caches: the
 * Agent's spec, its PolicyServerCluster and its accepted routes — the same inputs its Deployment is
 * rendered from, so an adopted pod and an Agent's own pod get the same sidecar.
 */
import { ownerMeta, parseAgent } from "./parse.ts";
import { acceptedRoutes, agentPolicyServers, verdictsFor } from "./route-verdicts.ts";
import type { ControllerContext } from "./context.ts";
import type { AgentInput } from "../render/index.ts";

export type InjectionResolution = { ok: true; input: AgentInput } | { ok: false; message: string };

export function resolveInjection(
  ctx: ControllerContext,
  namespace: string,
  agentName: string,
): InjectionResolution {
  const object = ctx.stores.agents.get(namespace, agentName);
  if (object === undefined || object.metadata.deletionTimestamp !== undefined) {
    return { ok: false, message: `Agent ${agentName} not found in namespace ${namespace}` };
  }
  const parsed = parseAgent(object);
  if (!parsed.ok) return { ok: false, message: `Agent ${agentName} is invalid: ${parsed.message}` };
  const psc = agentPolicyServers(ctx, namespace, parsed.spec);
  const pscName = parsed.spec.policyServerClusterRef.name;
  if (psc === undefined) {
    return {
      ok: false,
      message: `Agent ${agentName}: PolicyServerCluster ${pscName} not found or invalid in namespace ${namespace}`,
    };
  }
  return {
    ok: true,
    input: {
      owner: ownerMeta("Agent", object),
      spec: parsed.spec,
      policyServers: { name: pscName, spec: psc },
      routes: acceptedRoutes(verdictsFor(ctx, namespace, agentName)),
      options: ctx.render,
    },
  };
}
