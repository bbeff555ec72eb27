import { describe, expect, it } from "vitest";
import { renderPhaseTable, summarizePhases } from "./summary.ts";
import type { RequestRecord } from "./traffic.ts";

function answer(intendedAt: number, latency: number, server: string | null, ok = true): RequestRecord {
  return {
    intendedAt,
    sentAt: intendedAt,
    doneAt: intendedAt + latency,
    status: ok ? 200 : 503,
    ok,
    server,
    error: ok ? null : "503",
  };
}

describe("phase summaries", () => {
  const records = [
    answer(0, 1, "ps1"),
    answer(5, 2, "ps2"),
    answer(10, 300, null, false), // scheduled in phase 2, answered during phase 3: counts for phase 2
    answer(12, 3, "ps2"),
    answer(20, 4, "ps2"),
    answer(25, 1, "ps1"),
  ];
  const phases = [
    { name: "steady", startAt: 0, endAt: 10, restarted: [] },
    { name: "kill ps1", startAt: 10, endAt: 20, restarted: [] },
    { name: "restart ps1", startAt: 20, endAt: 30, restarted: [{ server: "ps1", listeningAt: 22 }] },
  ];

  it("attributes requests by scheduled time and times the restarted server's return", () => {
    const [steady, killed, restarted] = summarizePhases(records, phases);
    expect(steady).toMatchObject({
      requests: 2,
      failures: 0,
      servedBy: { ps1: 1, ps2: 1 },
      firstFailureAtMs: null,
    });
    expect(killed).toMatchObject({ requests: 2, failures: 1, maxMs: 300, firstFailureAtMs: 0 });
    expect(killed!.errors).toEqual([{ error: "503", count: 1 }]);
    expect(restarted!.backInRotationMs).toEqual({ ps1: 4 });
  });

  it("renders one row per phase", () => {
    const table = renderPhaseTable(summarizePhases(records, phases));
    expect(table.split("\n")).toHaveLength(5);
    expect(table).toContain("ps1 4.00 ms");
  });
});
