// The check schedule as Envoy's health checker computes it: the pure rule, then a HealthChecker
// against a real HTTP server with its timers on an injected clock, walking a host out of rotation and
// back through unhealthy_edge_interval, unhealthy_interval, healthy_edge_interval and interval.
import http from "node:http";
import type net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { healthCheckSchema } from "@tether/envoy";
import { createLogger } from "../log.ts";
import { checkOutcome, nextCheckDelay } from "./check-interval.ts";
import { HealthChecker, type CheckClock, type HealthCheckOwner } from "./health-check.ts";
import { Host } from "./host.ts";
import { ClusterStats } from "./stats.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FULL = {
  interval: 1000,
  no_traffic_interval: 60_000,
  unhealthy_interval: 300,
  unhealthy_edge_interval: 100,
  healthy_edge_interval: 50,
};

describe("check interval: the rule", () => {
  it("classifies a result by what it did to the host", () => {
    expect(checkOutcome(false, false, false, false).transition).toBe("pending"); // failing, still in
    expect(checkOutcome(false, false, true, false).transition).toBe("changed"); // taken out
    expect(checkOutcome(false, true, true, false).transition).toBe("unchanged"); // still out
    expect(checkOutcome(true, true, true, false).transition).toBe("pending"); // passing, still out
    expect(checkOutcome(true, true, false, false).transition).toBe("changed"); // back in
    expect(checkOutcome(true, false, false, false).transition).toBe("unchanged");
    // A host's first result is a change even when its flag stays (Envoy's clearPendingFlag).
    expect(checkOutcome(false, true, true, true).transition).toBe("changed");
  });

  it("picks the edge intervals while a change is pending, else unhealthy_interval or interval", () => {
    const delay = (passed: boolean, t: "changed" | "pending" | "unchanged"): number =>
      nextCheckDelay(FULL, true, { passed, transition: t });
    expect(delay(false, "pending")).toBe(100);
    expect(delay(false, "changed")).toBe(300);
    expect(delay(false, "unchanged")).toBe(300);
    expect(delay(true, "pending")).toBe(50);
    expect(delay(true, "changed")).toBe(1000);
    expect(delay(true, "unchanged")).toBe(1000);
    // Before the cluster's first request, no_traffic_interval whatever happened.
    expect(nextCheckDelay(FULL, false, { passed: false, transition: "pending" })).toBe(60_000);
  });

  it("defaults as Envoy: unhealthy_edge → unhealthy_interval → interval; healthy_edge → interval", () => {
    const base = { interval: 1000, no_traffic_interval: 60_000 };
    const pendingFailure = { passed: false, transition: "pending" } as const;
    const pendingPass = { passed: true, transition: "pending" } as const;
    expect(nextCheckDelay(base, true, pendingFailure)).toBe(1000);
    expect(nextCheckDelay({ ...base, unhealthy_interval: 250 }, true, pendingFailure)).toBe(250);
    expect(nextCheckDelay({ ...base, unhealthy_interval: 250 }, true, pendingPass)).toBe(1000);
  });

  it("rejects a zero edge interval, naming the field", () => {
    const r = healthCheckSchema.safeParse({
      timeout: "1s",
      interval: "1s",
      unhealthy_threshold: 1,
      healthy_threshold: 1,
      tcp_health_check: {},
      unhealthy_edge_interval: "0s",
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["unhealthy_edge_interval", "must be greater than zero"],
    ]);
  });
});

/** Timers that fire only when the test advances the clock; reports when the next one is due. */
class StepClock implements CheckClock {
  t = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Delay from now to the only armed timer. */
  armedIn(): number {
    const due = [...this.timers.values()];
    expect(due).toHaveLength(1);
    return (due[0]?.at ?? 0) - this.t;
  }

  /** Fires the only armed timer. */
  fire(): void {
    const [entry] = this.timers;
    if (entry === undefined) throw new Error("no timer armed");
    this.timers.delete(entry[0]);
    this.t = entry[1].at;
    entry[1].fn();
  }
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("check interval: a HealthChecker on an injected clock", () => {
  it("walks a host out and back: edge, edge, out, unhealthy, healthy edge, back, interval", async () => {
    let status = 200;
    const server = http.createServer((_req, res) => {
      res.statusCode = status;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) =>
          server.close(() => {
            resolve();
          }),
        ),
    );
    server.on("connection", (s: net.Socket) => s.on("error", () => undefined));
    const port = (server.address() as net.AddressInfo).port;
    const stats = new ClusterStats();
    const owner: HealthCheckOwner = {
      name: "backend",
      log: createLogger("silent"),
      stats,
      hadTraffic: true,
      onActiveHealthChanged: () => undefined,
      onActiveHealthConfirmed: () => undefined,
      onActiveHealthPassed: () => undefined,
    };
    const clock = new StepClock();
    const config = healthCheckSchema.parse({
      timeout: "1s",
      interval: "1s",
      unhealthy_interval: "0.3s",
      unhealthy_edge_interval: "0.1s",
      healthy_edge_interval: "0.05s",
      unhealthy_threshold: 3,
      healthy_threshold: 2,
      http_health_check: { path: "/healthz" },
    });
    const hc = new HealthChecker(config, owner, undefined, clock);
    cleanups.push(() => {
      hc.stop();
    });
    const host = new Host("127.0.0.1", port, 0);
    const done = (): number => stats.counters.health_check_success + stats.counters.health_check_failure;
    hc.addHost(host);
    await until("the first check", () => done() === 1);
    expect(host.failedActiveHc).toBe(false);
    const steps: [boolean, number][] = [];
    /** Runs the armed check and records (out of rotation, delay to the next one). */
    const step = async (): Promise<void> => {
      const before = done();
      clock.fire();
      await until("a check", () => done() === before + 1);
      steps.push([host.failedActiveHc, clock.armedIn()]);
    };
    expect(clock.armedIn()).toBe(1000);
    status = 500;
    for (let i = 0; i < 4; i++) await step();
    status = 200;
    for (let i = 0; i < 3; i++) await step();
    expect(steps).toEqual([
      [false, 100], // 1st failure, still in rotation: unhealthy_edge_interval
      [false, 100], // 2nd
      [true, 300], // 3rd: out (unhealthy_threshold) → unhealthy_interval
      [true, 300], // still out
      [true, 50], // 1st pass, still out (healthy_threshold 2): healthy_edge_interval
      [false, 1000], // 2nd pass: back → interval
      [false, 1000],
    ]);
  });
});
