import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { summarizeLoad } from "../demo/load.ts";
import type { RequestRecord } from "../demo/traffic.ts";
import { ScenarioReport, reportPath, rowCells } from "./report.ts";

const dir = mkdtempSync(join(tmpdir(), "tether-report-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function rec(intendedAt: number, latency: number, ok = true): RequestRecord {
  return {
    intendedAt,
    sentAt: intendedAt,
    doneAt: intendedAt + latency,
    status: ok ? 200 : 503,
    ok,
    server: ok ? "ps-a" : null,
    error: ok ? null : "503",
  };
}

const summary = summarizeLoad(
  [rec(0, 2), rec(50, 1500), rec(100, 3, false), rec(150, 2)],
  { startAt: 0, endAt: 200 },
  { slowMs: 1000, target: "http://web/", ratePerSecond: 20 },
);

describe("scenario report", () => {
  it("renders one row per scenario with the numbers issue 7 asks for", () => {
    expect(rowCells({ scenario: "S3", summary, note: "held" })).toEqual([
      "S3",
      "4",
      "1",
      "2.00 ms",
      "1500 ms",
      "1500 ms",
      "1 > 1000 ms",
      "1500 ms", // from 50 (the slow one scheduled) to 1550 (its answer)
      "ps-a 3",
      "held",
    ]);
  });

  it("prints each row and rewrites the Markdown file after every row", () => {
    const printed: string[] = [];
    const path = join(dir, "sub", "scenarios.md");
    const report = new ScenarioReport({ path, print: (t) => printed.push(t) });
    report.add("S1 agent-first", summary, "agent restarts 0");
    report.add("S2", summary);
    const text = readFileSync(path, "utf8");
    expect(text).toContain("# Tether end-to-end scenarios");
    expect(text).toContain("| S1 agent-first");
    expect(text.split("\n").filter((l) => l.startsWith("|"))).toHaveLength(4);
    expect(printed[0]).toContain("time to recover: 1500 ms");
    report.printTable();
    expect(printed.at(-1)).toContain("| scenario");
  });

  it("writes under .tether/e2e unless TETHER_E2E_REPORT says otherwise", () => {
    expect(reportPath({})).toMatch(/\.tether\/e2e\/scenarios\.md$/);
    expect(reportPath({ TETHER_E2E_REPORT: "/tmp/x.md" })).toBe("/tmp/x.md");
  });
});
