// @tether/xds: Envoy's xDS protocol for Tether (ADS, state of the world): Envoy's JSON form of a
// resource <-> protobuf, an ADS server (the operator) and an ADS client (the sidecar).
export * from "./types.ts";
export { fromJson, toJson, packResource, unpackResource } from "./json.ts";
export { AdsServer } from "./server.ts";
export type { AdsServerOptions, TlsIdentity } from "./server.ts";
export { AdsClient } from "./client.ts";
export type { AdsClientOptions, AdsClientTls, AdsHandler } from "./client.ts";
