import { afterEach, describe, expect, it } from "vitest";
import { outlierDetectionSchema } from "@tether/envoy";
import { Host } from "./host.ts";
import { OutlierDetector, type OutlierOwner } from "./outlier.ts";
import { ClusterStats } from "./stats.ts";

function owner(hosts: Host[]): OutlierOwner & { events: string[] } {
  const events: string[] = [];
  return {
    stats: new ClusterStats(),
    events,
    hostCount: () => hosts.length,
    allHosts: () => hosts,
    onOutlierChanged: (h, ejected) => events.push(`${h.address}:${ejected ? "ejected" : "returned"}`),
  };
}

const detectors: OutlierDetector[] = [];
afterEach(() => {
  for (const d of detectors.splice(0)) d.stop();
});

function detector(config: unknown, o: OutlierOwner, now: () => number): OutlierDetector {
  const d = new OutlierDetector(outlierDetectionSchema.parse(config), o, now, () => 0);
  detectors.push(d);
  return d;
}

describe("outlier detection", () => {
  it("does not eject one of two hosts under the default 10% max_ejection_percent", () => {
    const hosts = [new Host("a", 1, 0), new Host("b", 1, 0)];
    const o = owner(hosts);
    const d = detector({}, o, () => 0);
    for (let i = 0; i < 5; i++) d.recordLocalFailure(hosts[0]!, "connect_failed");
    expect(hosts[0]!.outlierEjected).toBe(false);
    expect(o.stats.counters.outlier_detection_ejections_overflow).toBe(1);
  });

  it("ejects one host with always_eject_one_host, for base_ejection_time × times ejected", () => {
    const hosts = [new Host("a", 1, 0), new Host("b", 1, 0)];
    const o = owner(hosts);
    let now = 0;
    const d = detector(
      { always_eject_one_host: true, base_ejection_time: "30s", consecutive_5xx: 3 },
      o,
      () => now,
    );
    d.recordStatus(hosts[0]!, 500);
    d.recordStatus(hosts[0]!, 200); // a success resets the streak
    for (let i = 0; i < 3; i++) d.recordStatus(hosts[0]!, 503);
    expect(hosts[0]!.outlierEjected).toBe(true);
    expect(o.stats.outlier_detection_ejections_active).toBe(1);
    // A second host cannot be ejected while one is.
    for (let i = 0; i < 3; i++) d.recordStatus(hosts[1]!, 500);
    expect(hosts[1]!.outlierEjected).toBe(false);
    now = 29_999;
    d.sweep();
    expect(hosts[0]!.outlierEjected).toBe(true);
    now = 30_000;
    d.sweep();
    expect(hosts[0]!.outlierEjected).toBe(false);
    for (let i = 0; i < 3; i++) d.recordStatus(hosts[0]!, 500);
    expect(hosts[0]!.ejectedUntil).toBe(30_000 + 60_000);
    expect(o.events).toEqual(["a:ejected", "a:returned", "a:ejected"]);
  });

  it("returns an ejected host when an active health check passes", () => {
    const hosts = [new Host("a", 1, 0)];
    const d = detector({ max_ejection_percent: 100 }, owner(hosts), () => 0);
    for (let i = 0; i < 5; i++) d.recordStatus(hosts[0]!, 502);
    expect(hosts[0]!.outlierEjected).toBe(true);
    d.activeCheckPassed(hosts[0]!);
    expect(hosts[0]!.outlierEjected).toBe(false);
  });

  it("counts local-origin failures separately when split_external_local_origin_errors is set", () => {
    const hosts = [new Host("a", 1, 0)];
    const d = detector(
      {
        max_ejection_percent: 100,
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: 2,
      },
      owner(hosts),
      () => 0,
    );
    d.recordLocalFailure(hosts[0]!, "timeout");
    expect(hosts[0]!.consecutive5xx).toBe(0);
    d.recordLocalFailure(hosts[0]!, "timeout");
    expect(hosts[0]!.outlierEjected).toBe(true);
  });
});
