// The sidecar's configuration surface: the Envoy v3 subset's schema (re-exported from @tether/envoy,
// which the operator renders against), the loader with path-precise errors, and the file watcher.
export * from "@tether/envoy";
export { parseConfigText, loadConfigFile, validateBootstrap, formatPath, type LoadedConfig } from "./load.ts";
export { ConfigWatcher, type WatcherOptions } from "./watcher.ts";
