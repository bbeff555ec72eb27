/** Pure rendering: a resource and what it references → the desired children. No I/O. */
export * from "./agent.ts";
export * from "./agent-bootstrap.ts";
export * from "./broker.ts";
export * from "./configmap.ts";
export * from "./eds.ts";
export * from "./envoy.ts";
export * from "./hash.ts";
export * from "./meta.ts";
export * from "./pod.ts";
export * from "./policy-server-cluster.ts";
export * from "./routes.ts";
export * from "./secrets.ts";
export * from "./xds.ts";
export * from "./xds-ca.ts";
