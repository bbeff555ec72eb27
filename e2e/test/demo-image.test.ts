// The demo image's entry point, as the quick-start examples run it: `policy-server …` and
// `agent --port …`, the agent asking for a decision on every request it serves.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";
import { ChildHandle } from "../src/demo/processes.ts";

const ENTRY = join(REPO_ROOT, "e2e/src/image/main.ts");
let policyServer: ChildHandle | undefined;
let agent: ChildHandle | undefined;
let agentOrigin = "";

function listeningPort(line: string): number | undefined {
  if (!line.startsWith("{")) return undefined;
  const event = JSON.parse(line) as { event?: string; port?: number };
  return event.event === "listening" ? event.port : undefined;
}

beforeAll(async () => {
  policyServer = new ChildHandle({
    name: "demo image: policy-server",
    command: process.execPath,
    args: [ENTRY, "policy-server", "--port", "0", "--host", "127.0.0.1", "--protocol", "http"],
  });
  const psPort = await policyServer.waitForLine(listeningPort, 10_000);
  agent = new ChildHandle({
    name: "demo image: agent",
    command: process.execPath,
    args: [ENTRY, "agent", "--port", "0", "--host", "127.0.0.1", "--name", "web-0"],
    env: {
      ...process.env,
      TETHER_POLICY_SERVER_HOST: "127.0.0.1",
      TETHER_POLICY_SERVER_PORT: String(psPort),
    },
  });
  agentOrigin = `http://127.0.0.1:${await agent.waitForLine(listeningPort, 10_000)}`;
});

afterAll(async () => {
  await agent?.stop();
  await policyServer?.stop();
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${agentOrigin}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("demo image entry point", () => {
  it("agent: allowed and denied requests, decided by the policy server", async () => {
    const allowed = await get("/app/orders");
    expect(allowed.status).toBe(200);
    expect(allowed.body).toMatchObject({ allow: true, agent: "web-0", path: "/app/orders" });
    expect(typeof allowed.body["server"]).toBe("string");
    const denied = await get("/private/payroll");
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ allow: false });
    expect((await get("/healthz")).status).toBe(200);
  });

  it("agent: 502 naming the problem when no decision comes back", async () => {
    await policyServer?.kill();
    const failed = await get("/app/orders");
    expect(failed.status).toBe(502);
    expect(failed.body["code"]).toBe("TETHER_ERR_DEMO_NO_DECISION");
  });

  it("rejects an unknown role with the usage", () => {
    const bad = spawnSync(process.execPath, [ENTRY, "bogus"], { encoding: "utf8", timeout: 10_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown role "bogus"');
  });
});
