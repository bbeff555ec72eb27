// The sidecar's configuration surface: the zod schema of the Envoy v3 subset (the operator renders
// against these types), the loader with path-precise errors, and the file watcher.
export * from "./schema.ts";
export { parseDuration, formatDuration } from "./duration.ts";
export { parseConfigText, loadConfigFile, validateBootstrap, formatPath, type LoadedConfig } from "./load.ts";
export { ConfigWatcher, type WatcherOptions } from "./watcher.ts";
