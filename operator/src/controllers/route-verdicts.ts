/** The ProxyRoutes of one Agent and their verdicts, computed the same way for both controllers. */
import type { AgentSpec, PolicyServerClusterSpec } from "../api/index.ts";
import {
  evaluateRoutes,
  reservedPorts,
  type AcceptedRoute,
  type RouteInput,
  type RouteVerdict,
} from "../render/index.ts";
import type { ControllerContext } from "./context.ts";
import { parseAgent, parsePolicyServerCluster, parseProxyRoute } from "./parse.ts";

export function routesNaming(ctx: ControllerContext, namespace: string, agentName: string): RouteInput[] {
  return ctx.stores.proxyRoutes
    .list(namespace)
    .filter(
      (o) =>
        ((o["spec"] as { agentRef?: { name?: string } } | undefined)?.agentRef?.name ?? "") === agentName,
    )
    .map((o) => {
      const parsed = parseProxyRoute(o);
      return {
        name: o.metadata.name,
        creationTimestamp: o.metadata.creationTimestamp,
        spec: parsed.ok ? parsed.spec : undefined,
        specError: parsed.ok ? undefined : parsed.message,
      };
    });
}

export function agentPolicyServers(
  ctx: ControllerContext,
  namespace: string,
  spec: AgentSpec,
): PolicyServerClusterSpec | undefined {
  const psc = ctx.stores.policyServerClusters.get(namespace, spec.policyServerClusterRef.name);
  if (psc === undefined) return undefined;
  const parsed = parsePolicyServerCluster(psc);
  return parsed.ok ? parsed.spec : undefined;
}

export function verdictsFor(ctx: ControllerContext, namespace: string, agentName: string): RouteVerdict[] {
  const agentObject = ctx.stores.agents.get(namespace, agentName);
  const parsedAgent = agentObject === undefined ? undefined : parseAgent(agentObject);
  const agentSpec = parsedAgent?.ok === true ? parsedAgent.spec : undefined;
  const psc = agentSpec === undefined ? undefined : agentPolicyServers(ctx, namespace, agentSpec);
  return evaluateRoutes(routesNaming(ctx, namespace, agentName), {
    namespace,
    agentName,
    agentExists: agentSpec !== undefined,
    reservedPorts: agentSpec === undefined ? new Map() : reservedPorts(agentSpec, psc),
    serviceExists: (name) => ctx.stores.services.get(namespace, name) !== undefined,
  });
}

/** The routes the Agent's sidecar serves: accepted ones, and those answering 503 for a missing backend. */
export function acceptedRoutes(verdicts: readonly RouteVerdict[]): AcceptedRoute[] {
  return verdicts.flatMap((v) => {
    if (v.route.spec === undefined) return [];
    if (v.accepted.status === "True") return [{ name: v.route.name, spec: v.route.spec }];
    if (v.missingBackend !== undefined)
      return [{ name: v.route.name, spec: v.route.spec, missingBackend: v.missingBackend }];
    return [];
  });
}
