/** Runs the constant-rate load generator (loadgen.ts) as a pinned child process and returns its summary. */
import type { LoadSummary } from "./loadgen.ts";
import { BenchError, Proc } from "./proc.ts";
import { REPO_ROOT } from "./targets.ts";

export interface FixedRateOptions {
  readonly rate: number;
  readonly durationMs: number;
  /** CPU list for `taskset`, e.g. "1". */
  readonly cpus: string;
}

export async function fixedRateLoad(url: string, options: FixedRateOptions): Promise<LoadSummary> {
  const proc = new Proc({
    name: "loadgen",
    command: process.execPath,
    args: [
      `${REPO_ROOT}bench/src/loadgen.ts`,
      "--url",
      url,
      "--rate",
      String(options.rate),
      "--duration-ms",
      String(options.durationMs),
    ],
    cpus: options.cpus,
  });
  const output = await proc.collectStdout();
  const status = await proc.exited;
  const last = output.trim().split("\n").pop() ?? "";
  if (status.code !== 0 || !last.startsWith("{")) {
    throw new BenchError(
      "TETHER_ERR_BENCH_LOADGEN",
      `loadgen failed (${status.code ?? status.signal}):\n${proc.output()}`,
    );
  }
  return JSON.parse(last) as LoadSummary;
}
