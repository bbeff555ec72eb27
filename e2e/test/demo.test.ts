// The demo's scenario in a short form, through the real sidecar with the example config:
// one of two policy servers is SIGKILLed under steady load and restarted, then both; no client sees it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDemoConfig } from "../src/demo/demo-config.ts";
import type { DemoConfig } from "../src/demo/demo-config.ts";
import { runPhases } from "../src/demo/phases.ts";
import { startPolicyServers } from "../src/demo/processes.ts";
import type { PolicyServerProcess } from "../src/demo/processes.ts";
import { SidecarProcess, repoRoot } from "../src/demo/sidecar.ts";
import { summarizePhases } from "../src/demo/summary.ts";
import { ConstantRateTraffic } from "../src/demo/traffic.ts";

const PATH = "/authorize?resource=/app/orders&action=GET";

let config: DemoConfig;
let servers: PolicyServerProcess[] = [];
let sidecar: SidecarProcess | null = null;

beforeAll(async () => {
  // A temp copy on fresh ports, so the test never collides with a demo or a sidecar already running.
  config = await loadDemoConfig(`${repoRoot()}examples/sidecar/envoy-http.yaml`, { freshPorts: true });
  const [first, second] = config.endpoints;
  servers = await startPolicyServers([
    { name: "ps1", port: first!.port, host: first!.host },
    { name: "ps2", port: second!.port, host: second!.host },
  ]);
  sidecar = new SidecarProcess({ configPath: config.configPath, admin: config.admin });
  await sidecar.start();
});

afterAll(async () => {
  await sidecar?.stop();
  await Promise.all(servers.map((server) => server.kill()));
});

describe("demo phases through the sidecar with the example config, under steady load", () => {
  it("one server of two killed and restarted: no client-visible failure, and it takes traffic again", async () => {
    const traffic = new ConstantRateTraffic({
      origin: `http://${config.listener.host}:${config.listener.port}`,
      path: PATH,
      ratePerSecond: 200,
    });
    // Both servers answering through the sidecar before the clock starts.
    traffic.start();
    const warm = await Promise.all([
      traffic.waitForServer("ps1", 0, 15_000),
      traffic.waitForServer("ps2", 0, 15_000),
    ]);
    expect(warm.every((record) => record !== null)).toBe(true);

    const byName = new Map(servers.map((server) => [server.name, server]));
    const windows = await runPhases(traffic, byName, [
      { name: "steady", minDurationMs: 1500 },
      { name: "kill ps1", kill: ["ps1"], minDurationMs: 2500 },
      { name: "restart ps1", restart: ["ps1"], minDurationMs: 1500, maxDurationMs: 15_000 },
    ]);
    await traffic.stop();
    const [steady, killed, restarted] = summarizePhases(traffic.records, windows);

    for (const phase of [steady, killed, restarted]) {
      expect(phase!.requests).toBeGreaterThan(200);
      expect({ phase: phase!.name, failures: phase!.failures, errors: phase!.errors }).toEqual({
        phase: phase!.name,
        failures: 0,
        errors: [],
      });
    }
    expect(Object.keys(steady!.servedBy).sort()).toEqual(["ps1", "ps2"]);
    // While ps1 is down every answer comes from ps2.
    expect(Object.keys(killed!.servedBy)).toEqual(["ps2"]);
    // The restarted ps1 is back in rotation within the health checks' healthy_threshold × interval (+ slack).
    const back = restarted!.backInRotationMs.ps1;
    expect(back).not.toBeNull();
    expect(back!).toBeLessThan(10_000);
  });

  it("holds requests while both servers are down and restarted within the hold window", async () => {
    const traffic = new ConstantRateTraffic({
      origin: `http://${config.listener.host}:${config.listener.port}`,
      path: PATH,
      ratePerSecond: 200,
    });
    traffic.start();
    const warm = await Promise.all([
      traffic.waitForServer("ps1", 0, 15_000),
      traffic.waitForServer("ps2", 0, 15_000),
    ]);
    expect(warm.every((record) => record !== null)).toBe(true);

    const byName = new Map(servers.map((server) => [server.name, server]));
    const windows = await runPhases(traffic, byName, [
      { name: "steady", minDurationMs: 1000 },
      { name: "kill both", kill: ["ps1", "ps2"], minDurationMs: 1000 },
      { name: "restart both", restart: ["ps1", "ps2"], minDurationMs: 1500, maxDurationMs: 15_000 },
    ]);
    await traffic.stop();
    const [, down, back] = summarizePhases(traffic.records, windows);

    for (const phase of [down, back]) {
      expect({ phase: phase!.name, failures: phase!.failures, errors: phase!.errors }).toEqual({
        phase: phase!.name,
        failures: 0,
        errors: [],
      });
    }
    // Held, not failed: the longest wait is the outage (kill → both listening again) plus at most one
    // back-off step (max_interval 1 s in the example), with slack for a busy machine.
    const outageMs = Math.max(...windows[2]!.restarted.map((r) => r.listeningAt)) - windows[1]!.startAt;
    expect(down!.maxMs).toBeGreaterThan(outageMs / 2);
    expect(down!.maxMs).toBeLessThan(outageMs + 1000 + 2000);
  });
});
