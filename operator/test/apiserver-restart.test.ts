/**
 * The API server goes away under a running operator and comes back: the operator stays up, its
 * watches restart (counted in tether_operator_watch_restarts_total), its leadership is renewed, and
 * it keeps reconciling — changes made after the restart converge.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "./helpers/cluster.ts";
import { buildOperator, OperatorProcess } from "./helpers/operator-process.ts";
import { waitFor } from "./helpers/wait.ts";

let cluster: TestCluster;
let operator: OperatorProcess;

beforeAll(async () => {
  buildOperator();
  cluster = await TestCluster.start();
  operator = await OperatorProcess.start({
    kubeconfig: cluster.kubeconfig,
    args: ["--leader-elect", "true", "--lease-namespace", "default", "--resync-period", "0"],
  });
});

afterAll(async () => {
  await (operator as OperatorProcess | undefined)?.stop();
  await (cluster as TestCluster | undefined)?.stop();
});

const agent = (name: string, replicas: number): string => `apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: ${name}}
spec:
  policyServerClusterRef: {name: ps}
  replicas: ${replicas}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
`;

describe("API server restart", () => {
  it("recovers and keeps reconciling", async () => {
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps}
spec: {port: 44443, external: {servers: [{host: 192.0.2.1}]}}
`);
    await cluster.apply(agent("before", 1));
    await cluster.waitFor("deployment", "before", () => true, "default", 30_000);
    const restartsBefore = await operator.metric("tether_operator_watch_restarts_total");

    await cluster.restartApiServer(async () => {
      // While the API server is down the operator keeps running and answers its health check.
      await waitFor(
        "the operator to notice",
        async () => (await operator.metric("tether_operator_watch_restarts_total")) > restartsBefore,
      );
      expect(operator.alive).toBe(true);
      expect((await fetch(`${operator.adminUrl}/healthz`)).status).toBe(200);
    });

    await cluster.ok(["patch", "agent", "before", "--type=merge", "-p", '{"spec":{"replicas":2}}']);
    await cluster.apply(agent("after", 1));
    await cluster.waitFor("deployment", "before", (o) => o.spec?.["replicas"] === 2, "default", 60_000);
    await cluster.waitFor("deployment", "after", () => true, "default", 60_000);
    await cluster.waitFor("agent", "after", (o) => o.status?.["observedGeneration"] === 1);
    expect(await operator.metric("tether_operator_leader")).toBe(1);
    expect(operator.alive).toBe(true);
  });
});
