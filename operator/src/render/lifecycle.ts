/**
 * The pod's life around the sidecar: native sidecar (an init container with restartPolicy Always,
 * started and ready before the agent's containers, stopped after them), the drain flags, and the
 * termination grace period they fit in.
 */
import { FILE_ACCESS_LOG_TYPE, STDOUT_ACCESS_LOG_TYPE } from "@tether/envoy";
import { DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS } from "../api/index.ts";
import type { JsonObject } from "./pod.ts";

export interface SidecarDrainSpec {
  readonly drainTime: string;
  readonly strategy: "gradual" | "immediate";
}

/** The pod's grace period: the resource's field, else the user's template's, else Kubernetes' 30 s. */
export function terminationGracePeriod(fromSpec: number | undefined, fromTemplate: unknown): number {
  if (fromSpec !== undefined) return fromSpec;
  if (typeof fromTemplate === "number" && Number.isInteger(fromTemplate) && fromTemplate >= 0)
    return fromTemplate;
  return DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS;
}

function seconds(text: string): number {
  // The API validated it (`duration()`); ms → s, at most millisecond precision.
  const m = /^([0-9.]+)(ms|s|m|h)$/.exec(text);
  if (m === null) return 0;
  const n = Number(m[1]);
  const scale = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as "ms" | "s" | "m" | "h"];
  return Math.round(n * scale * 1000) / 1000;
}

/**
 * The sidecar's shutdown flags: listeners accept for drainTime, in-flight work has until the end of
 * the grace period (never shorter than the drain time, which the sidecar refuses).
 */
export function sidecarDrainArgs(drain: SidecarDrainSpec, graceSeconds: number): string[] {
  const drainS = seconds(drain.drainTime);
  return [
    "--drain-time-s",
    String(drainS),
    "--drain-strategy",
    drain.strategy,
    "--parent-shutdown-time-s",
    String(Math.max(graceSeconds, drainS)),
  ];
}

/**
 * The sidecar as a native sidecar container (Kubernetes ≥ 1.29 beta, GA 1.33): the kubelet starts it
 * first and starts the next container only once its startupProbe (/ready) passes, and stops it
 * after the agent's containers have exited.
 */
export function nativeSidecar(container: JsonObject): JsonObject {
  return { ...container, restartPolicy: "Always" };
}

export interface AccessLogSpec {
  readonly enabled: boolean;
  readonly format: "json" | "text";
  readonly path: string;
}

/** The JSON access-log line: Envoy's operators for the fields an operator of the pod looks for first. */
export const ACCESS_LOG_JSON_FORMAT: Readonly<Record<string, string>> = {
  start_time: "%START_TIME%",
  method: "%REQ(:METHOD)%",
  path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
  protocol: "%PROTOCOL%",
  response_code: "%RESPONSE_CODE%",
  response_flags: "%RESPONSE_FLAGS%",
  bytes_received: "%BYTES_RECEIVED%",
  bytes_sent: "%BYTES_SENT%",
  duration: "%DURATION%",
  upstream_host: "%UPSTREAM_HOST%",
  upstream_cluster: "%UPSTREAM_CLUSTER%",
  connection_id: "%CONNECTION_ID%",
  downstream_remote_address: "%DOWNSTREAM_REMOTE_ADDRESS%",
};

/** The access_log list for an HCM or tcp_proxy: stdout or a file, JSON or Envoy's default text line. */
export function accessLogEntries(spec: AccessLogSpec): JsonObject[] {
  if (!spec.enabled) return [];
  const logFormat =
    spec.format === "json" ? { log_format: { json_format: { ...ACCESS_LOG_JSON_FORMAT } } } : {};
  if (spec.path === "/dev/stdout") {
    return [
      {
        name: "envoy.access_loggers.stdout",
        typed_config: { "@type": STDOUT_ACCESS_LOG_TYPE, ...logFormat },
      },
    ];
  }
  return [
    {
      name: "envoy.access_loggers.file",
      typed_config: { "@type": FILE_ACCESS_LOG_TYPE, path: spec.path, ...logFormat },
    },
  ];
}

/**
 * Adds the access log to the terminal filter (HCM or tcp_proxy) of every listener but `skip` (the
 * public admin listener: kubelet probes and scrapes would drown the traffic). Returns the bootstrap.
 */
export function withAccessLog<B extends JsonObject>(bootstrap: B, spec: AccessLogSpec, skip: string): B {
  const entries = accessLogEntries(spec);
  if (entries.length === 0) return bootstrap;
  const resources = bootstrap["static_resources"] as { listeners?: JsonObject[] } | undefined;
  for (const listener of resources?.listeners ?? []) {
    if (listener["name"] === skip) continue;
    const chains = (listener["filter_chains"] ?? []) as { filters?: { typed_config?: JsonObject }[] }[];
    for (const chain of chains) {
      const filters = chain.filters ?? [];
      const terminal = filters[filters.length - 1]?.typed_config;
      if (terminal !== undefined) terminal["access_log"] = structuredClone(entries);
    }
  }
  return bootstrap;
}

/**
 * The sidecar's root filesystem is read-only: an access log written to a file gets an emptyDir at
 * the file's directory (none for /dev/stdout).
 */
export function accessLogVolume(spec: AccessLogSpec): { volume: JsonObject; mount: JsonObject } | undefined {
  if (!spec.enabled || spec.path === "/dev/stdout") return undefined;
  const dir = spec.path.slice(0, spec.path.lastIndexOf("/")) || "/";
  return {
    volume: { name: "tether-access-log", emptyDir: {} },
    mount: { name: "tether-access-log", mountPath: dir },
  };
}
