/**
 * The pod's life around the sidecar: native sidecar (an init container with restartPolicy Always,
 * started and ready before the agent's containers, stopped after them), the drain flags, and the
 * termination grace period they fit in.
 */
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
