import { describe, expect, it } from "vitest";
import { DrainManager } from "./drain.ts";
import { parseDrainOptions } from "./shutdown.ts";

describe("DrainManager", () => {
  it("closes nothing before the drain sequence starts", () => {
    const d = new DrainManager({ drainTimeMs: 1000, strategy: "immediate", shutdownTimeMs: 2000 }, () => 0);
    expect(d.draining).toBe(false);
    expect(d.drainClose()).toBe(false);
  });

  it("immediate: every response closes its connection once draining", () => {
    const d = new DrainManager({ drainTimeMs: 1000, strategy: "immediate", shutdownTimeMs: 2000 }, () => 5);
    d.startDrainSequence();
    expect(d.drainClose()).toBe(true);
    expect(d.drainEnd).toBe(1005);
  });

  it("gradual: the share of closing responses grows linearly over the drain time", () => {
    let now = 0;
    let r = 0.5;
    const d = new DrainManager(
      { drainTimeMs: 1000, strategy: "gradual", shutdownTimeMs: 2000 },
      () => now,
      () => r,
    );
    d.startDrainSequence();
    expect(d.drainClose()).toBe(false); // elapsed 0: nobody yet
    now = 400;
    expect(d.drainClose()).toBe(false); // 0.5 × 1000 ≥ 400
    r = 0.3;
    expect(d.drainClose()).toBe(true); // 0.3 × 1000 < 400
    now = 1000;
    r = 0.999;
    expect(d.drainClose()).toBe(true); // the drain time is over: everyone
  });
});

describe("parseDrainOptions", () => {
  it("reads the flags in seconds and defaults the strategy to Envoy's gradual", () => {
    expect(
      parseDrainOptions({
        "drain-time-s": "2.5",
        "parent-shutdown-time-s": "10",
        "drain-strategy": "gradual",
      }),
    ).toEqual({ drainTimeMs: 2500, strategy: "gradual", shutdownTimeMs: 10_000 });
  });

  it("names the bad flag", () => {
    expect(() =>
      parseDrainOptions({
        "drain-time-s": "-1",
        "parent-shutdown-time-s": "10",
        "drain-strategy": "gradual",
      }),
    ).toThrow("--drain-time-s must be a non-negative number");
    expect(() =>
      parseDrainOptions({ "drain-time-s": "1", "parent-shutdown-time-s": "10", "drain-strategy": "slow" }),
    ).toThrow("--drain-strategy must be one of gradual, immediate");
  });
});
