// Per-phase summaries of recorded traffic and the table the demo prints.
import type { RequestRecord } from "./traffic.ts";

export interface PhaseWindow {
  readonly name: string;
  readonly startAt: number;
  readonly endAt: number;
  /** Servers (re)started in this phase, with when each was listening again. */
  readonly restarted: readonly { readonly server: string; readonly listeningAt: number }[];
}

export interface PhaseSummary {
  readonly name: string;
  readonly durationMs: number;
  readonly requests: number;
  readonly failures: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Answers per server. */
  readonly servedBy: Readonly<Record<string, number>>;
  /** Per restarted server: ms from listening again to its first answer (null: none seen). */
  readonly backInRotationMs: Readonly<Record<string, number | null>>;
  /** Distinct failure messages with counts, most frequent first. */
  readonly errors: readonly { readonly error: string; readonly count: number }[];
  /** When the first failed request of the phase was scheduled, ms into the phase (null: none). */
  readonly firstFailureAtMs: number | null;
}

/** Nearest-rank percentile of a sorted array; 0 for an empty one. */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank] ?? 0;
}

/** Attributes each request to the phase in which it was scheduled, and summarizes each phase. */
export function summarizePhases(
  records: readonly RequestRecord[],
  phases: readonly PhaseWindow[],
): PhaseSummary[] {
  return phases.map((phase) => {
    const inPhase = records.filter((r) => r.intendedAt >= phase.startAt && r.intendedAt < phase.endAt);
    const latencies = Float64Array.from(inPhase.map((r) => r.doneAt - r.intendedAt)).sort();
    const servedBy: Record<string, number> = {};
    const errors = new Map<string, number>();
    for (const record of inPhase) {
      if (record.ok) servedBy[record.server ?? "?"] = (servedBy[record.server ?? "?"] ?? 0) + 1;
      else errors.set(record.error ?? "?", (errors.get(record.error ?? "?") ?? 0) + 1);
    }
    const firstFailure = inPhase.find((r) => !r.ok);
    const backInRotationMs: Record<string, number | null> = {};
    for (const { server, listeningAt } of phase.restarted) {
      let first: number | null = null;
      for (const record of records) {
        if (record.ok && record.server === server && record.doneAt >= listeningAt) {
          first = first === null ? record.doneAt : Math.min(first, record.doneAt);
        }
      }
      backInRotationMs[server] = first === null ? null : first - listeningAt;
    }
    return {
      name: phase.name,
      durationMs: phase.endAt - phase.startAt,
      requests: inPhase.length,
      failures: inPhase.filter((r) => !r.ok).length,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      maxMs: latencies.length === 0 ? 0 : (latencies[latencies.length - 1] ?? 0),
      servedBy,
      backInRotationMs,
      errors: [...errors].map(([error, count]) => ({ error, count })).sort((a, b) => b.count - a.count),
      firstFailureAtMs: firstFailure === undefined ? null : firstFailure.intendedAt - phase.startAt,
    };
  });
}

/** Formats milliseconds with a precision that suits their size. */
export function formatMs(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 100) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(0)} ms`;
}

/** Renders rows as an aligned plain-text table (also valid Markdown). */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: readonly string[]): string =>
    "| " + widths.map((width, i) => (cells[i] ?? "").padEnd(width)).join(" | ") + " |";
  return [line(headers), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)].join(
    "\n",
  );
}

export function renderPhaseTable(summaries: readonly PhaseSummary[]): string {
  const headers = [
    "phase",
    "time",
    "requests",
    "failures",
    "p50",
    "p99",
    "max",
    "served by",
    "back in rotation after",
  ];
  const rows = summaries.map((s) => [
    s.name,
    `${(s.durationMs / 1000).toFixed(1)} s`,
    String(s.requests),
    String(s.failures),
    formatMs(s.p50Ms),
    formatMs(s.p99Ms),
    formatMs(s.maxMs),
    Object.entries(s.servedBy)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([server, count]) => `${server} ${count}`)
      .join(", "),
    Object.entries(s.backInRotationMs)
      .map(([server, ms]) => `${server} ${ms === null ? "never" : formatMs(ms)}`)
      .join(", "),
  ]);
  return renderTable(headers, rows);
}
