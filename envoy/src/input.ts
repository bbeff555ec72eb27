// The input side of the schemas: what a bootstrap file or an xDS resource holds before parsing
// (durations as "1.5s" strings, defaults not yet filled in). The operator renders these types, so a
// renamed or misspelt field is a compile error; the sidecar parses them into the output types.
import type { z } from "zod";
import type { accessLogSchema } from "./access-log.ts";
import type {
  addressSchema,
  bootstrapSchema,
  clusterLoadAssignmentSchema,
  clusterSchema,
  decisionCacheSchema,
  dynamicResourcesSchema,
  filterChainSchema,
  healthCheckSchema,
  httpConnectionManagerSchema,
  httpFilterSchema,
  httpProtocolOptionsSchema,
  innerTransportSocketSchema,
  listenerSchema,
  networkFilterSchema,
  outlierDetectionSchema,
  retryPolicySchema,
  routeActionSchema,
  routeMatchSchema,
  routeSchema,
  tcpProxySchema,
  transportSocketSchema,
  upstreamTlsContextSchema,
  virtualHostSchema,
} from "./schema.ts";

export type AdminInput = NonNullable<z.input<typeof bootstrapSchema>["admin"]>;
export type AddressInput = z.input<typeof addressSchema>;
export type ClusterInput = z.input<typeof clusterSchema>;
export type ClusterLoadAssignmentInput = z.input<typeof clusterLoadAssignmentSchema>;
export type HealthCheckInput = z.input<typeof healthCheckSchema>;
export type OutlierDetectionInput = z.input<typeof outlierDetectionSchema>;
export type HttpProtocolOptionsInput = z.input<typeof httpProtocolOptionsSchema>;
export type TransportSocketInput = z.input<typeof transportSocketSchema>;
/** A transport socket that may sit inside the PROXY protocol one (TLS or raw_buffer). */
export type InnerTransportSocketInput = z.input<typeof innerTransportSocketSchema>;
export type UpstreamTlsContextInput = z.input<typeof upstreamTlsContextSchema>;
export type ListenerInput = z.input<typeof listenerSchema>;
export type FilterChainInput = z.input<typeof filterChainSchema>;
export type NetworkFilterInput = z.input<typeof networkFilterSchema>;
export type HttpConnectionManagerInput = z.input<typeof httpConnectionManagerSchema>;
export type TcpProxyInput = z.input<typeof tcpProxySchema>;
export type HttpFilterInput = z.input<typeof httpFilterSchema>;
export type DecisionCacheInput = z.input<typeof decisionCacheSchema>;
export type VirtualHostInput = z.input<typeof virtualHostSchema>;
export type RouteInput = z.input<typeof routeSchema>;
export type RouteMatchInput = z.input<typeof routeMatchSchema>;
export type RouteActionInput = z.input<typeof routeActionSchema>;
export type RetryPolicyInput = z.input<typeof retryPolicySchema>;
export type DynamicResourcesInput = z.input<typeof dynamicResourcesSchema>;
export type AccessLogInput = z.input<typeof accessLogSchema>;
