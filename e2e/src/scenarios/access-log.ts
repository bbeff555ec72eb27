/**
 * The sidecar's own view of a scenario: its JSON access-log lines (one per request, with Envoy's
 * `%START_TIME%` and `%DURATION%`) summarized over the scenario's window. Beside the client's
 * end-to-end latency this tells a tail the sidecar added from one the rest of the path (the client
 * pod, the agent, the node's scheduler) added.
 */
import { formatMs, percentile } from "../demo/summary.ts";

export interface SidecarTimes {
  /** Access-log lines inside the window. */
  readonly requests: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Upstream host and response flags of the slowest request ("" when none). */
  readonly slowestUpstream: string;
}

interface AccessLine {
  readonly start_time?: unknown;
  readonly duration?: unknown;
  readonly upstream_host?: unknown;
  readonly response_flags?: unknown;
}

/**
 * Summarizes the access-log lines (any other log line is skipped) whose start time falls in
 * [from, to]. Durations are whole milliseconds, as Envoy's `%DURATION%`.
 */
export function sidecarTimes(log: string, window: { readonly from: Date; readonly to: Date }): SidecarTimes {
  const inWindow: { ms: number; upstream: string }[] = [];
  for (const line of log.split("\n")) {
    if (!line.startsWith("{")) continue;
    let entry: AccessLine;
    try {
      entry = JSON.parse(line) as AccessLine;
    } catch {
      continue;
    }
    if (typeof entry.start_time !== "string") continue;
    const ms = Number(entry.duration);
    const at = Date.parse(entry.start_time);
    if (!Number.isFinite(ms) || Number.isNaN(at)) continue;
    if (at < window.from.getTime() || at > window.to.getTime()) continue;
    const flags = typeof entry.response_flags === "string" ? entry.response_flags : "-";
    const upstream = typeof entry.upstream_host === "string" ? entry.upstream_host : "-";
    inWindow.push({ ms, upstream: flags === "-" ? upstream : `${upstream} ${flags}` });
  }
  const sorted = Float64Array.from(inWindow.map((e) => e.ms)).sort();
  const slowest = inWindow.reduce<{ ms: number; upstream: string } | undefined>(
    (worst, e) => (worst === undefined || e.ms > worst.ms ? e : worst),
    undefined,
  );
  return {
    requests: inWindow.length,
    p99Ms: percentile(sorted, 0.99),
    maxMs: slowest?.ms ?? 0,
    slowestUpstream: slowest?.upstream ?? "",
  };
}

/** "sidecar p99 3.00 ms, max 12.00 ms (10.244.0.7:8080) of 400 logged" for a scenario's note. */
export function describeSidecarTimes(t: SidecarTimes): string {
  if (t.requests === 0) return "sidecar: no access-log lines in the window";
  return `sidecar p99 ${formatMs(t.p99Ms)}, max ${formatMs(t.maxMs)} (${t.slowestUpstream}) of ${t.requests} logged`;
}
