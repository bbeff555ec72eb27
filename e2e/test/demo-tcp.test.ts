// The legacy agent ↔ policy-server link through the sidecar's TCP listener, with the demo policy servers' own handshake: after a
// policy-server restart the agent's connection is closed (never left half-dead), and the agent's
// next connection gets a fresh HELLO from a live server — no agent restart, in any start order.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDemoConfig } from "../src/demo/demo-config.ts";
import type { DemoConfig } from "../src/demo/demo-config.ts";
import { LineClient } from "../src/demo/line-protocol.ts";
import { startPolicyServers } from "../src/demo/processes.ts";
import type { PolicyServerProcess } from "../src/demo/processes.ts";
import { SidecarProcess, repoRoot } from "../src/demo/sidecar.ts";

let config: DemoConfig;
let servers: PolicyServerProcess[] = [];
let sidecar: SidecarProcess | null = null;

async function connectAgent(timeoutMs = 5000): Promise<LineClient> {
  return LineClient.connect({
    host: config.listener.host,
    port: config.listener.port,
    clientName: "agent",
    timeoutMs,
  });
}

/** Connects until a server greets (the sidecar may refuse while its health checks catch up). */
async function connectWithin(deadlineMs: number): Promise<LineClient> {
  const deadline = performance.now() + deadlineMs;
  let last: unknown = null;
  while (performance.now() < deadline) {
    try {
      return await connectAgent();
    } catch (error) {
      last = error;
      await new Promise<void>((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`no handshake through the sidecar within ${deadlineMs} ms: ${String(last)}`);
}

beforeAll(async () => {
  config = await loadDemoConfig(`${repoRoot()}examples/sidecar/envoy-tcp.yaml`, { freshPorts: true });
  const [primary, secondary] = config.endpoints;
  servers = await startPolicyServers([
    { name: "ps1", port: primary!.port, host: primary!.host, protocol: "tcp" },
    { name: "ps2", port: secondary!.port, host: secondary!.host, protocol: "tcp" },
  ]);
  sidecar = new SidecarProcess({ configPath: config.configPath, admin: config.admin });
  await sidecar.start();
});

afterAll(async () => {
  await sidecar?.stop();
  await Promise.all(servers.map((server) => server.kill()));
});

describe("demo over TCP: policy-server restart behind the sidecar", () => {
  it("closes the agent's connection to a killed server, and a new connection handshakes afresh", async () => {
    const [ps1] = servers;
    const agent = await connectWithin(10_000);
    expect(agent.greeting).toEqual({ server: "ps1", instance: ps1!.listening.instance });
    expect(await agent.authorize("/app", "GET")).toMatchObject({ allow: true, server: "ps1" });
    const before = ps1!.listening.instance;

    await ps1!.kill();
    // interval × unhealthy_threshold + one interval = 3 s in the example; the kill itself resets
    // the upstream connection, so this is usually immediate.
    expect(await agent.waitClosed(3000)).toBe(true);
    await ps1!.start();

    const again = await connectWithin(10_000);
    expect(again.greeting?.instance).not.toBe(before);
    expect(await again.authorize("/app", "GET")).toMatchObject({ allow: true });
    again.close();
    agent.close();
  });

  it("holds a new agent connection while no server listens, and connects once one is back", async () => {
    await Promise.all(servers.map((server) => server.kill()));
    // The agent connects during the outage; the sidecar retries the upstream connect with jittered
    // back-off (max_connect_attempts 10, waits drawn below 0.2, 0.4, 0.8, 1.6 and then 2 s: ~6.5 s
    // in all on average), so a server back within a few seconds is reached.
    const pending = connectAgent(15_000);
    const [ps1] = servers;
    const listening = await ps1!.start();
    const agent = await pending;
    expect(agent.greeting).toEqual({ server: "ps1", instance: listening.instance });
    expect(await agent.ping()).toMatchObject({ pong: true, server: "ps1" });
    agent.close();
    await servers[1]!.start();
  });
});
