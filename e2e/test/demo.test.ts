// The demo's scenario in a short form, through the real sidecar with the example config:
// one of two policy servers is SIGKILLed under steady load and restarted; no client sees it.
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

describe("demo: one policy server of two killed and restarted under steady load", () => {
  it("has no client-visible failure, and the restarted server takes traffic again", async () => {
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
    // While ps1 is down every answer comes from ps2 — once the sidecar has noticed.
    expect(killed!.servedBy.ps2).toBeGreaterThan(0);
    // The restarted ps1 is back in rotation within the health checks' healthy_threshold × interval (+ slack).
    const back = restarted!.backInRotationMs.ps1;
    expect(back).not.toBeNull();
    expect(back!).toBeLessThan(10_000);
  });
});
