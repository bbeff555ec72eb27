/**
 * Traffic from the client pod while a scenario disturbs the servers: the demo image's load command
 * runs in the pod for as long as `during` takes plus `settleMs` of observation afterwards, then
 * reports requests, failures, latency percentiles and the time to recover (see ../demo/load.ts for
 * the definitions). For the agent, every request makes it ask its tether-sidecar for a decision, so
 * a failure anywhere on the path (agent → sidecar → policy server) shows up as a non-200 answer.
 */
import { formatMs } from "../demo/summary.ts";
import type { LoadSummary } from "../demo/load.ts";
import type { ClientPod, LoadSpec } from "./client.ts";

export type { LoadSummary } from "../demo/load.ts";

/**
 * Runs the load in `client` against `spec.target` while `during` runs, plus `settleMs` afterwards
 * (default 3 s: the measured window after the disturbance, in which traffic must be back to normal).
 */
export async function underLoad(
  client: ClientPod,
  spec: LoadSpec,
  during: () => Promise<void>,
  options: { settleMs?: number } = {},
): Promise<LoadSummary> {
  const load = await client.startLoad(spec);
  try {
    await during();
    await new Promise<void>((resolve) => {
      setTimeout(resolve, options.settleMs ?? 3_000);
    });
  } catch (error) {
    await load.abort();
    throw error;
  }
  return load.stop();
}

/** A short description of a run's failures for an assertion message. */
export function describeFailures(summary: LoadSummary): string {
  const samples = summary.failureSamples.map((f) => `${f.atMs.toFixed(0)} ms: ${f.status} ${f.error}`.trim());
  const errors = summary.errors.map((e) => `${e.count} × ${e.error}`);
  return `${summary.failures} of ${summary.requests} requests failed; first: ${samples.join("; ")}; by error: ${errors.join("; ")}`;
}

/** "slowest 98.00 ms (sent 80.00 ms late by the client) from ps-a" for a scenario's note; "" when none. */
export function describeSlowest(summary: LoadSummary): string {
  const worst = summary.slowest?.[0];
  if (worst === undefined) return "";
  return `slowest ${formatMs(worst.latencyMs)} (sent ${formatMs(worst.lateMs)} late by the client) from ${worst.server ?? "?"}`;
}
