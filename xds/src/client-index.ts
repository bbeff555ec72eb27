// @tether/xds/client: the ADS client alone (what the sidecar loads). It decodes Envoy's messages
// with the compact table (decode.ts), so neither protobufjs nor the descriptor nor gRPC is loaded.
export * from "./types.ts";
export { AdsClient } from "./client.ts";
export type { AdsClientOptions, AdsClientTls, AdsHandler } from "./client.ts";
export { unpackResource } from "./decode.ts";
