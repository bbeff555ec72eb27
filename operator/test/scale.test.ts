/**
 * Scaling through the scale subresource on a real kube-apiserver (+ kube-controller-manager with the
 * HorizontalPodAutoscaler controller): `kubectl scale` on an Agent and a Broker reaches their
 * Deployments through the operator, the /scale endpoint reports replicas and the pods' selector, and
 * an HPA targeting an Agent is accepted and can read its scale (AbleToScale).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_CONTROLLERS } from "../../e2e/src/controlplane/components.ts";
import { TestCluster, type KubeJson } from "./helpers/cluster.ts";
import { buildOperator, OperatorProcess } from "./helpers/operator-process.ts";

let cluster: TestCluster;
let operator: OperatorProcess;

beforeAll(async () => {
  buildOperator();
  cluster = await TestCluster.start({
    controllers: [...DEFAULT_CONTROLLERS, "horizontal-pod-autoscaler-controller"],
  });
  operator = await OperatorProcess.start({
    kubeconfig: cluster.kubeconfig,
    args: ["--leader-elect", "false", "--resync-period", "2s"],
  });
  await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps}
spec:
  port: 44443
  external:
    servers: [{host: 192.0.2.10}]
---
apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: web}
spec:
  policyServerClusterRef: {name: ps}
  replicas: 1
  template:
    spec:
      containers: [{name: agent, image: "agent:1"}]
---
apiVersion: tether.dev/v1alpha1
kind: Broker
metadata: {name: edge}
spec:
  port: 8443
  backends:
    servers: [{host: 192.0.2.20, port: 443}]
`);
});

afterAll(async () => {
  await (operator as OperatorProcess | undefined)?.stop();
  await (cluster as TestCluster | undefined)?.stop();
});

const replicasOf = (d: KubeJson): unknown => d.spec?.["replicas"];
const SELECTOR = (component: string, name: string): string =>
  `app.kubernetes.io/name=tether,app.kubernetes.io/instance=${name},app.kubernetes.io/component=${component}`;

describe("scale subresource", () => {
  it("kubectl scale agent web --replicas 3 and back: the Deployment follows, /scale reports the selector", async () => {
    await cluster.waitFor("agent", "web", (o) => o.status?.["selector"] === SELECTOR("agent", "web"));
    await cluster.ok(["scale", "agent", "web", "--replicas", "3", "-n", "default"]);
    await cluster.waitFor("deployment", "web", (d) => replicasOf(d) === 3);
    const scale = JSON.parse(
      await cluster.ok(["get", "--raw", "/apis/tether.dev/v1alpha1/namespaces/default/agents/web/scale"]),
    ) as { kind: string; spec: { replicas: number }; status: { selector: string } };
    expect(scale.kind).toBe("Scale");
    expect(scale.spec.replicas).toBe(3);
    expect(scale.status.selector).toBe(SELECTOR("agent", "web"));
    await cluster.ok(["scale", "agent", "web", "--replicas", "1", "-n", "default"]);
    await cluster.waitFor("deployment", "web", (d) => replicasOf(d) === 1);
  });

  it("refuses a scale past the API's bound, naming the field", async () => {
    const r = await cluster.cp.kubectl(["scale", "agent", "web", "--replicas", "101", "-n", "default"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("spec.replicas");
  });

  it("kubectl scale broker edge --replicas 2: the Deployment follows", async () => {
    await cluster.waitFor("broker", "edge", (o) => o.status?.["selector"] === SELECTOR("broker", "edge"));
    await cluster.ok(["scale", "broker", "edge", "--replicas", "2", "-n", "default"]);
    await cluster.waitFor("deployment", "edge", (d) => replicasOf(d) === 2);
  });

  it("accepts a HorizontalPodAutoscaler on an Agent, which can read and set its scale", async () => {
    await cluster.apply(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: tether.dev/v1alpha1, kind: Agent, name: web}
  minReplicas: 2
  maxReplicas: 4
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`);
    // No metrics server here: the HPA cannot compute a recommendation, but it reads the Agent's
    // scale (AbleToScale) and, below minReplicas, raises spec.replicas to 2 — the operator follows.
    const hpa = await cluster.waitFor(
      "hpa",
      "web",
      (o) =>
        ((o.status?.["conditions"] ?? []) as { type: string; status: string }[]).some(
          (c) => c.type === "AbleToScale" && c.status === "True",
        ),
      "default",
      60_000,
    );
    expect(hpa.spec?.["scaleTargetRef"]).toMatchObject({ kind: "Agent", name: "web" });
    await cluster.waitFor("agent", "web", (o) => o.spec?.["replicas"] === 2, "default", 60_000);
    await cluster.waitFor("deployment", "web", (d) => replicasOf(d) === 2);
  });
});
