/**
 * The Tether API (tether.dev/v1alpha1): one zod schema per kind, the single source of the
 * TypeScript types, the operator's runtime parsing and the CRDs in crds/.
 */
import { agentKind } from "./agent.ts";
import { brokerKind } from "./broker.ts";
import type { KindInfo } from "./kind.ts";
import { policyServerClusterKind } from "./policy-server-cluster.ts";
import { proxyRouteKind } from "./proxy-route.ts";

export * from "./agent.ts";
export * from "./broker.ts";
export * from "./common.ts";
export * from "./crd.ts";
export * from "./duration.ts";
export * from "./kind.ts";
export * from "./lifecycle.ts";
export * from "./policy-server-cluster.ts";
export * from "./proxy-route.ts";

/** Every Tether kind, in the order their CRDs are listed. */
export const KINDS: readonly KindInfo[] = [policyServerClusterKind, agentKind, brokerKind, proxyRouteKind];
export * from "./parse.ts";
export * from "./openapi.ts";
