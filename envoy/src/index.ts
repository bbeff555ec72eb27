// @tether/envoy: the Envoy v3 subset Tether speaks, defined once. The sidecar parses its bootstrap
// with these schemas; the operator renders bootstraps and xDS resources typed by their input types.
export * from "./schema.ts";
export * from "./access-log.ts";
export * from "./access-log-format.ts";
export * from "./response-flags.ts";
export * from "./duration.ts";
export * from "./regex.ts";
export * from "./retry.ts";
export type * from "./input.ts";
