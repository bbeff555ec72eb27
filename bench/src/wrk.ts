// Runs wrk (closed loop: saturation throughput) and parses its report.
import { BenchError, Proc } from "./proc.ts";

export interface WrkResult {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Socket errors plus non-2xx/3xx answers. */
  readonly errors: number;
}

export interface WrkOptions {
  readonly url: string;
  readonly threads: number;
  readonly connections: number;
  readonly durationS: number;
  readonly cpus?: string;
}

/** wrk's latency figures carry units: 34.00us, 1.10ms, 2.00s. */
export function parseWrkDuration(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  const unit = match[2];
  if (unit === "us") return value / 1000;
  if (unit === "ms") return value;
  if (unit === "s") return value * 1000;
  return value * 60_000;
}

export function parseWrkOutput(output: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!rps) throw new BenchError("TETHER_ERR_BENCH_WRK", `could not read wrk's report:\n${output}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  const percentile = (p: string): number => {
    const match = new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(output);
    return match?.[1] === undefined ? Number.NaN : parseWrkDuration(match[1]);
  };
  const socketErrors = socket ? socket.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    requestsPerSecond: Number(rps[1]),
    p50Ms: percentile("50"),
    p99Ms: percentile("99"),
    errors: socketErrors + Number(non2xx?.[1] ?? 0),
  };
}

export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const proc = new Proc({
    name: "wrk",
    command: "wrk",
    args: [
      `-t${options.threads}`,
      `-c${options.connections}`,
      `-d${options.durationS}s`,
      "--latency",
      `--timeout`,
      "5s",
      options.url,
    ],
    ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
  });
  const output = await proc.collectStdout();
  const status = await proc.exited;
  if (status.code !== 0) {
    throw new BenchError(
      "TETHER_ERR_BENCH_WRK",
      `wrk exited with ${status.code ?? status.signal}:\n${proc.output()}`,
    );
  }
  return parseWrkOutput(output);
}
