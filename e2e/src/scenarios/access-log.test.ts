import { describe, expect, it } from "vitest";
import { describeSidecarTimes, sidecarTimes } from "./access-log.ts";

const line = (at: string, duration: number, upstream = "10.0.0.1:8080", flags = "-"): string =>
  JSON.stringify({ start_time: at, duration, upstream_host: upstream, response_flags: flags, method: "GET" });

describe("sidecarTimes", () => {
  const window = { from: new Date("2026-12-06T10:00:00.000Z"), to: new Date("2026-12-06T10:01:00.000Z") };

  it("summarizes only access-log lines inside the window", () => {
    const log = [
      line("2026-12-06T09:59:59.999Z", 900), // before the window
      '{"level":30,"msg":"ADS stream connected"}', // a sidecar log line, not an access-log line
      "not json at all",
      ...Array.from({ length: 99 }, (_, i) =>
        line(`2026-12-06T10:00:${String(i % 60).padStart(2, "0")}.000Z`, 2),
      ),
      line("2026-12-06T10:00:30.000Z", 47, "10.0.0.9:8080", "UF"),
      line("2026-12-06T10:01:00.001Z", 800), // after
    ].join("\n");
    const t = sidecarTimes(log, window);
    expect(t).toEqual({ requests: 100, p99Ms: 2, maxMs: 47, slowestUpstream: "10.0.0.9:8080 UF" });
    expect(describeSidecarTimes(t)).toBe(
      "sidecar p99 2.00 ms, max 47.00 ms (10.0.0.9:8080 UF) of 100 logged",
    );
  });

  it("says so when nothing was logged", () => {
    const t = sidecarTimes("", window);
    expect(t.requests).toBe(0);
    expect(describeSidecarTimes(t)).toBe("sidecar: no access-log lines in the window");
  });
});
