// Turns measurements into the Markdown tables printed by `npm run bench` (and copied into
// bench/RESULTS.md).
import type { LoadSummary } from "./loadgen.ts";
import type { ScenarioResult } from "./scenarios.ts";
import type { WrkResult } from "./wrk.ts";

export interface RoundMeasurement {
  readonly target: string;
  readonly round: number;
  readonly saturation: WrkResult;
  readonly saturationCpu: number;
  readonly saturationRssMb: number;
  readonly fixedRate: LoadSummary;
  readonly fixedRateCpu: number;
}

export interface MemoryMeasurement {
  readonly target: string;
  readonly idleCpu: number;
  readonly idleRssMb: number;
  readonly loadRssMb: number;
  readonly peakRssMb: number;
  readonly settledRssMb: number;
}

export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length / 2;
  return sorted.length % 2 === 1
    ? (sorted[Math.floor(mid)] ?? 0)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function ms(value: number | null): string {
  if (value === null || Number.isNaN(value)) return "—";
  if (value < 1) return `${(value * 1000).toFixed(0)} µs`;
  if (value < 100) return `${value.toFixed(2)} ms`;
  return `${value.toFixed(0)} ms`;
}

function mb(value: number): string {
  return Number.isNaN(value) ? "—" : `${value.toFixed(1)} MB`;
}

function signedMs(value: number): string {
  if (Number.isNaN(value)) return "—";
  return (value >= 0 ? "+" : "−") + ms(Math.abs(value));
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${headers.join(" | ")} |`,
    `|${headers.map(() => "---").join("|")}|`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}

function byTarget(rounds: readonly RoundMeasurement[]): Map<string, RoundMeasurement[]> {
  const map = new Map<string, RoundMeasurement[]>();
  for (const round of rounds) map.set(round.target, [...(map.get(round.target) ?? []), round]);
  return map;
}

export function saturationTable(rounds: readonly RoundMeasurement[]): string {
  const groups = byTarget(rounds);
  const rps = (target: string): number =>
    median((groups.get(target) ?? []).map((r) => r.saturation.requestsPerSecond));
  const direct = rps("direct");
  const haproxy = rps("haproxy");
  const rows = [...groups].map(([target, list]) => {
    const value = rps(target);
    return [
      target,
      list.map((r) => r.saturation.requestsPerSecond.toFixed(0)).join(" / "),
      value.toFixed(0),
      Number.isNaN(direct) ? "—" : `${((value / direct) * 100).toFixed(0)} %`,
      Number.isNaN(haproxy) ? "—" : `${((value / haproxy) * 100).toFixed(0)} %`,
      `${ms(median(list.map((r) => r.saturation.p50Ms)))} / ${ms(median(list.map((r) => r.saturation.p99Ms)))}`,
      target === "direct" ? "—" : median(list.map((r) => r.saturationCpu)).toFixed(2),
      target === "direct"
        ? "—"
        : (median(list.map((r) => r.saturation.requestsPerSecond / r.saturationCpu)) / 1000).toFixed(1) + "k",
      String(list.reduce((sum, r) => sum + r.saturation.errors, 0)),
    ];
  });
  return table(
    [
      "target",
      "req/s per round",
      "req/s median",
      "vs direct",
      "vs HAProxy",
      "wrk p50 / p99",
      "proxy CPU (cores)",
      "req per proxy CPU-second",
      "errors",
    ],
    rows,
  );
}

export function fixedRateTable(rounds: readonly RoundMeasurement[], rate: number): string {
  const groups = byTarget(rounds);
  const med = (target: string, pick: (s: LoadSummary) => number): number =>
    median((groups.get(target) ?? []).map((r) => pick(r.fixedRate)));
  const rows = [...groups].map(([target, list]) => [
    target,
    ms(med(target, (s) => s.p50Ms)),
    ms(med(target, (s) => s.p99Ms)),
    ms(Math.max(...list.map((r) => r.fixedRate.maxMs))),
    target === "direct"
      ? "—"
      : `${signedMs(med(target, (s) => s.p50Ms) - med("direct", (s) => s.p50Ms))} / ${signedMs(
          med(target, (s) => s.p99Ms) - med("direct", (s) => s.p99Ms),
        )}`,
    `${ms(med(target, (s) => s.serviceP50Ms))} / ${ms(med(target, (s) => s.serviceP99Ms))}`,
    ms(med(target, (s) => s.sendLagP99Ms)),
    target === "direct" ? "—" : median(list.map((r) => r.fixedRateCpu)).toFixed(3),
    String(list.reduce((sum, r) => sum + r.fixedRate.failures, 0)),
  ]);
  return table(
    [
      "target",
      `p50 @${rate}/s`,
      "p99",
      "max",
      "added p50 / p99 vs direct",
      "service p50 / p99",
      "generator send lag p99",
      "proxy CPU (cores)",
      "failures",
    ],
    rows,
  );
}

export function memoryTable(memory: readonly MemoryMeasurement[]): string {
  return table(
    [
      "proxy",
      "idle CPU (cores)",
      "idle RSS",
      "RSS under load (max sampled)",
      "peak RSS (VmHWM)",
      "RSS 3 s after load",
    ],
    memory.map((m) => [
      m.target,
      m.idleCpu.toFixed(3),
      mb(m.idleRssMb),
      mb(m.loadRssMb),
      mb(m.peakRssMb),
      mb(m.settledRssMb),
    ]),
  );
}

export function scenarioTable(results: readonly ScenarioResult[]): string {
  return table(
    [
      "scenario",
      "proxy",
      "rate",
      "requests",
      "outage (kill → listening)",
      "failures",
      "p99",
      "longest request",
      "longest − outage",
      "first served after listening",
    ],
    results.map((r) => [
      r.scenario,
      r.proxy,
      `${r.rate}/s`,
      String(r.requests),
      ms(r.outageMs),
      String(r.failures),
      ms(r.p99Ms),
      ms(r.longestMs),
      signedMs(r.longestMs - r.outageMs),
      ms(r.firstServedAfterMs),
    ]),
  );
}

export function scenarioErrors(results: readonly ScenarioResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const entries = Object.entries(r.errors);
    if (entries.length === 0) continue;
    lines.push(
      `- ${r.proxy}, ${r.scenario}: ${entries.map(([error, count]) => `${count} × ${error}`).join(", ")}`,
    );
  }
  return lines.join("\n");
}
