// The Envoy v3 bootstrap subset Tether implements, as zod schemas. Every object is strict: a field
// outside the subset is an error naming its path, never silently ignored. Defaults are Envoy's.
// Durations are protobuf-JSON strings ("1.5s") in the file and milliseconds after parsing.
import { isIP } from "node:net";
import * as z from "zod";
import { accessLogListSchema } from "./access-log.ts";
import { formatDuration, MAX_PROTOBUF_DURATION_MS, MAX_TIMER_MS, parseDuration } from "./duration.ts";
import { Re2Regex, regexProblem, rewriteProblem } from "./regex.ts";

// Named schema types: the schemas nested deepest (matchers, route actions, listeners, clusters) get an
// interface (`interface ClusterSchema extends typeof clusterBase`). Declaration emit prints a named
// type by reference, so the bootstrap's .d.ts stays exact; inlined, it passes the emitter's depth limit
// and the deepest fields become `any`, which the operator and sidecar would then see as unrelated types.

export const HCM_TYPE =
  "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
export const TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
export const ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
export const HTTP_PROTOCOL_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
export const HTTP_PROTOCOL_OPTIONS_TYPE = `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS_KEY}`;

/** A protobuf-JSON duration ("0.25s") of at most `maxMs`, parsed to milliseconds. */
function boundedDuration(
  maxMs: number,
  limit: string,
): z.ZodPipe<z.ZodString, z.ZodTransform<number, string>> {
  return z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `expected a duration like "1.5s", got "${text}"` });
      return z.NEVER;
    }
    if (ms > maxMs) {
      ctx.addIssue({
        code: "custom",
        message: `${text} is too long: at most ${formatDuration(maxMs)} (${limit})`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

/**
 * A protobuf-JSON duration ("0.25s"), parsed to milliseconds, that arms a timer. Envoy sets no upper
 * bound on these fields, but Node's timers do: a longer delay would fire after 1 ms.
 */
export const duration = boundedDuration(MAX_TIMER_MS, "about 24.8 days, the longest timer Node can arm");

/** A duration that is only compared with a clock or sent to a client, never armed: protobuf's own range. */
export const longDuration = boundedDuration(
  MAX_PROTOBUF_DURATION_MS,
  "the range of google.protobuf.Duration",
);

const uint32 = z
  .number()
  .int()
  .min(0)
  .max(2 ** 32 - 1);
const positiveUint32 = uint32.min(1);
const percent = z.strictObject({ value: z.number().min(0).max(100) });

/**
 * A protobuf Struct as written in YAML (string keys, any JSON values). Metadata label matches compare
 * values by kind and value, as Envoy does: `true` and `"true"` differ.
 */
export const structSchema = z.record(z.string(), z.json());

/** The endpoint metadata namespace that transport_socket_matches read (Envoy's well-known name). */
export const TRANSPORT_SOCKET_MATCH_KEY = "envoy.transport_socket_match";

export const socketAddressSchema = z.strictObject({
  address: z.string().min(1),
  port_value: z.number().int().min(0).max(65535),
  protocol: z.literal("TCP").optional(),
});

export const addressSchema = z.strictObject({ socket_address: socketAddressSchema });

// ---------------------------------------------------------------------------------------------
// HTTP routing

/** Envoy's RegexMatcher: RE2 syntax, compiled by RE2 (re2js); what RE2 refuses is refused here. */
const regexMatcherBase = z
  .strictObject({
    google_re2: z.strictObject({}).optional(),
    regex: z.string().min(1),
  })
  .superRefine((m, ctx) => {
    const problem = regexProblem(m.regex);
    if (problem !== undefined) {
      ctx.addIssue({ code: "custom", path: ["regex"], message: `invalid regex (RE2): ${problem}` });
    }
  });
type RegexMatcherSchemaType = typeof regexMatcherBase;
/** regexMatcherSchema's type, named (see "Named schema types" above). */
export interface RegexMatcherSchema extends RegexMatcherSchemaType {}
export const regexMatcherSchema: RegexMatcherSchema = regexMatcherBase;

/** Envoy's RegexMatchAndSubstitute: the substitution's \N must name a group of the pattern. */
export const regexRewriteSchema = z
  .strictObject({ pattern: regexMatcherSchema, substitution: z.string() })
  .superRefine((r, ctx) => {
    let groups: number;
    try {
      groups = new Re2Regex(r.pattern.regex).groupCount;
    } catch {
      return; // reported on pattern.regex
    }
    const problem = rewriteProblem(r.substitution, groups);
    if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["substitution"], message: problem });
  });

const stringMatcherBase = z
  .strictObject({
    exact: z.string().optional(),
    prefix: z.string().min(1).optional(),
    suffix: z.string().min(1).optional(),
    contains: z.string().min(1).optional(),
    safe_regex: regexMatcherSchema.optional(),
    ignore_case: z.boolean().default(false),
  })
  .superRefine((m, ctx) => {
    const set = [m.exact, m.prefix, m.suffix, m.contains, m.safe_regex].filter((v) => v !== undefined).length;
    if (set !== 1) {
      ctx.addIssue({
        code: "custom",
        message: "exactly one of exact, prefix, suffix, contains, safe_regex is required",
      });
    }
  });
type StringMatcherSchemaType = typeof stringMatcherBase;
/** stringMatcherSchema's type, named (see "Named schema types" above). */
export interface StringMatcherSchema extends StringMatcherSchemaType {}
export const stringMatcherSchema: StringMatcherSchema = stringMatcherBase;

const headerMatcherBase = z
  .strictObject({
    name: z.string().min(1),
    string_match: stringMatcherSchema.optional(),
    present_match: z.boolean().optional(),
    invert_match: z.boolean().default(false),
  })
  .superRefine((h, ctx) => {
    if (h.string_match !== undefined && h.present_match !== undefined) {
      ctx.addIssue({ code: "custom", message: "at most one of string_match, present_match may be set" });
    }
  });
type HeaderMatcherSchemaType = typeof headerMatcherBase;
/** headerMatcherSchema's type, named (see "Named schema types" above). */
export interface HeaderMatcherSchema extends HeaderMatcherSchemaType {}
export const headerMatcherSchema: HeaderMatcherSchema = headerMatcherBase;

export const routeMatchSchema = z
  .strictObject({
    prefix: z.string().optional(),
    path: z.string().optional(),
    safe_regex: regexMatcherSchema.optional(),
    case_sensitive: z.boolean().default(true),
    headers: z.array(headerMatcherSchema).default([]),
  })
  .superRefine((m, ctx) => {
    const set = [m.prefix, m.path, m.safe_regex].filter((v) => v !== undefined).length;
    if (set !== 1)
      ctx.addIssue({ code: "custom", message: "exactly one of prefix, path, safe_regex is required" });
  });

export const RETRY_ON_VALUES = [
  "5xx",
  "gateway-error",
  "reset",
  "reset-before-request",
  "connect-failure",
  "retriable-status-codes",
] as const;
export type RetryOn = (typeof RETRY_ON_VALUES)[number];

const retryOnList = z.string().transform((text, ctx) => {
  const out: RetryOn[] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    if (!(RETRY_ON_VALUES as readonly string[]).includes(item)) {
      ctx.addIssue({
        code: "custom",
        message: `unsupported retry_on value "${item}" (supported: ${RETRY_ON_VALUES.join(", ")})`,
      });
      return z.NEVER;
    }
    out.push(item as RetryOn);
  }
  return out;
});

export const backoffSchema = z
  .strictObject({ base_interval: duration, max_interval: duration.optional() })
  .superRefine((b, ctx) => {
    if (b.base_interval <= 0) {
      ctx.addIssue({ code: "custom", path: ["base_interval"], message: "must be greater than zero" });
    }
    if (b.max_interval !== undefined && b.max_interval < b.base_interval) {
      ctx.addIssue({ code: "custom", path: ["max_interval"], message: "must be >= base_interval" });
    }
  })
  // Envoy: max_interval defaults to ten times base_interval.
  .transform((b) => ({
    base_interval: b.base_interval,
    max_interval: b.max_interval ?? b.base_interval * 10,
  }));

export const PREVIOUS_HOSTS_TYPE =
  "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";

const retryPolicyBase = z.strictObject({
  retry_on: retryOnList.default([]),
  num_retries: uint32.default(1),
  per_try_timeout: duration.default(0),
  retry_back_off: backoffSchema.optional(),
  retriable_status_codes: z.array(z.number().int().min(100).max(599)).default([]),
  retry_host_predicate: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        typed_config: z.strictObject({ "@type": z.literal(PREVIOUS_HOSTS_TYPE) }),
      }),
    )
    .default([]),
  host_selection_retry_max_attempts: z.number().int().min(0).default(1),
});
type RetryPolicySchemaType = typeof retryPolicyBase;
/** retryPolicySchema's type, named (see "Named schema types" above). */
export interface RetryPolicySchema extends RetryPolicySchemaType {}
export const retryPolicySchema: RetryPolicySchema = retryPolicyBase;

const hashPolicyBase = z
  .strictObject({
    header: z.strictObject({ header_name: z.string().min(1) }).optional(),
    cookie: z
      .strictObject({ name: z.string().min(1), ttl: longDuration.optional(), path: z.string().optional() })
      .optional(),
    connection_properties: z.strictObject({ source_ip: z.boolean() }).optional(),
    terminal: z.boolean().default(false),
  })
  .superRefine((h, ctx) => {
    const set = [h.header, h.cookie, h.connection_properties].filter((v) => v !== undefined).length;
    if (set !== 1) {
      ctx.addIssue({
        code: "custom",
        message: "exactly one of header, cookie, connection_properties is required",
      });
    }
  });
type HashPolicySchemaType = typeof hashPolicyBase;
/** hashPolicySchema's type, named (see "Named schema types" above). */
export interface HashPolicySchema extends HashPolicySchemaType {}
export const hashPolicySchema: HashPolicySchema = hashPolicyBase;

const routeActionBase = z
  .strictObject({
    cluster: z.string().min(1),
    hash_policy: z.array(hashPolicySchema).default([]),
    timeout: duration.default(15_000),
    retry_policy: retryPolicySchema.optional(),
    prefix_rewrite: z.string().optional(),
    regex_rewrite: regexRewriteSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.prefix_rewrite !== undefined && r.regex_rewrite !== undefined) {
      ctx.addIssue({ code: "custom", message: "at most one of prefix_rewrite, regex_rewrite may be set" });
    }
  });
type RouteActionSchemaType = typeof routeActionBase;
/** routeActionSchema's type, named (see "Named schema types" above). */
export interface RouteActionSchema extends RouteActionSchemaType {}
export const routeActionSchema: RouteActionSchema = routeActionBase;

/** Envoy's default RouteConfiguration.max_direct_response_body_size_bytes. */
export const MAX_DIRECT_RESPONSE_BODY_BYTES = 4096;

/** Envoy's DirectResponseAction: the sidecar answers itself; `body` inline only. */
export const directResponseSchema = z.strictObject({
  status: z.number().int().min(100).max(599),
  body: z
    .strictObject({
      inline_string: z
        .string()
        .refine(
          (s) => Buffer.byteLength(s) <= MAX_DIRECT_RESPONSE_BODY_BYTES,
          `at most ${MAX_DIRECT_RESPONSE_BODY_BYTES} bytes (Envoy's max_direct_response_body_size_bytes)`,
        ),
    })
    .optional(),
});

const routeBase = z
  .strictObject({
    name: z.string().optional(),
    match: routeMatchSchema,
    route: routeActionSchema.optional(),
    direct_response: directResponseSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if ((r.route === undefined) === (r.direct_response === undefined)) {
      ctx.addIssue({ code: "custom", message: "exactly one of route, direct_response is required" });
    }
  });
type RouteSchemaType = typeof routeBase;
/** routeSchema's type, named (see "Named schema types" above). */
export interface RouteSchema extends RouteSchemaType {}
export const routeSchema: RouteSchema = routeBase;

const virtualHostBase = z.strictObject({
  name: z.string().min(1),
  domains: z.array(z.string().min(1)).min(1),
  routes: z.array(routeSchema).default([]),
  retry_policy: retryPolicySchema.optional(),
});
type VirtualHostSchemaType = typeof virtualHostBase;
/** virtualHostSchema's type, named (see "Named schema types" above). */
export interface VirtualHostSchema extends VirtualHostSchemaType {}
export const virtualHostSchema: VirtualHostSchema = virtualHostBase;

export const routeConfigurationSchema = z.strictObject({
  name: z.string().optional(),
  virtual_hosts: z.array(virtualHostSchema).default([]),
});

export const DECISION_CACHE_TYPE = "type.googleapis.com/tether.v1alpha1.DecisionCache";

/**
 * The policy server's notification stream a DecisionCache subscribes to: a long-lived GET on `path`
 * to a host of `cluster` (through its transport socket, so TLS and PROXY settings apply), answered
 * with newline-delimited JSON notifications; reopened after `retry_back_off` when it ends or fails.
 */
export const notificationStreamSchema = z.strictObject({
  cluster: z.string().min(1),
  path: z.string().startsWith("/", "must start with /").default("/notifications/stream"),
  /** How long an attempt waits for the response head (a hung server must not hold it); 0s: no limit. */
  timeout: duration.default(5000),
  /** Reconnect back-off (jittered exponential, as a route's retry_back_off). Default 0.5 s, max 5 s. */
  retry_back_off: backoffSchema.default({ base_interval: 500, max_interval: 5000 }),
});

/** A request header name the decision cache keys on: an HTTP token (RFC 9110 §5.1). */
const cacheHeaderName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be an HTTP header name (a token, e.g. x-session-id)");

/** Tether-only HTTP filter: caches successful decisions; leave it out for plain Envoy. */
export const decisionCacheSchema = z.strictObject({
  "@type": z.literal(DECISION_CACHE_TYPE),
  /** Entries expire this long after they were stored (the agent cache's polling period). */
  ttl: longDuration.default(180_000),
  /** Hybrid mode: POST /notifications on the admin listener invalidates entries at once. */
  notifications: z.boolean().default(true),
  /** Hybrid mode by subscription: the policy server pushes invalidations on a stream. Default none. */
  notification_stream: notificationStreamSchema.optional(),
  /**
   * Request headers that are part of the key besides method, path, Host, the session header and
   * Authorization (always keyed), each with all of its values.
   */
  key_headers: z.array(cacheHeaderName).default(["authorization", "cookie"]),
  /** The request header naming the session, for session notifications; always part of the key. */
  session_header: cacheHeaderName.default("x-session-id"),
  methods: z
    .array(z.enum(["GET", "HEAD"]))
    .min(1)
    .default(["GET", "HEAD"]),
  max_entries: z.number().int().min(1).default(10_000),
  /** Larger responses are passed through, not stored. */
  max_body_bytes: z.number().int().min(0).default(65_536),
});

export const httpFilterSchema = z.strictObject({
  name: z.string().min(1),
  /** Envoy: a filter it does not know may be skipped; Tether knows every filter it accepts. */
  is_optional: z.boolean().default(false),
  typed_config: z.discriminatedUnion("@type", [
    z.strictObject({ "@type": z.literal(ROUTER_TYPE) }),
    decisionCacheSchema,
  ]),
});

/** Kept for readers of the earlier API: the router filter entry. */
export const routerFilterSchema = z.strictObject({
  name: z.string().min(1),
  typed_config: z.strictObject({ "@type": z.literal(ROUTER_TYPE) }),
});

const httpConnectionManagerBase = z.strictObject({
  "@type": z.literal(HCM_TYPE),
  stat_prefix: z.string().min(1),
  codec_type: z.enum(["AUTO", "HTTP1"]).default("AUTO"),
  route_config: routeConfigurationSchema,
  http_filters: z
    .array(httpFilterSchema)
    .min(1, "the router filter is required")
    .superRefine((filters, ctx) => {
      filters.forEach((f, i) => {
        const isRouter = f.typed_config["@type"] === ROUTER_TYPE;
        if (isRouter !== (i === filters.length - 1)) {
          ctx.addIssue({
            code: "custom",
            path: [i],
            message: "the router filter must be the last filter, exactly once",
          });
        }
      });
      if (filters.filter((f) => f.typed_config["@type"] === DECISION_CACHE_TYPE).length > 1) {
        ctx.addIssue({ code: "custom", message: "at most one DecisionCache filter" });
      }
    }),
  common_http_protocol_options: z
    .strictObject({
      idle_timeout: duration.default(3_600_000),
      /** Envoy's default; more request headers are answered 431. */
      max_headers_count: positiveUint32.default(100),
    })
    .default({ idle_timeout: 3_600_000, max_headers_count: 100 }),
  stream_idle_timeout: duration.default(300_000),
  request_timeout: duration.default(0),
  /** Tether's default is 60 s, not Envoy's "disabled": one slow client must not hold a connection forever. */
  request_headers_timeout: duration.default(60_000),
  /** Envoy's default and maximum; larger request headers are answered 431. */
  max_request_headers_kb: z.number().int().min(1).max(8192).default(60),
  access_log: accessLogListSchema,
});
type HttpConnectionManagerSchemaType = typeof httpConnectionManagerBase;
/** httpConnectionManagerSchema's type, named (see "Named schema types" above). */
export interface HttpConnectionManagerSchema extends HttpConnectionManagerSchemaType {}
export const httpConnectionManagerSchema: HttpConnectionManagerSchema = httpConnectionManagerBase;

// ---------------------------------------------------------------------------------------------
// TCP proxy

export const tcpProxySchema = z.strictObject({
  "@type": z.literal(TCP_PROXY_TYPE),
  stat_prefix: z.string().min(1),
  cluster: z.string().min(1),
  idle_timeout: duration.default(3_600_000),
  max_connect_attempts: positiveUint32.default(1),
  backoff_options: backoffSchema.optional(),
  access_log: accessLogListSchema,
});

// ---------------------------------------------------------------------------------------------
// Listeners

export const CONNECTION_LIMIT_TYPE =
  "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";

/** envoy.filters.network.connection_limit: at most max_connections open on the listener. */
export const connectionLimitSchema = z.strictObject({
  "@type": z.literal(CONNECTION_LIMIT_TYPE),
  stat_prefix: z.string().min(1),
  max_connections: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** How long a connection over the limit is held (not read) before it is closed; absent: at once. */
  delay: duration.default(0),
});

export const networkFilterSchema = z.strictObject({
  name: z.string().min(1),
  typed_config: z.discriminatedUnion("@type", [
    httpConnectionManagerSchema,
    tcpProxySchema,
    connectionLimitSchema,
  ]),
});

export const filterChainSchema = z.strictObject({
  name: z.string().optional(),
  filters: z
    .array(networkFilterSchema)
    .min(1, "a terminal network filter (tcp_proxy or http_connection_manager) is required")
    .superRefine((filters, ctx) => {
      filters.forEach((f, i) => {
        const terminal = f.typed_config["@type"] !== CONNECTION_LIMIT_TYPE;
        if (terminal === (i === filters.length - 1)) return;
        ctx.addIssue({
          code: "custom",
          path: [i],
          message: terminal
            ? "tcp_proxy / http_connection_manager must be the last filter, exactly once"
            : "the last filter must be tcp_proxy or http_connection_manager",
        });
      });
      if (filters.filter((f) => f.typed_config["@type"] === CONNECTION_LIMIT_TYPE).length > 1) {
        ctx.addIssue({ code: "custom", message: "at most one connection_limit filter" });
      }
    }),
});

const listenerBase = z.strictObject({
  name: z.string().min(1),
  address: addressSchema,
  filter_chains: z.array(filterChainSchema).length(1, "exactly one filter chain is supported"),
  per_connection_buffer_limit_bytes: uint32.default(1024 * 1024),
  /** MODIFY_ONLY: left out of the shutdown drain sequence (keeps accepting) and closed last (see drain.ts). */
  drain_type: z.enum(["DEFAULT", "MODIFY_ONLY"]).default("DEFAULT"),
});
type ListenerSchemaType = typeof listenerBase;
/** listenerSchema's type, named (see "Named schema types" above). */
export interface ListenerSchema extends ListenerSchemaType {}
export const listenerSchema: ListenerSchema = listenerBase;

// ---------------------------------------------------------------------------------------------
// Clusters

export const healthCheckSchema = z
  .strictObject({
    timeout: duration,
    interval: duration,
    unhealthy_threshold: positiveUint32,
    healthy_threshold: positiveUint32,
    no_traffic_interval: duration.default(60_000),
    unhealthy_interval: duration.optional(),
    /** Keep an HTTP check's connection for the next check (Envoy's default); tcp checks never do. */
    reuse_connection: z.boolean().default(true),
    // Envoy's defaults: unhealthy_edge_interval = unhealthy_interval, healthy_edge_interval = interval.
    unhealthy_edge_interval: duration.optional(),
    healthy_edge_interval: duration.optional(),
    /**
     * Picks the checks' transport socket from the cluster's transport_socket_matches (the first
     * whose `match` these pairs satisfy; none → the cluster's transport_socket), in place of the
     * endpoint's metadata: a check can do a TLS handshake while traffic stays raw TCP.
     */
    transport_socket_match_criteria: structSchema.optional(),
    tcp_health_check: z.strictObject({}).optional(),
    http_health_check: z
      .strictObject({
        path: z.string().min(1),
        host: z.string().optional(),
        expected_statuses: z
          .array(
            z
              .strictObject({ start: z.number().int().min(100), end: z.number().int().max(600) })
              // Envoy refuses an empty range (start inclusive, end exclusive): it would fail every host.
              .refine((r) => r.start < r.end, { message: "start must be below end (end is exclusive)" }),
          )
          .optional(),
      })
      .optional(),
  })
  .superRefine((h, ctx) => {
    const set = [h.tcp_health_check, h.http_health_check].filter((v) => v !== undefined).length;
    if (set !== 1) {
      ctx.addIssue({
        code: "custom",
        message: "exactly one of tcp_health_check, http_health_check is required",
      });
    }
    if (h.interval <= 0)
      ctx.addIssue({ code: "custom", path: ["interval"], message: "must be greater than zero" });
    if (h.timeout <= 0)
      ctx.addIssue({ code: "custom", path: ["timeout"], message: "must be greater than zero" });
    // As in Envoy's proto: set intervals must be positive (a zero interval would check in a loop).
    for (const field of ["unhealthy_interval", "unhealthy_edge_interval", "healthy_edge_interval"] as const) {
      const v = h[field];
      if (v !== undefined && v <= 0)
        ctx.addIssue({ code: "custom", path: [field], message: "must be greater than zero" });
    }
  });

export const outlierDetectionSchema = z.strictObject({
  consecutive_5xx: uint32.default(5),
  consecutive_gateway_failure: uint32.default(5),
  consecutive_local_origin_failure: uint32.default(5),
  enforcing_consecutive_5xx: z.number().int().min(0).max(100).default(100),
  enforcing_consecutive_gateway_failure: z.number().int().min(0).max(100).default(0),
  enforcing_consecutive_local_origin_failure: z.number().int().min(0).max(100).default(100),
  split_external_local_origin_errors: z.boolean().default(false),
  interval: duration.default(10_000),
  base_ejection_time: duration.default(30_000),
  max_ejection_time: duration.default(300_000),
  max_ejection_percent: z.number().int().min(0).max(100).default(10),
  always_eject_one_host: z.boolean().default(false),
  successful_active_health_check_uneject_host: z.boolean().default(true),
});

export const thresholdsSchema = z.strictObject({
  priority: z.enum(["DEFAULT", "HIGH"]).default("DEFAULT"),
  max_connections: uint32.default(1024),
  max_pending_requests: uint32.default(1024),
  max_requests: uint32.default(1024),
  max_retries: uint32.default(3),
  retry_budget: z
    .strictObject({
      budget_percent: percent.default({ value: 20 }),
      min_retry_concurrency: uint32.default(3),
    })
    .optional(),
  track_remaining: z.boolean().default(false),
});

/** Envoy's core.v3.HealthStatus of an endpoint, as the control plane reports it (EDS). */
export const HEALTH_STATUSES = [
  "UNKNOWN",
  "HEALTHY",
  "UNHEALTHY",
  "DRAINING",
  "TIMEOUT",
  "DEGRADED",
] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export const lbEndpointSchema = z.strictObject({
  endpoint: z.strictObject({
    address: addressSchema,
    hostname: z.string().optional(),
  }),
  health_status: z.enum(HEALTH_STATUSES).default("UNKNOWN"),
  /** Only the envoy.transport_socket_match namespace: it picks the endpoint's transport socket. */
  metadata: z
    .strictObject({
      filter_metadata: z.strictObject({ [TRANSPORT_SOCKET_MATCH_KEY]: structSchema.optional() }),
    })
    .optional(),
});

export const localityLbEndpointsSchema = z.strictObject({
  priority: z.number().int().min(0).max(127).default(0),
  lb_endpoints: z.array(lbEndpointSchema).default([]),
});

export const clusterLoadAssignmentSchema = z.strictObject({
  cluster_name: z.string().min(1),
  endpoints: z.array(localityLbEndpointsSchema).default([]),
  policy: z
    .strictObject({ overprovisioning_factor: positiveUint32.default(140) })
    .default({ overprovisioning_factor: 140 }),
});

export const httpProtocolOptionsSchema = z.strictObject({
  "@type": z.literal(HTTP_PROTOCOL_OPTIONS_TYPE),
  common_http_protocol_options: z
    .strictObject({
      idle_timeout: duration.default(3_600_000),
      max_requests_per_connection: uint32.optional(),
    })
    .default({ idle_timeout: 3_600_000 }),
  // Envoy requires one upstream protocol choice; Tether proxies HTTP/1.1 upstream only, and speaks
  // HTTP/2 (gRPC) only to the ADS cluster (checked in the bootstrap's cross-checks).
  explicit_http_config: z
    .strictObject({
      http_protocol_options: z.strictObject({}).optional(),
      http2_protocol_options: z
        .strictObject({
          // Envoy's KeepaliveSettings: a PING every `interval` (none when absent); no answer within
          // `timeout` closes the connection. Only the ADS cluster speaks HTTP/2, so this is how a
          // sidecar notices a control-plane replica that vanished without closing its connection.
          connection_keepalive: z
            .strictObject({
              interval: duration.refine((ms) => ms >= 1, { message: "must be at least 1ms" }).optional(),
              timeout: duration.refine((ms) => ms >= 1, { message: "must be at least 1ms" }),
            })
            .optional(),
        })
        .optional(),
    })
    .superRefine((e, ctx) => {
      if ((e.http_protocol_options === undefined) === (e.http2_protocol_options === undefined)) {
        ctx.addIssue({
          code: "custom",
          message: "exactly one of http_protocol_options, http2_protocol_options is required",
        });
      }
    }),
});

// ---------------------------------------------------------------------------------------------
// TLS to upstreams

/** Envoy's DataSource: a file (read when the cluster is built) or inline text. */
export const dataSourceSchema = z
  .strictObject({
    filename: z.string().min(1).optional(),
    inline_string: z.string().min(1).optional(),
  })
  .superRefine((d, ctx) => {
    if ((d.filename === undefined) === (d.inline_string === undefined)) {
      ctx.addIssue({ code: "custom", message: "exactly one of filename, inline_string is required" });
    }
  });

export const UPSTREAM_TLS_TYPE =
  "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

const tlsVersion = z.enum(["TLS_AUTO", "TLSv1_2", "TLSv1_3"]);

const upstreamTlsContextBase = z.strictObject({
  "@type": z.literal(UPSTREAM_TLS_TYPE),
  sni: z.string().min(1).optional(),
  common_tls_context: z
    .strictObject({
      tls_certificates: z
        .array(z.strictObject({ certificate_chain: dataSourceSchema, private_key: dataSourceSchema }))
        .max(1, "at most one client certificate is supported")
        .default([]),
      validation_context: z
        .strictObject({
          trusted_ca: dataSourceSchema.optional(),
          match_typed_subject_alt_names: z
            .array(
              z.strictObject({
                san_type: z.enum(["DNS", "URI", "IP_ADDRESS", "EMAIL"]),
                matcher: stringMatcherSchema,
              }),
            )
            .default([]),
        })
        .optional(),
      alpn_protocols: z.array(z.string().min(1)).default([]),
      tls_params: z
        .strictObject({
          tls_minimum_protocol_version: tlsVersion.default("TLS_AUTO"),
          tls_maximum_protocol_version: tlsVersion.default("TLS_AUTO"),
        })
        .optional(),
    })
    .default({ tls_certificates: [], alpn_protocols: [] }),
});
type UpstreamTlsContextSchemaType = typeof upstreamTlsContextBase;
/** upstreamTlsContextSchema's type, named (see "Named schema types" above). */
export interface UpstreamTlsContextSchema extends UpstreamTlsContextSchemaType {}
export const upstreamTlsContextSchema: UpstreamTlsContextSchema = upstreamTlsContextBase;

export const RAW_BUFFER_TYPE =
  "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
export const PROXY_PROTOCOL_UPSTREAM_TYPE =
  "type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport";

const rawBufferSchema = z.strictObject({ "@type": z.literal(RAW_BUFFER_TYPE) });

/** The socket a PROXY-protocol transport wraps: plain TCP (raw_buffer) or TLS. */
export const innerTransportSocketSchema = z.strictObject({
  name: z.string().min(1),
  typed_config: z.discriminatedUnion("@type", [upstreamTlsContextSchema, rawBufferSchema]),
});

export const proxyProtocolUpstreamSchema = z.strictObject({
  "@type": z.literal(PROXY_PROTOCOL_UPSTREAM_TYPE),
  config: z.strictObject({ version: z.enum(["V1", "V2"]).default("V1") }).default({ version: "V1" }),
  transport_socket: innerTransportSocketSchema,
});

const transportSocketBase = z.strictObject({
  name: z.string().min(1),
  typed_config: z.discriminatedUnion("@type", [
    upstreamTlsContextSchema,
    rawBufferSchema,
    proxyProtocolUpstreamSchema,
  ]),
});
type TransportSocketSchemaType = typeof transportSocketBase;
/** transportSocketSchema's type, named (see "Named schema types" above). */
export interface TransportSocketSchema extends TransportSocketSchemaType {}
export const transportSocketSchema: TransportSocketSchema = transportSocketBase;

/**
 * One entry of a cluster's transport_socket_matches: an endpoint (or a health check, through its
 * transport_socket_match_criteria) whose envoy.transport_socket_match metadata holds every pair of
 * `match` uses this transport socket. An empty `match` matches every endpoint.
 */
export const transportSocketMatchSchema = z.strictObject({
  name: z.string().min(1),
  match: structSchema.default({}),
  transport_socket: transportSocketSchema,
});

export const CARES_DNS_RESOLVER_TYPE =
  "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";

/** The DNS servers a STRICT_DNS cluster asks (Envoy's c-ares resolver); default: the system's. */
export const dnsResolverConfigSchema = z.strictObject({
  name: z.string().min(1),
  typed_config: z.strictObject({
    "@type": z.literal(CARES_DNS_RESOLVER_TYPE),
    resolvers: z
      .array(
        addressSchema.superRefine((a, ctx) => {
          if (isIP(a.socket_address.address) === 0) {
            ctx.addIssue({
              code: "custom",
              path: ["socket_address", "address"],
              message: `a DNS resolver must be an IP address, got "${a.socket_address.address}"`,
            });
          }
        }),
      )
      .min(1),
  }),
});

/** Envoy's ConfigSource, in the one form Tether supports: over the bootstrap's ADS stream. */
export const adsConfigSourceSchema = z.strictObject({
  ads: z.strictObject({}),
  resource_api_version: z.literal("V3"),
});

/** Where an EDS cluster's endpoints come from: the ClusterLoadAssignment named service_name. */
export const edsClusterConfigSchema = z.strictObject({
  eds_config: adsConfigSourceSchema,
  service_name: z.string().min(1).optional(),
});

/** Stands in for load_assignment on an EDS cluster, whose endpoints arrive over EDS. */
const NO_LOAD_ASSIGNMENT = { cluster_name: "", endpoints: [], policy: { overprovisioning_factor: 140 } };

const clusterBase = z.strictObject({
  transport_socket: transportSocketSchema.optional(),
  transport_socket_matches: z.array(transportSocketMatchSchema).default([]),
  name: z.string().min(1),
  type: z.enum(["STATIC", "STRICT_DNS", "EDS"]).default("STATIC"),
  eds_cluster_config: edsClusterConfigSchema.optional(),
  // Envoy's rule: connect_timeout > 0s (a zero timeout would fail every connect at once).
  connect_timeout: duration.refine((ms) => ms > 0, { message: "must be greater than 0s" }).default(5_000),
  lb_policy: z.enum(["ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH"]).default("ROUND_ROBIN"),
  least_request_lb_config: z.strictObject({ choice_count: z.number().int().min(2).default(2) }).optional(),
  ring_hash_lb_config: z
    .strictObject({
      minimum_ring_size: z.number().int().min(1).max(8_388_608).default(1024),
      maximum_ring_size: z.number().int().min(1).max(8_388_608).default(8_388_608),
      hash_function: z.enum(["XX_HASH", "MURMUR_HASH_2"]).default("XX_HASH"),
    })
    .optional(),
  // Required except on EDS clusters (checked in the bootstrap's cross-checks); cluster_name "" marks it absent.
  load_assignment: clusterLoadAssignmentSchema.default(NO_LOAD_ASSIGNMENT),
  dns_refresh_rate: duration.default(5_000),
  /** Envoy's RefreshRate: re-resolve after a failed resolution with this back-off (default dns_refresh_rate). */
  dns_failure_refresh_rate: backoffSchema.optional(),
  /** Re-resolve when the answer's TTL runs out instead of every dns_refresh_rate. */
  respect_dns_ttl: z.boolean().default(false),
  dns_lookup_family: z.enum(["AUTO", "V4_ONLY", "V6_ONLY", "V4_PREFERRED", "ALL"]).default("AUTO"),
  typed_dns_resolver_config: dnsResolverConfigSchema.optional(),
  health_checks: z.array(healthCheckSchema).max(1, "at most one health check is supported").default([]),
  outlier_detection: outlierDetectionSchema.optional(),
  circuit_breakers: z.strictObject({ thresholds: z.array(thresholdsSchema).default([]) }).optional(),
  common_lb_config: z
    .strictObject({ healthy_panic_threshold: percent.default({ value: 50 }) })
    .default({ healthy_panic_threshold: { value: 50 } }),
  close_connections_on_host_health_failure: z.boolean().default(false),
  upstream_connection_options: z
    .strictObject({
      tcp_keepalive: z
        .strictObject({
          keepalive_probes: uint32.optional(),
          keepalive_time: uint32.optional(),
          keepalive_interval: uint32.optional(),
        })
        .optional(),
    })
    .optional(),
  typed_extension_protocol_options: z
    .strictObject({ [HTTP_PROTOCOL_OPTIONS_KEY]: httpProtocolOptionsSchema.optional() })
    .optional(),
});
type ClusterSchemaType = typeof clusterBase;
/** clusterSchema's type, named (see "Named schema types" above). */
export interface ClusterSchema extends ClusterSchemaType {}
export const clusterSchema: ClusterSchema = clusterBase;

// ---------------------------------------------------------------------------------------------
// Bootstrap

/**
 * Envoy's dynamic_resources in the one form Tether supports: CDS and LDS over one ADS stream (gRPC,
 * state of the world) to the control plane behind a static cluster.
 */
export const dynamicResourcesSchema = z.strictObject({
  ads_config: z.strictObject({
    api_type: z.literal("GRPC"),
    transport_api_version: z.literal("V3"),
    grpc_services: z
      .array(
        z.strictObject({
          envoy_grpc: z.strictObject({
            cluster_name: z.string().min(1),
            // Envoy's GrpcService.EnvoyGrpc.retry_policy: for an xDS stream only its back-off is
            // used, the reconnect wait (full jitter up to min(max, base × 2^attempt)). Without it,
            // Envoy's default: 500 ms base, 30 s max.
            retry_policy: z.strictObject({ retry_back_off: backoffSchema.optional() }).optional(),
          }),
        }),
      )
      .length(1, "exactly one grpc_service is supported"),
  }),
  cds_config: adsConfigSourceSchema,
  lds_config: adsConfigSourceSchema,
});

export const bootstrapSchema = z
  .strictObject({
    node: z.strictObject({ id: z.string().optional(), cluster: z.string().optional() }).optional(),
    admin: z.strictObject({ address: addressSchema }).optional(),
    dynamic_resources: dynamicResourcesSchema.optional(),
    static_resources: z
      .strictObject({
        listeners: z.array(listenerSchema).default([]),
        clusters: z.array(clusterSchema).default([]),
      })
      .default({ listeners: [], clusters: [] }),
  })
  .superRefine(crossCheck);

type BootstrapShape = {
  dynamic_resources?: z.output<typeof dynamicResourcesSchema>;
  static_resources: {
    listeners: z.output<typeof listenerSchema>[];
    clusters: z.output<typeof clusterSchema>[];
  };
};

/** Checks that span objects: unique names, references to clusters, STATIC addresses, filter order. */
function crossCheck(cfg: BootstrapShape, ctx: z.RefinementCtx): void {
  const clusters = new Map<string, number>();
  cfg.static_resources.clusters.forEach((c, i) => {
    const path = ["static_resources", "clusters", i];
    if (clusters.has(c.name)) {
      ctx.addIssue({
        code: "custom",
        path: [...path, "name"],
        message: `duplicate cluster name "${c.name}"`,
      });
    }
    clusters.set(c.name, i);
    for (const issue of clusterProblems(c, adsClusterOf(cfg))) {
      ctx.addIssue({ code: "custom", path: [...path, ...issue.path], message: issue.message });
    }
  });
  const ads = adsClusterOf(cfg);
  if (ads !== undefined && !clusters.has(ads)) {
    ctx.addIssue({
      code: "custom",
      path: ["dynamic_resources", "ads_config", "grpc_services", 0, "envoy_grpc", "cluster_name"],
      message: `unknown cluster "${ads}" (the ADS cluster must be a static cluster)`,
    });
  }
  const listenerNames = new Set<string>();
  cfg.static_resources.listeners.forEach((l, i) => {
    const path = ["static_resources", "listeners", i];
    if (listenerNames.has(l.name)) {
      ctx.addIssue({
        code: "custom",
        path: [...path, "name"],
        message: `duplicate listener name "${l.name}"`,
      });
    }
    listenerNames.add(l.name);
    for (const issue of listenerProblems(l, clusters)) {
      ctx.addIssue({ code: "custom", path: [...path, ...issue.path], message: issue.message });
    }
  });
}

/** A listener's references to clusters that `clusters` does not name. Shared by the file and LDS. */
export function listenerProblems(
  l: z.output<typeof listenerSchema>,
  clusters: ReadonlyMap<string, unknown> | ReadonlySet<string>,
): ClusterProblem[] {
  const out: ClusterProblem[] = [];
  l.filter_chains.forEach((fc, j) => {
    fc.filters.forEach((f, k) => {
      const fpath = ["filter_chains", j, "filters", k, "typed_config"];
      const tc = f.typed_config;
      if (tc["@type"] === CONNECTION_LIMIT_TYPE) return;
      if (tc["@type"] === TCP_PROXY_TYPE) {
        if (!clusters.has(tc.cluster)) {
          out.push({ path: [...fpath, "cluster"], message: `unknown cluster "${tc.cluster}"` });
        }
        return;
      }
      tc.http_filters.forEach((hf, h) => {
        const cache = hf.typed_config;
        if (cache["@type"] !== DECISION_CACHE_TYPE || cache.notification_stream === undefined) return;
        if (!clusters.has(cache.notification_stream.cluster)) {
          out.push({
            path: [...fpath, "http_filters", h, "typed_config", "notification_stream", "cluster"],
            message: `unknown cluster "${cache.notification_stream.cluster}"`,
          });
        }
      });
      tc.route_config.virtual_hosts.forEach((vh, v) => {
        vh.routes.forEach((r, n) => {
          if (r.route !== undefined && !clusters.has(r.route.cluster)) {
            out.push({
              path: [...fpath, "route_config", "virtual_hosts", v, "routes", n, "route", "cluster"],
              message: `unknown cluster "${r.route.cluster}"`,
            });
          }
        });
      });
    });
  });
  return out;
}

/** The ADS stream's gRPC service (its cluster and retry policy), when the config has dynamic_resources. */
export function adsGrpcService(cfg: {
  dynamic_resources?: z.output<typeof dynamicResourcesSchema>;
}): z.output<typeof dynamicResourcesSchema>["ads_config"]["grpc_services"][number]["envoy_grpc"] | undefined {
  return cfg.dynamic_resources?.ads_config.grpc_services[0]?.envoy_grpc;
}

function adsClusterOf(cfg: BootstrapShape): string | undefined {
  return adsGrpcService(cfg)?.cluster_name;
}

export interface ClusterProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/**
 * What a single cluster's schema cannot say: load_assignment by type, STATIC addresses, HTTP/2 only
 * to the ADS cluster. Shared by the file's cross-checks and CDS validation.
 */
export function clusterProblems(
  c: z.output<typeof clusterSchema>,
  adsCluster: string | undefined,
): ClusterProblem[] {
  const out: ClusterProblem[] = [];
  const absent = c.load_assignment.cluster_name === "";
  if (c.type === "EDS" && !absent) {
    out.push({
      path: ["load_assignment"],
      message: "EDS clusters take their endpoints from EDS; remove load_assignment",
    });
  }
  if (c.type !== "EDS" && absent) out.push({ path: ["load_assignment"], message: "required field missing" });
  if (c.type !== "EDS" && c.eds_cluster_config !== undefined) {
    out.push({ path: ["eds_cluster_config"], message: "only allowed with type: EDS" });
  }
  if (c.type === "STATIC") out.push(...staticAddressProblems(c));
  const explicit = c.typed_extension_protocol_options?.[HTTP_PROTOCOL_OPTIONS_KEY]?.explicit_http_config;
  if (explicit?.http2_protocol_options !== undefined && c.name !== adsCluster) {
    out.push({
      path: [
        "typed_extension_protocol_options",
        HTTP_PROTOCOL_OPTIONS_KEY,
        "explicit_http_config",
        "http2_protocol_options",
      ],
      message: "HTTP/2 upstreams are supported only for the ADS cluster (dynamic_resources.ads_config)",
    });
  }
  return out;
}

function staticAddressProblems(c: z.output<typeof clusterSchema>): ClusterProblem[] {
  const out: ClusterProblem[] = [];
  c.load_assignment.endpoints.forEach((loc, i) => {
    loc.lb_endpoints.forEach((ep, j) => {
      const addr = ep.endpoint.address.socket_address.address;
      if (!isIp(addr)) {
        out.push({
          path: [
            "load_assignment",
            "endpoints",
            i,
            "lb_endpoints",
            j,
            "endpoint",
            "address",
            "socket_address",
            "address",
          ],
          message: `STATIC clusters need an IP address, got "${addr}" (use type: STRICT_DNS for host names)`,
        });
      }
    });
  });
  return out;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
function isIp(text: string): boolean {
  const m = IPV4.exec(text);
  if (m !== null) return m.slice(1).every((p) => Number(p) <= 255);
  return text.includes(":") && /^[0-9a-fA-F:.]+$/.test(text);
}

export type BootstrapInput = z.input<typeof bootstrapSchema>;
export type Bootstrap = z.output<typeof bootstrapSchema>;
export type ListenerConfig = z.output<typeof listenerSchema>;
export type ClusterConfig = z.output<typeof clusterSchema>;
export type ClusterLoadAssignmentConfig = z.output<typeof clusterLoadAssignmentSchema>;
export type DynamicResourcesConfig = z.output<typeof dynamicResourcesSchema>;
export type HealthCheckConfig = z.output<typeof healthCheckSchema>;
export type OutlierDetectionConfig = z.output<typeof outlierDetectionSchema>;
export type ThresholdsConfig = z.output<typeof thresholdsSchema>;
export type HttpConnectionManagerConfig = z.output<typeof httpConnectionManagerSchema>;
export type TcpProxyConfig = z.output<typeof tcpProxySchema>;
export type ConnectionLimitConfig = z.output<typeof connectionLimitSchema>;
export type RouteConfig = z.output<typeof routeSchema>;
export type DirectResponseConfig = z.output<typeof directResponseSchema>;
export type RouteMatchConfig = z.output<typeof routeMatchSchema>;
export type HeaderMatcherConfig = z.output<typeof headerMatcherSchema>;
export type StringMatcherConfig = z.output<typeof stringMatcherSchema>;
export type RetryPolicyConfig = z.output<typeof retryPolicySchema>;
export type VirtualHostConfig = z.output<typeof virtualHostSchema>;
export type BackoffConfig = z.output<typeof backoffSchema>;
export type SocketAddress = z.output<typeof socketAddressSchema>;
export type HashPolicyConfig = z.output<typeof hashPolicySchema>;
export type DecisionCacheConfig = z.output<typeof decisionCacheSchema>;
export type NotificationStreamConfig = z.output<typeof notificationStreamSchema>;
export type UpstreamTlsContextConfig = z.output<typeof upstreamTlsContextSchema>;
export type DataSourceConfig = z.output<typeof dataSourceSchema>;
export type TransportSocketConfig = z.output<typeof transportSocketSchema>;
export type TransportSocketMatchConfig = z.output<typeof transportSocketMatchSchema>;
export type StructValue = z.output<typeof structSchema>;
