/**
 * ProxyRoutes → the HTTP listeners and clusters of their Agent's sidecar. Also decides which routes
 * an Agent accepts, so the Agent's config and each route's status always agree.
 */
import type { ProxyRouteSpec } from "../api/index.ts";
import {
  HCM_TYPE,
  type ClusterInput,
  type ListenerInput,
  type RetryPolicyInput,
  type RouteActionInput,
  type RouteInput as EnvoyRouteInput,
  type RouteMatchInput,
} from "@tether/envoy";
import {
  discoveryType,
  envoyDuration,
  healthCheck,
  httpProtocolOptions,
  loadAssignment,
  outlierDetection,
  routerFilter,
  socketAddress,
  tlsTransportSocket,
  requiredPort,
  type UpstreamServer,
} from "./envoy.ts";
import { serviceHost } from "./meta.ts";
import { secretFile } from "./secrets.ts";

/**
 * ProxyRoute backends are checked by a TCP connect with the API's health-check defaults (2 s, 1 s,
 * thresholds 2 and 1): a backend that is down leaves rotation, and is found again within 250 ms of
 * its restart instead of at the next retry that happens to reach it (docs/failover.md).
 */
export const ROUTE_HEALTH_CHECK = {
  type: "tcp",
  interval: "2s",
  timeout: "1s",
  unhealthyThreshold: 2,
  healthyThreshold: 1,
} as const;

/** Methods whose repetition is harmless (RFC 9110 §9.2.2): a reset may be retried. */
export const IDEMPOTENT_METHODS: readonly string[] = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"];
/** The others: retried only when the request never reached the server. */
export const NON_IDEMPOTENT_METHODS: readonly string[] = ["POST", "PATCH", "CONNECT"];

export interface RouteInput {
  readonly name: string;
  readonly creationTimestamp?: string | undefined;
  /** The parsed spec, or undefined when it did not parse. */
  readonly spec: ProxyRouteSpec | undefined;
  /** Why the spec did not parse (field paths). */
  readonly specError?: string | undefined;
}

export interface RouteContext {
  readonly namespace: string;
  readonly agentName: string;
  readonly agentExists: boolean;
  /** Ports of the Agent's sidecar that routes may not take, with what holds them. */
  readonly reservedPorts: ReadonlyMap<number, string>;
  readonly serviceExists: (name: string) => boolean;
}

export interface ConditionVerdict {
  readonly status: "True" | "False";
  readonly reason: string;
  readonly message: string;
}

export interface RouteVerdict {
  readonly route: RouteInput;
  readonly accepted: ConditionVerdict;
  readonly resolvedRefs: ConditionVerdict;
  /**
   * The missing backend Service of a route that still holds its match (port free, no older route
   * with the same match): the Agent answers it with 503 instead of letting it fall through.
   */
  readonly missingBackend?: string | undefined;
}

/** A route's match, as a key: two routes on one port with the same key conflict. */
export function matchKey(spec: ProxyRouteSpec): string {
  const m = spec.match;
  if (m.path !== undefined) return `path:${m.path}`;
  if (m.pathPrefix !== undefined) return `prefix:${m.pathPrefix}`;
  return `ext:${[...(m.extensions ?? [])].sort().join(",")}`;
}

function olderFirst(a: RouteInput, b: RouteInput): number {
  const ta = a.creationTimestamp ?? "";
  const tb = b.creationTimestamp ?? "";
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function methodsOverlap(a: ProxyRouteSpec, b: ProxyRouteSpec): boolean {
  if (a.methods === undefined || b.methods === undefined) return true;
  return a.methods.some((m) => b.methods?.includes(m));
}

function resolveRefs(spec: ProxyRouteSpec, ctx: RouteContext): ConditionVerdict {
  if (!ctx.agentExists) {
    return {
      status: "False",
      reason: "AgentNotFound",
      message: `Agent ${ctx.agentName} not found in namespace ${ctx.namespace}`,
    };
  }
  const svc = spec.backend.serviceRef;
  if (svc !== undefined && !ctx.serviceExists(svc.name)) {
    return {
      status: "False",
      reason: "BackendNotFound",
      message: `Service ${svc.name} not found in namespace ${ctx.namespace}`,
    };
  }
  return { status: "True", reason: "ResolvedRefs", message: "All references resolved" };
}

/**
 * Decides, for every route naming this Agent, whether it is served. Older routes win conflicts
 * (same port, same match, overlapping methods), as Gateway API does.
 */
export function evaluateRoutes(routes: readonly RouteInput[], ctx: RouteContext): RouteVerdict[] {
  const verdicts: RouteVerdict[] = [];
  const winners = new Map<string, RouteInput[]>();
  for (const route of [...routes].sort(olderFirst)) {
    const spec = route.spec;
    if (spec === undefined) {
      const message = route.specError ?? "invalid spec";
      verdicts.push({
        route,
        accepted: { status: "False", reason: "InvalidSpec", message },
        resolvedRefs: { status: "False", reason: "InvalidSpec", message },
      });
      continue;
    }
    const resolvedRefs = resolveRefs(spec, ctx);
    if (resolvedRefs.status === "True") {
      verdicts.push({ route, resolvedRefs, accepted: claim(route, spec, ctx, winners) });
      continue;
    }
    const accepted: ConditionVerdict = {
      status: "False",
      reason: "UnresolvedRefs",
      message: `Not served: ${resolvedRefs.message}`,
    };
    // Gateway API keeps a route whose backend is missing: its requests get an error, never the
    // next matching route's backend. It still takes part in port and match conflicts.
    const missing = resolvedRefs.reason === "BackendNotFound" ? spec.backend.serviceRef?.name : undefined;
    if (missing !== undefined && claim(route, spec, ctx, winners).status === "True") {
      verdicts.push({
        route,
        resolvedRefs,
        accepted: { ...accepted, message: `${accepted.message}; its requests get 503` },
        missingBackend: missing,
      });
    } else verdicts.push({ route, resolvedRefs, accepted });
  }
  return verdicts.sort((a, b) => (a.route.name < b.route.name ? -1 : a.route.name > b.route.name ? 1 : 0));
}

/** Whether the route may take its port and match; the winner is recorded in `winners`. */
function claim(
  route: RouteInput,
  spec: ProxyRouteSpec,
  ctx: RouteContext,
  winners: Map<string, RouteInput[]>,
): ConditionVerdict {
  const holder = ctx.reservedPorts.get(spec.listenerPort);
  if (holder !== undefined) {
    return {
      status: "False",
      reason: "PortConflict",
      message: `listenerPort ${spec.listenerPort} is taken by ${holder} of Agent ${ctx.agentName}`,
    };
  }
  const key = `${spec.listenerPort}|${matchKey(spec)}`;
  const earlier = (winners.get(key) ?? []).find((w) => w.spec !== undefined && methodsOverlap(w.spec, spec));
  if (earlier !== undefined) {
    return {
      status: "False",
      reason: "Conflicted",
      message: `ProxyRoute ${earlier.name} already serves the same match on port ${spec.listenerPort}`,
    };
  }
  winners.set(key, [...(winners.get(key) ?? []), route]);
  return {
    status: "True",
    reason: "Accepted",
    message: `Served by Agent ${ctx.agentName} on port ${spec.listenerPort}`,
  };
}

export interface AcceptedRoute {
  readonly name: string;
  readonly spec: ProxyRouteSpec;
  /** Its backend Service does not exist: rendered as a direct_response 503, without a cluster. */
  readonly missingBackend?: string | undefined;
}

/** The status a route whose backend Service is missing answers with. */
export const MISSING_BACKEND_STATUS = 503;

/** 0 for exact paths, 1 for prefixes, 2 for extensions: the order Envoy must try them in. */
function specificityClass(spec: ProxyRouteSpec): number {
  if (spec.match.path !== undefined) return 0;
  if (spec.match.pathPrefix !== undefined) return 1;
  return 2;
}

/** Most specific first: exact paths, then longer prefixes before shorter ones, then extensions. */
export function compareSpecificity(a: AcceptedRoute, b: AcceptedRoute): number {
  const ca = specificityClass(a.spec);
  const cb = specificityClass(b.spec);
  if (ca !== cb) return ca - cb;
  const la = (a.spec.match.path ?? a.spec.match.pathPrefix ?? "").length;
  const lb = (b.spec.match.path ?? b.spec.match.pathPrefix ?? "").length;
  if (la !== lb) return lb - la;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function routeClusterName(routeName: string): string {
  return `route-${routeName}`;
}

export function routeListenerName(port: number): string {
  return `http-${port}`;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function routeMatch(spec: ProxyRouteSpec, method: string | undefined): RouteMatchInput {
  const m = spec.match;
  const match: RouteMatchInput = {};
  if (m.path !== undefined) match.path = m.path;
  else if (m.pathPrefix !== undefined) match.prefix = m.pathPrefix;
  else {
    const alternatives = [...(m.extensions ?? [])].sort().map(escapeRegex).join("|");
    match.safe_regex = { regex: `.*\\.(${alternatives})` };
  }
  if (method !== undefined) match.headers = [{ name: ":method", string_match: { exact: method } }];
  return match;
}

/** `head` and `tail` joined by exactly one slash: `/api` + `/x` and `/api/` + `x` both give `/api/x`. */
function joinPath(head: string, tail: string): string {
  return `${head.replace(/\/+$/, "")}/${tail.replace(/^\/+/, "")}`;
}

/**
 * pathTrim then pathPrepend, as the legacy plug-in did: `/weblogic/console` with pathTrim
 * `/weblogic` becomes `/console`, never `//console`. Envoy's prefix_rewrite replaces the matched
 * prefix verbatim, which is exact only when the prefix ends in `/`; other prefixes use a
 * regex_rewrite that also swallows the slash after the prefix.
 */
function rewrite(spec: ProxyRouteSpec): Pick<RouteActionInput, "prefix_rewrite" | "regex_rewrite"> {
  const trim = spec.rewrite?.pathTrim ?? "";
  const prepend = spec.rewrite?.pathPrepend ?? "";
  if (trim === "" && prepend === "") return {};
  const { path, pathPrefix } = spec.match;
  if (path !== undefined) {
    const rest = path.slice(trim.length);
    const joined = rest === "" ? prepend.replace(/\/+$/, "") : joinPath(prepend, rest);
    return { prefix_rewrite: joined === "" ? "/" : joined };
  }
  if (pathPrefix === undefined) {
    // Extension routes have no matched prefix to replace (pathTrim is rejected for them by the API).
    return { regex_rewrite: { pattern: { regex: "^(.*)$" }, substitution: `${prepend}\\1` } };
  }
  const base = joinPath(prepend, pathPrefix.slice(trim.length));
  if (pathPrefix.endsWith("/")) return { prefix_rewrite: base };
  const head = base.endsWith("/") ? base : `${base}/`;
  return {
    regex_rewrite: { pattern: { regex: `^${escapeRegex(pathPrefix)}/?(.*)$` }, substitution: `${head}\\1` },
  };
}

interface MethodGroup {
  /** One exact `:method` to match, or undefined for every method not matched before. */
  readonly method: string | undefined;
  /** The method may be repeated safely: retry on any reset, not only before the request was sent. */
  readonly idempotent: boolean;
}

/**
 * The Envoy routes one ProxyRoute needs so that retries stay safe: each non-idempotent method gets
 * its own route retrying only resets before the request was sent; idempotent methods share a route
 * that retries any reset. Listed methods are matched one by one.
 */
export function methodGroups(spec: ProxyRouteSpec): MethodGroup[] {
  const safeOnReset = spec.retries.onReset === "idempotentOnly";
  const isIdempotent = (m: string): boolean => safeOnReset && IDEMPOTENT_METHODS.includes(m);
  if (spec.methods !== undefined) {
    return [...spec.methods].map((m) => ({ method: m, idempotent: isIdempotent(m) }));
  }
  if (!safeOnReset) return [{ method: undefined, idempotent: false }];
  return [
    ...NON_IDEMPOTENT_METHODS.map((m) => ({ method: m, idempotent: false })),
    { method: undefined, idempotent: true },
  ];
}

function retryPolicy(spec: ProxyRouteSpec, idempotent: boolean): RetryPolicyInput | undefined {
  if (spec.retries.attempts === 0) return undefined;
  const interval = envoyDuration(spec.timeouts.retryInterval);
  return {
    retry_on: idempotent ? "connect-failure,reset" : "connect-failure,reset-before-request",
    num_retries: spec.retries.attempts,
    retry_back_off: { base_interval: interval, max_interval: interval },
  };
}

/**
 * A route whose backend Service is missing: the same match (and method filter), answered by the
 * sidecar with 503 and a body naming the route and the Service.
 */
function missingBackendRoutes(route: AcceptedRoute, service: string): EnvoyRouteInput[] {
  const methods = route.spec.methods === undefined ? [undefined] : [...route.spec.methods];
  return methods.map((method) => ({
    name: `${route.name}/${method ?? "any"}`,
    match: routeMatch(route.spec, method),
    direct_response: {
      status: MISSING_BACKEND_STATUS,
      body: { inline_string: `ProxyRoute ${route.name}: backend Service ${service} does not exist\n` },
    },
  }));
}

export function renderEnvoyRoutes(route: AcceptedRoute): EnvoyRouteInput[] {
  const { spec } = route;
  if (route.missingBackend !== undefined) return missingBackendRoutes(route, route.missingBackend);
  return methodGroups(spec).map((group) => {
    const action: RouteActionInput = {
      cluster: routeClusterName(route.name),
      timeout: envoyDuration(spec.timeouts.request),
      ...rewrite(spec),
    };
    if (spec.sessionAffinity !== undefined) {
      action.hash_policy = [{ cookie: { name: spec.sessionAffinity.cookieName } }];
    }
    const retries = retryPolicy(spec, group.idempotent);
    if (retries !== undefined) action.retry_policy = retries;
    return {
      name: `${route.name}/${group.method ?? (group.idempotent ? "idempotent" : "any")}`,
      match: routeMatch(spec, group.method),
      route: action,
    };
  });
}

function backendServers(spec: ProxyRouteSpec, namespace: string, clusterDomain: string): UpstreamServer[] {
  const ref = spec.backend.serviceRef;
  if (ref !== undefined) {
    return [{ host: serviceHost(ref.name, namespace, clusterDomain), port: ref.port, priority: 0 }];
  }
  return (spec.backend.servers ?? []).map((s) => ({
    host: s.host,
    port: requiredPort(s.port, s.host),
    priority: s.priority,
  }));
}

export function renderRouteCluster(
  route: AcceptedRoute,
  namespace: string,
  clusterDomain: string,
): ClusterInput {
  const { spec } = route;
  const name = routeClusterName(route.name);
  const servers = backendServers(spec, namespace, clusterDomain);
  const cluster: ClusterInput = {
    name,
    type: discoveryType(servers),
    connect_timeout: envoyDuration(spec.timeouts.connect),
    lb_policy: spec.sessionAffinity !== undefined ? "RING_HASH" : "ROUND_ROBIN",
    load_assignment: loadAssignment(name, servers),
    health_checks: [healthCheck(ROUTE_HEALTH_CHECK)],
    outlier_detection: outlierDetection(),
    // A retry budget instead of Envoy's 3 concurrent retries, so a burst during failover is not cut.
    circuit_breakers: {
      thresholds: [{ retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: 64 } }],
    },
    typed_extension_protocol_options: httpProtocolOptions(
      spec.keepAlive.idleTimeout,
      spec.keepAlive.enabled ? 0 : 1,
    ),
  };
  if (spec.tls.enabled) {
    const ca = spec.tls.caSecretRef;
    cluster.transport_socket = tlsTransportSocket({
      serverName: spec.tls.serverName,
      verifyName: spec.tls.insecureSkipVerify ? undefined : spec.tls.serverName,
      caFile: ca === undefined ? undefined : secretFile(ca.name, ca.key),
    });
  }
  return cluster;
}

/** Secrets the routes' TLS settings need in the sidecar (a route without a backend has no cluster). */
export function routeSecrets(routes: readonly AcceptedRoute[]): string[] {
  return routes.flatMap((r) =>
    r.missingBackend === undefined && r.spec.tls.enabled && r.spec.tls.caSecretRef !== undefined
      ? [r.spec.tls.caSecretRef.name]
      : [],
  );
}

/**
 * One HTTP listener per listenerPort, routes most specific first, and one cluster per route whose
 * backend exists.
 */
export function renderRoutes(
  routes: readonly AcceptedRoute[],
  namespace: string,
  clusterDomain: string,
): { listeners: ListenerInput[]; clusters: ClusterInput[] } {
  const byPort = new Map<number, AcceptedRoute[]>();
  for (const r of routes) byPort.set(r.spec.listenerPort, [...(byPort.get(r.spec.listenerPort) ?? []), r]);
  const listeners = [...byPort.keys()]
    .sort((a, b) => a - b)
    .map((port): ListenerInput => {
      const name = routeListenerName(port);
      const ordered = [...(byPort.get(port) ?? [])].sort(compareSpecificity);
      return {
        name,
        address: socketAddress("0.0.0.0", port),
        filter_chains: [
          {
            filters: [
              {
                name: "envoy.filters.network.http_connection_manager",
                typed_config: {
                  "@type": HCM_TYPE,
                  stat_prefix: `http_${port}`,
                  codec_type: "AUTO",
                  route_config: {
                    name,
                    virtual_hosts: [{ name, domains: ["*"], routes: ordered.flatMap(renderEnvoyRoutes) }],
                  },
                  http_filters: [routerFilter()],
                },
              },
            ],
          },
        ],
      };
    });
  const clusters = routes
    .filter((r) => r.missingBackend === undefined)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((r) => renderRouteCluster(r, namespace, clusterDomain));
  return { listeners, clusters };
}
