// The Markdown section of an xds-fanout run, in the shape bench/RESULTS.md keeps.
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";

export interface SizeResult {
  readonly clients: number;
  readonly agents: number;
  readonly changes: number;
  /** Per client and change, ms from the write returning to receipt; sorted. */
  readonly latencies: number[];
  /** Per change, ms until the last client had it; sorted. */
  readonly lastPerChange: number[];
  readonly connectMs: number;
  readonly operatorCpuDuringChanges: number;
  readonly changesWallSeconds: number;
  readonly driverCpuDuringChanges: number;
  readonly rssConnectedMb: number;
  readonly rssMaxMb: number;
  readonly hwmMb: number;
  readonly pushes: number;
}

export interface CrossCheck {
  readonly sidecars: number;
  readonly changes: number;
  /** Sorted ms, as in SizeResult. */
  readonly real: number[];
  readonly light: number[];
  readonly sidecarRssMb: number[];
}

export interface RunInfo {
  readonly command: string;
  readonly loadAtStart: string;
  readonly startedAt: Date;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

const ms = (v: number): string => `${v.toFixed(1)} ms`;
const row = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;

function crossCheckLines(x: CrossCheck): string[] {
  const stats = (v: readonly number[]): string[] => [
    ms(percentile(v, 50)),
    ms(percentile(v, 99)),
    ms(v.at(-1) ?? Number.NaN),
  ];
  return [
    "",
    `Cross-check, ${String(x.sidecars)} Agents with one real sidecar each (own namespace, so a change rebuilds only those Agents), ${String(x.changes)} changes:`,
    "",
    "| observer | samples | p50 | p99 | max |",
    "|---|---|---|---|---|",
    row([
      `real \`tether-sidecar\` processes (new host in admin \`/clusters\`, polled every 10 ms)`,
      String(x.real.length),
      ...stats(x.real),
    ]),
    row([`light ADS clients in the same groups, same changes`, String(x.light.length), ...stats(x.light)]),
    "",
    `Sidecar VmRSS at the end: ${x.sidecarRssMb.map((m) => m.toFixed(0)).join(", ")} MiB.`,
  ];
}

export function fanoutReport(
  results: readonly SizeResult[],
  cross: CrossCheck | undefined,
  run: RunInfo,
): string {
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const changes = results[0]?.changes ?? 0;
  const lines = [
    `### xDS fan-out (${run.startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC)`,
    "",
    `Machine: ${String(cpus().length)} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}; etcd, kube-apiserver, the operator and the driver (every ADS client) on the same machine.`,
    `Command: \`${run.command}\``,
    `/proc/loadavg at start: \`${run.loadAtStart}\`; at end: \`${readFileSync("/proc/loadavg", "utf8").trim()}\`.`,
    "",
    "| sidecars (ADS clients) | Agents (groups) | connect → all have EDS | change → client p50 | p99 | max | change → last client, median | operator CPU per change | pushes per change |",
    "|---|---|---|---|---|---|---|---|---|",
    ...results.map((r) =>
      row([
        String(r.clients),
        String(r.agents),
        `${(r.connectMs / 1000).toFixed(2)} s`,
        ms(percentile(r.latencies, 50)),
        ms(percentile(r.latencies, 99)),
        ms(r.latencies.at(-1) ?? Number.NaN),
        ms(percentile(r.lastPerChange, 50)),
        `${((r.operatorCpuDuringChanges / r.changes) * 1000).toFixed(0)} ms`,
        (r.pushes / r.changes).toFixed(0),
      ]),
    ),
    "",
    row(["operator process (/proc)", ...results.map((r) => `${String(r.clients)} sidecars`)]),
    `|---|${results.map(() => "---|").join("")}`,
    row(["VmRSS, all clients connected, idle", ...results.map((r) => `${r.rssConnectedMb.toFixed(0)} MiB`)]),
    row(["VmRSS, largest after a change", ...results.map((r) => `${r.rssMaxMb.toFixed(0)} MiB`)]),
    row(["VmHWM (peak since start)", ...results.map((r) => `${r.hwmMb.toFixed(0)} MiB`)]),
    row([
      `CPU during the ${String(changes)} changes (utime+stime)`,
      ...results.map(
        (r) => `${r.operatorCpuDuringChanges.toFixed(2)} s over ${r.changesWallSeconds.toFixed(1)} s wall`,
      ),
    ]),
    row([
      "driver CPU (all ADS clients) during the changes",
      ...results.map((r) => `${r.driverCpuDuringChanges.toFixed(2)} s`),
    ]),
    ...(cross === undefined ? [] : crossCheckLines(cross)),
    "",
  ];
  return `${lines.join("\n")}\n`;
}
