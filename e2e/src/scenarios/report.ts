/**
 * The scenario table: one row per scenario run (requests, failures, latency, time to recover),
 * printed as each scenario finishes and rewritten to a Markdown file after every row, so a run —
 * even one that fails half-way — leaves its numbers behind (.tether/e2e/scenarios.md by default,
 * TETHER_E2E_REPORT to choose another file).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { REPO_ROOT } from "../controlplane/binaries.ts";
import type { LoadSummary } from "../demo/load.ts";
import { formatMs, renderTable } from "../demo/summary.ts";

export interface ScenarioRow {
  readonly scenario: string;
  readonly summary: LoadSummary;
  /** What else the scenario checked, in a few words. */
  readonly note: string;
}

export const TABLE_HEADERS = [
  "scenario",
  "requests",
  "failures",
  "p50",
  "p99",
  "max",
  "slow",
  "time to recover",
  "served by",
  "note",
] as const;

export function rowCells(row: ScenarioRow): string[] {
  const s = row.summary;
  return [
    row.scenario,
    String(s.requests),
    String(s.failures),
    formatMs(s.p50Ms),
    formatMs(s.p99Ms),
    formatMs(s.maxMs),
    `${s.slow} > ${formatMs(s.slowMs)}`,
    s.recoverMs === 0 ? "0 (none bad)" : formatMs(s.recoverMs),
    Object.entries(s.servedBy)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([server, count]) => `${server} ${count}`)
      .join(", "),
    row.note,
  ];
}

/** The default report file: TETHER_E2E_REPORT, else .tether/e2e/scenarios.md in the repository. */
export function reportPath(env: NodeJS.ProcessEnv = process.env): string {
  const chosen = env["TETHER_E2E_REPORT"];
  return chosen === undefined || chosen === "" ? join(REPO_ROOT, ".tether", "e2e", "scenarios.md") : chosen;
}

export class ScenarioReport {
  readonly rows: ScenarioRow[] = [];
  private readonly path: string;
  private readonly title: string;
  private readonly print: (text: string) => void;

  constructor(options: { path?: string; title?: string; print?: (text: string) => void } = {}) {
    this.path = options.path ?? reportPath();
    this.title = options.title ?? "Tether end-to-end scenarios";
    this.print =
      options.print ??
      ((text) => {
        console.log(text);
      });
  }

  /** Adds a row, prints it, and rewrites the report file. */
  add(scenario: string, summary: LoadSummary, note = ""): void {
    const row = { scenario, summary, note };
    this.rows.push(row);
    const cells = rowCells(row);
    this.print(TABLE_HEADERS.map((header, i) => `${header}: ${cells[i] ?? ""}`).join(" | "));
    this.write();
  }

  render(): string {
    return renderTable(TABLE_HEADERS, this.rows.map(rowCells));
  }

  /** Prints the whole table (the suite's last word). */
  printTable(): void {
    if (this.rows.length > 0) this.print(`\n${this.title} (${this.path})\n${this.render()}\n`);
  }

  private write(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const text = [
      `# ${this.title}`,
      "",
      `Written ${new Date().toISOString()}. Traffic from a client pod (the demo image's \`load\` command); ` +
        "latency from each request's scheduled send time; *slow* = answered later than the threshold; " +
        "*time to recover* = from the scheduled send of the first failed or slow request to the completion " +
        "of the last one.",
      "",
      this.render(),
      "",
    ].join("\n");
    writeFileSync(this.path, text);
  }
}
