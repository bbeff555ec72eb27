/**
 * Two operator processes with Lease leader election: only the leader writes; when the leader is
 * killed (SIGKILL, no release) the standby takes over within 15 s; a leader stopped with SIGTERM
 * releases the Lease so the standby takes over at once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "./helpers/cluster.ts";
import { buildOperator, OperatorProcess } from "./helpers/operator-process.ts";
import { waitFor } from "./helpers/wait.ts";

let cluster: TestCluster;
const operators: OperatorProcess[] = [];

async function startOperator(identity: string): Promise<OperatorProcess> {
  const op = await OperatorProcess.start({
    kubeconfig: cluster.kubeconfig,
    args: [
      "--leader-elect",
      "true",
      "--identity",
      identity,
      "--lease-namespace",
      "default",
      "--resync-period",
      "0",
    ],
  });
  operators.push(op);
  return op;
}

const isLeader = async (op: OperatorProcess): Promise<boolean> =>
  (await op.metric("tether_operator_leader")) === 1;

async function leaseHolder(): Promise<string | undefined> {
  const lease = await cluster.get("lease", "tether-operator");
  return lease?.spec?.["holderIdentity"] as string | undefined;
}

beforeAll(async () => {
  buildOperator();
  cluster = await TestCluster.start();
});

afterAll(async () => {
  for (const op of operators) await op.stop();
  await (cluster as TestCluster | undefined)?.stop();
});

describe("leader election", () => {
  it("lets only the leader write, and the standby take over within 15 s of the leader's death", async () => {
    const a = await startOperator("op-a");
    await waitFor("op-a to lead", () => isLeader(a), { timeoutMs: 20_000 });
    const b = await startOperator("op-b");
    await waitFor("op-b caches", async () => (await fetch(`${b.adminUrl}/readyz`)).status === 200);
    expect(await leaseHolder()).toBe("op-a");

    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps}
spec: {port: 44443, external: {servers: [{host: 192.0.2.1}]}}
---
apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: web}
spec:
  policyServerClusterRef: {name: ps}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
`);
    await cluster.waitFor("deployment", "web", () => true);
    await cluster.waitFor("agent", "web", (o) => o.status?.["observedGeneration"] === 1);
    expect(await a.writes()).toBeGreaterThan(0);
    expect(await b.writes()).toBe(0);
    expect(await isLeader(b)).toBe(false);

    a.kill("SIGKILL");
    const killedAt = Date.now();
    await a.exited;
    await waitFor("op-b to take over", () => isLeader(b), { timeoutMs: 20_000, intervalMs: 100 });
    const takeoverMs = Date.now() - killedAt;
    console.info(`leader takeover after SIGKILL: ${takeoverMs} ms`);
    expect(takeoverMs).toBeLessThanOrEqual(15_000);
    expect(await leaseHolder()).toBe("op-b");

    await cluster.ok(["patch", "agent", "web", "--type=merge", "-p", '{"spec":{"replicas":3}}']);
    await cluster.waitFor("deployment", "web", (o) => o.spec?.["replicas"] === 3);
    expect(await b.writes()).toBeGreaterThan(0);
  });

  it("hands over at once when the leader shuts down cleanly", async () => {
    const b = operators.find((op) => op.alive)!;
    const c = await startOperator("op-c");
    await waitFor("op-c caches", async () => (await fetch(`${c.adminUrl}/readyz`)).status === 200);
    expect(await isLeader(c)).toBe(false);
    const stoppedAt = Date.now();
    await b.stop();
    await waitFor("op-c to take over", () => isLeader(c), { timeoutMs: 15_000, intervalMs: 100 });
    // Released, not expired: the standby's next retry (2 s) wins.
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    await cluster.ok(["patch", "agent", "web", "--type=merge", "-p", '{"spec":{"replicas":1}}']);
    await cluster.waitFor("deployment", "web", (o) => o.spec?.["replicas"] === 1);
  });
});
