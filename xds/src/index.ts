// @tether/xds: Envoy's xDS protocol for Tether (ADS, state of the world).
export * from "./types.ts";
export { XdsJsonError, fromJson, toJson, packResource, unpackResource } from "./json.ts";
