/**
 * Traffic through a port-forward to the demo agent while a scenario disturbs the policy servers:
 * every request makes the agent ask its sidecar for a decision, so a failure anywhere on the path
 * (agent → sidecar → policy server) shows up as a non-200 answer.
 */
import { ConstantRateTraffic, type RequestRecord } from "../demo/traffic.ts";

export interface LoadResult {
  readonly requests: number;
  readonly failures: readonly RequestRecord[];
}

/**
 * Runs `ratePerSecond` GETs of `path` against `origin` for as long as `during` takes, plus `settleMs`
 * afterwards; resolves with every failed request.
 */
export async function underLoad(
  origin: string,
  during: () => Promise<void>,
  options: { ratePerSecond?: number; path?: string; settleMs?: number; requestTimeoutMs?: number } = {},
): Promise<LoadResult> {
  const traffic = new ConstantRateTraffic({
    origin,
    path: options.path ?? "/app/orders",
    ratePerSecond: options.ratePerSecond ?? 20,
    requestTimeoutMs: options.requestTimeoutMs ?? 45_000,
  });
  traffic.start();
  try {
    await during();
    await new Promise<void>((resolve) => {
      setTimeout(resolve, options.settleMs ?? 3_000);
    });
  } finally {
    await traffic.stop();
  }
  return { requests: traffic.records.length, failures: traffic.records.filter((r) => !r.ok) };
}

/** A short description of failures for an assertion message. */
export function describeFailures(result: LoadResult): string {
  const sample = result.failures.slice(0, 5).map((r) => `${r.status} ${r.error ?? ""}`.trim());
  return `${result.failures.length} of ${result.requests} requests failed: ${sample.join("; ")}`;
}
