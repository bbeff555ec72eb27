// The scenarios' client-pod plumbing without a cluster: a stand-in `kubectl` (a shell script) that
// answers `apply`, `wait` and `logs` as a cluster would for the client pod, and runs `exec … -- cmd`
// on this machine. So ClientPod.start (the idle line → the exec command line), request, startLoad /
// underLoad (exec -i held open, "stop", the summary) run exactly as in the suite, against a real demo
// agent and policy server on 127.0.0.1. What only a cluster can show (Service DNS, kube-proxy,
// kubectl exec's stdin over the API server) is left to the scenarios themselves.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";
import { ChildHandle } from "../src/demo/processes.ts";
import { ClientPod, jsonLines } from "../src/scenarios/client.ts";
import { Cluster } from "../src/scenarios/cluster.ts";
import { describeFailures, underLoad } from "../src/scenarios/load.ts";

const ENTRY = join(REPO_ROOT, "e2e/src/image/main.ts");

const FAKE_KUBECTL = `#!/bin/bash
# A stand-in for kubectl: the client pod "exists" at once and runs commands on this machine.
set -eu
case "$1" in
  apply) cat > /dev/null; echo "pod/client created" ;;
  wait) exit 0 ;;
  logs) printf '%s\\n' "$TETHER_FAKE_IDLE_LINE" ;;
  exec) while [ "$1" != "--" ]; do shift; done; shift; exec "$@" ;;
  *) echo "fake kubectl: unsupported: $*" >&2; exit 1 ;;
esac
`;

function listeningPort(line: string): number | undefined {
  const event = jsonLines(line)[0];
  return event?.["event"] === "listening" && typeof event["port"] === "number" ? event["port"] : undefined;
}

let dir = "";
let policyServer: ChildHandle | undefined;
let agent: ChildHandle | undefined;
let agentOrigin = "";
let cluster: Cluster;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tether-fake-kubectl-"));
  const kubectl = join(dir, "kubectl");
  writeFileSync(kubectl, FAKE_KUBECTL);
  chmodSync(kubectl, 0o755);
  // The idle line the client pod's main process prints (what `kubectl logs client` returns).
  process.env["TETHER_FAKE_IDLE_LINE"] = JSON.stringify({ event: "idle", exec: [process.execPath, ENTRY] });
  cluster = new Cluster({ kubeconfig: join(dir, "no-kubeconfig"), kubectl });
  policyServer = new ChildHandle({
    name: "policy-server",
    command: process.execPath,
    args: [ENTRY, "policy-server", "--port", "0", "--host", "127.0.0.1", "--name", "ps-a"],
  });
  const psPort = await policyServer.waitForLine(listeningPort, 10_000);
  agent = new ChildHandle({
    name: "agent",
    command: process.execPath,
    args: [ENTRY, "agent", "--port", "0", "--host", "127.0.0.1", "--policy-server", `127.0.0.1:${psPort}`],
  });
  agentOrigin = `http://127.0.0.1:${await agent.waitForLine(listeningPort, 10_000)}`;
});

afterAll(async () => {
  await agent?.stop();
  await policyServer?.stop();
  delete process.env["TETHER_FAKE_IDLE_LINE"];
  rmSync(dir, { recursive: true, force: true });
});

describe("ClientPod through kubectl (a stand-in that runs exec locally)", () => {
  it("starts from the idle line, sends one request, and runs a load to its summary", async () => {
    const client = await ClientPod.start(cluster, "tether-e2e-x");
    expect(client.exec).toEqual([process.execPath, ENTRY]);

    const answer = await client.request(`${agentOrigin}/app/orders`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ allow: true, server: "ps-a" });

    let during = false;
    const summary = await underLoad(
      client,
      { target: `${agentOrigin}/app/orders`, ratePerSecond: 50 },
      async () => {
        during = true;
        // Traffic is flowing while the scenario acts: a request from the same pod is answered too.
        expect((await client.request(`${agentOrigin}/private/x`)).status).toBe(403);
      },
      { settleMs: 500 },
    );
    expect(during).toBe(true);
    expect(summary.failures, describeFailures(summary)).toBe(0);
    expect(summary.requests).toBeGreaterThan(10);
    expect(summary.servedBy).toEqual({ "ps-a": summary.requests });
  });

  it("reports a request that got no answer as an error naming it", async () => {
    const client = new ClientPod(cluster, "tether-e2e-x", "client", [process.execPath, ENTRY]);
    await expect(client.request("http://127.0.0.1:1/", { timeoutMs: 2000 })).rejects.toThrow(
      /"event":"error"/,
    );
  });

  it("a load that cannot start fails with its output", async () => {
    const client = new ClientPod(cluster, "tether-e2e-x", "client", [process.execPath, ENTRY]);
    await expect(client.startLoad({ target: "ftp://nowhere/" })).rejects.toThrow(/--target/);
  });
});
