// The demo image's client commands as the end-to-end scenarios use them, run here as real child
// processes against a real demo agent, the real tether-sidecar and real demo policy servers on
// 127.0.0.1: `load` (held open through its stdin, stopped by "stop" or the end of stdin, one JSON
// summary), `request`, and `idle`. The summary is read through the same RunningLoad the scenarios
// use on a client pod's `kubectl exec -i`.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";
import { loadDemoConfig, type DemoConfig } from "../src/demo/demo-config.ts";
import { ChildHandle, startPolicyServers, type PolicyServerProcess } from "../src/demo/processes.ts";
import { SidecarProcess, metricSum } from "../src/demo/sidecar.ts";
import { execFromIdle, jsonLines } from "../src/scenarios/client.ts";
import { ENTRY, progress, request, startLoad } from "./support/image-commands.ts";

function listeningPort(line: string): number | undefined {
  const event = jsonLines(line)[0];
  return event?.["event"] === "listening" && typeof event["port"] === "number" ? event["port"] : undefined;
}

async function startAgent(policyServer: string): Promise<{ child: ChildHandle; origin: string }> {
  const child = new ChildHandle({
    name: "demo agent",
    command: process.execPath,
    args: [
      ENTRY,
      "agent",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--name",
      "web-0",
      "--policy-server",
      policyServer,
    ],
  });
  return { child, origin: `http://127.0.0.1:${await child.waitForLine(listeningPort, 10_000)}` };
}

/** Two policy servers, the sidecar and the agent, filled in as each starts: a failed start stops what ran. */
interface Stack {
  servers: PolicyServerProcess[];
  sidecar?: SidecarProcess;
  agent?: { child: ChildHandle; origin: string };
}

/** The policy servers on the config's two endpoints, the sidecar on `configPath`, the agent in front. */
async function startStack(stack: Stack, config: DemoConfig, configPath: string): Promise<void> {
  const [a, b] = config.endpoints;
  stack.servers = await startPolicyServers([
    { name: "ps1", port: a!.port, host: a!.host },
    { name: "ps2", port: b!.port, host: b!.host },
  ]);
  stack.sidecar = new SidecarProcess({ configPath, admin: config.admin });
  await stack.sidecar.start();
  stack.agent = await startAgent(`${config.listener.host}:${config.listener.port}`);
}

async function stopStack(stack: Stack): Promise<void> {
  await stack.agent?.child.stop();
  await stack.sidecar?.stop();
  await Promise.all(stack.servers.map((s) => s.kill()));
}

describe("load and request commands against the demo agent, the sidecar and two policy servers", () => {
  const stack: Stack = { servers: [] };

  beforeAll(async () => {
    const config = await loadDemoConfig(join(REPO_ROOT, "examples/sidecar/envoy-http.yaml"), {
      freshPorts: true,
    });
    await startStack(stack, config, config.configPath);
  });

  afterAll(() => stopStack(stack));

  const target = (): string => `${stack.agent!.origin}/app/orders`;

  it("one server killed and restarted under load: a summary with no failure, both servers, percentiles", async () => {
    const { load, child } = await startLoad({ target: target(), ratePerSecond: 50 });
    await progress(child, (p) => (p.servedBy["ps1"] ?? 0) > 5 && (p.servedBy["ps2"] ?? 0) > 5);
    await stack.servers[0]!.kill();
    const killedAt = (await progress(child, () => true)).requests;
    await progress(child, (p) => p.requests >= killedAt + 100);
    await stack.servers[0]!.restart();
    const back = (await progress(child, () => true)).servedBy["ps1"] ?? 0;
    await progress(child, (p) => (p.servedBy["ps1"] ?? 0) > back + 5, 30_000);
    const summary = await load.stop();
    expect(summary.event).toBe("summary");
    expect(summary.failures, JSON.stringify(summary.failureSamples)).toBe(0);
    expect(summary.requests).toBeGreaterThan(150);
    expect(Object.keys(summary.servedBy).sort()).toEqual(["ps1", "ps2"]);
    expect(summary.p50Ms).toBeGreaterThan(0);
    expect(summary.p99Ms).toBeGreaterThanOrEqual(summary.p50Ms);
    expect(summary.maxMs).toBeGreaterThanOrEqual(summary.p99Ms);
    expect(summary.durationMs).toBeGreaterThan(0);
    expect((await child.exited).code).toBe(0);
  });

  it("both servers down, then back: requests are held (slow, not failed) and the time to recover covers the outage", async () => {
    const { load, child } = await startLoad({ target: target(), ratePerSecond: 40, slowMs: 300 });
    await progress(child, (p) => p.requests >= 20 && Object.keys(p.servedBy).length === 2);
    const down = performance.now();
    await Promise.all(stack.servers.map((s) => s.kill()));
    const at = (await progress(child, () => true)).requests;
    // The outage lasts while 40 more requests are scheduled (about a second at 40/s).
    await progress(child, (p) => p.requests >= at + 40);
    await Promise.all(stack.servers.map((s) => s.restart()));
    const outageMs = performance.now() - down;
    const answered = (await progress(child, () => true)).servedBy;
    const total = (served: Record<string, number>): number =>
      Object.values(served).reduce((x, y) => x + y, 0);
    await progress(child, (p) => total(p.servedBy) >= total(answered) + 80, 30_000);
    const summary = await load.stop();
    expect(summary.failures, JSON.stringify(summary.failureSamples)).toBe(0);
    expect(summary.slow).toBeGreaterThan(0);
    expect(summary.firstBadAtMs).not.toBeNull();
    // Held requests wait for the whole outage (less the slow threshold, the first held request's grace).
    expect(summary.recoverMs).toBeGreaterThanOrEqual(outageMs - summary.slowMs - 200);
    expect(summary.recoverMs).toBeLessThan(outageMs + 5_000);
    expect(summary.maxMs).toBeGreaterThan(summary.slowMs);
  });

  it("request: one decision through the agent, printed as JSON", async () => {
    const { code, line } = await request(["--url", `${stack.agent!.origin}/app/orders`]);
    expect(code).toBe(0);
    expect(line).toMatchObject({ event: "response", status: 200, body: { allow: true, agent: "web-0" } });
    const denied = await request(["--url", `${stack.agent!.origin}/private/x`]);
    expect(denied.line).toMatchObject({ status: 403, body: { allow: false } });
  });

  it("load stops at the end of stdin too, and an unreachable target is all failures with samples", async () => {
    const { load, child } = await startLoad({
      target: "http://127.0.0.1:9/nothing",
      ratePerSecond: 50,
      timeoutMs: 2000,
    });
    await progress(child, (p) => p.failures >= 10);
    child.endInput();
    const summary = await load.stop();
    expect(summary.failures).toBe(summary.requests);
    expect(summary.failureSamples.length).toBeGreaterThan(0);
    expect(summary.failureSamples[0]?.error).toMatch(/ECONNREFUSED/);
    expect(summary.recoverMs).toBeGreaterThan(0);
    expect(child.output()).toContain('"stoppedBy":"stdin closed"');
  });

  it("rejects bad flags with exit 2, naming the flag", () => {
    const run = (args: string[]): { status: number | null; stderr: string } =>
      spawnSync(process.execPath, [ENTRY, ...args], { encoding: "utf8", timeout: 10_000 });
    for (const [args, flag] of [
      [["load", "--target", "http://x/", "--rate", "-1"], "--rate"],
      [["request", "--url", "ftp://x/"], "--url"],
      [["tls-backend", "--port", "1"], "--cert"],
    ] as const) {
      const result = run([...args]);
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(flag);
    }
    expect(run(["idle", "--x"])).toMatchObject({ status: 2 });
  });
});

describe("idle: the client pod's main process", () => {
  it("prints how to run the entry point again and exits 0 on SIGTERM", async () => {
    const child = new ChildHandle({ name: "idle", command: process.execPath, args: [ENTRY, "idle"] });
    const exec = await child.waitForLine((line) => execFromIdle(line), 10_000);
    expect(exec).toEqual([process.execPath, ENTRY]);
    expect((await child.stop()).code).toBe(0);
  });
});

describe("the decision cache as S8 sees it: the agent's answers carry the policy server's request number", () => {
  const stack: Stack = { servers: [] };
  // Long enough that two request commands (a node start each) fit well inside it on a loaded machine.
  const TTL_MS = 5000;

  beforeAll(async () => {
    const config = await loadDemoConfig(join(REPO_ROOT, "examples/sidecar/envoy-http.yaml"), {
      freshPorts: true,
    });
    // The example with the DecisionCache filter in front of the router, as the operator renders it.
    const doc = parse(readFileSync(config.configPath, "utf8")) as {
      static_resources: {
        listeners: { filter_chains: { filters: { typed_config: { http_filters: unknown[] } }[] }[] }[];
      };
    };
    const hcm = doc.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
    hcm.http_filters.unshift({
      name: "tether.filters.http.decision_cache",
      typed_config: {
        "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache",
        ttl: `${TTL_MS / 1000}s`,
        notifications: true,
      },
    });
    const path = join(config.configPath, "..", "envoy-cache.yaml");
    writeFileSync(path, stringify(doc));
    await startStack(stack, config, path);
  });

  afterAll(() => stopStack(stack));

  const decide = async (): Promise<string> => {
    const { line } = await request(["--url", `${stack.agent!.origin}/s8/page`]);
    const body = line["body"] as { server?: string; instance?: string; seq?: number };
    expect(line["status"]).toBe(200);
    return `${body.server ?? ""}/${body.instance ?? ""}/${String(body.seq)}`;
  };

  it("same decision from the cache, a fresh one after the ttl, and at once after a notification", async () => {
    const firstSent = performance.now();
    const first = await decide();
    expect(await decide()).toBe(first);
    const metrics = await stack.sidecar!.prometheus();
    expect(metricSum(metrics, "tether_decision_cache_hits_total")).toBeGreaterThanOrEqual(1);
    // After the ttl: asked again (poll with a deadline; the cache must not answer a new one sooner).
    let fresh = first;
    const deadline = performance.now() + TTL_MS + 10_000;
    while (fresh === first && performance.now() < deadline) fresh = await decide();
    expect(fresh).not.toBe(first);
    // Stored after firstSent, so it cannot have expired before firstSent + ttl.
    expect(performance.now() - firstSent).toBeGreaterThanOrEqual(TTL_MS);
    // The notification, sent with the request command as S8 does from the client pod.
    const cached = await decide();
    expect(cached).toBe(fresh);
    const notified = await request([
      "--url",
      `${stack.sidecar!.adminOrigin}/notifications`,
      "--data",
      JSON.stringify({ type: "policy-changed" }),
    ]);
    expect(notified.line).toMatchObject({ status: 200, body: { invalidated: 1 } });
    expect(await decide()).not.toBe(fresh);
  });
});
