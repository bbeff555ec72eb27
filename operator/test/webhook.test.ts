/**
 * The sidecar-injection webhook on a real kube-apiserver (with the deployment and replicaset
 * controllers): the operator serves it over HTTPS on loopback with a certificate from its own CA,
 * writes that CA into the MutatingWebhookConfiguration, and the API server calls it for every pod
 * created in an opted-in namespace. A Deployment naming an Agent gets pods with the Agent's sidecar;
 * other namespaces are untouched; a pod naming a missing Agent is refused with the reason.
 */
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster, type KubeJson } from "./helpers/cluster.ts";
import { join } from "node:path";
import { buildOperator, OperatorProcess, REPO_ROOT } from "./helpers/operator-process.ts";
import { waitFor } from "./helpers/wait.ts";

let cluster: TestCluster;
let operator: OperatorProcess;
let webhookPort = 0;
const CONFIGURATION = "tether-test-injector";

type Container = {
  name: string;
  image?: string;
  restartPolicy?: string;
  env?: { name: string; value?: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
};
type PodSpec = {
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string } }[];
};
const podSpec = (pod: KubeJson): PodSpec => pod.spec as unknown as PodSpec;

function webhookConfiguration(port: number): string {
  return `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: ${CONFIGURATION}}
webhooks:
  - name: inject.tether.dev
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Fail
    reinvocationPolicy: IfNeeded
    timeoutSeconds: 5
    matchPolicy: Equivalent
    clientConfig:
      url: https://localhost:${port}/mutate-pods
    namespaceSelector:
      matchLabels: {tether.dev/injection: enabled}
    rules:
      - operations: [CREATE]
        apiGroups: [""]
        apiVersions: [v1]
        resources: [pods]
        scope: Namespaced
`;
}

function deployment(name: string, agent: string): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata:
      labels: {app: ${name}}
      annotations: {tether.dev/agent: ${agent}}
    spec:
      containers:
        - name: httpd
          image: httpd:2.4
          env: [{name: LANG, value: C}]
`;
}

async function podsOf(app: string, namespace: string): Promise<KubeJson[]> {
  const out = await cluster.ok(["get", "pods", "-n", namespace, "-l", `app=${app}`, "-o", "json"]);
  return (JSON.parse(out) as { items: KubeJson[] }).items;
}

function waitForPod(app: string, namespace: string): Promise<KubeJson> {
  return waitFor(`a pod of ${namespace}/${app}`, async () => (await podsOf(app, namespace))[0], {
    timeoutMs: 30_000,
    intervalMs: 250,
  });
}

beforeAll(async () => {
  buildOperator();
  cluster = await TestCluster.start({
    controllers: ["serviceaccount-controller", "deployment-controller", "replicaset-controller"],
  });
  await cluster.ok(["create", "namespace", "tether-system"]);
  await cluster.ok(["create", "namespace", "shop"]);
  await cluster.ok(["label", "namespace", "shop", "tether.dev/injection=enabled"]);
  await cluster.ok(["create", "namespace", "plain"]);
  operator = await OperatorProcess.start({
    kubeconfig: cluster.kubeconfig,
    args: [
      "--leader-elect",
      "false",
      "--sidecar-image",
      "registry.test/tether/sidecar:9",
      "--webhook-address",
      "127.0.0.1:0",
      // The API server reaches it at https://localhost:<port>, not through a Service.
      "--webhook-extra-dns-names",
      "localhost",
      "--webhook-configuration",
      CONFIGURATION,
      "--ca-secret",
      "tether-ca",
    ],
    env: { POD_NAMESPACE: "tether-system" },
  });
  const start = operator.lines.find((l) => l["msg"] === "tether-operator starting") ?? {};
  webhookPort = Number(String(start["webhook"]).split(":").pop());
  expect(webhookPort).toBeGreaterThan(0);
  await cluster.apply(webhookConfiguration(webhookPort));
  await cluster.apply(
    `apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps}
spec:
  port: 44443
  tls:
    enabled: true
    caSecretRef: {name: ps-ca, key: ca.crt}
    serverName: ps.corp.example
  external:
    servers: [{host: 192.0.2.10}]
---
apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: web}
spec:
  policyServerClusterRef: {name: ps}
  replicas: 0
  listener: {port: 15001}
  template:
    spec:
      containers: [{name: unused, image: unused}]
`,
    "shop",
  );
  for (const ns of ["shop", "plain"]) {
    await waitFor(`the default ServiceAccount in ${ns}`, () => cluster.get("serviceaccount", "default", ns));
  }
}, 180_000);

afterAll(async () => {
  await (operator as OperatorProcess | undefined)?.stop();
  await (cluster as TestCluster | undefined)?.stop();
});

describe("sidecar-injection webhook", () => {
  it("writes the operator's CA into the MutatingWebhookConfiguration's caBundle", async () => {
    const secret = await waitFor("the CA Secret", () => cluster.get("secret", "tether-ca", "tether-system"));
    const bundle = secret.data?.["ca.crt"];
    expect(bundle).toBeTruthy();
    const configuration = await cluster.waitFor(
      "mutatingwebhookconfiguration",
      CONFIGURATION,
      (o) =>
        (o as unknown as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks[0]?.clientConfig
          .caBundle !== undefined,
    );
    const webhooks = (configuration as unknown as { webhooks: { clientConfig: { caBundle?: string } }[] })
      .webhooks;
    expect(webhooks[0]?.clientConfig.caBundle).toBe(bundle);
  });

  it("gives a Deployment's pods in an opted-in namespace the Agent's native sidecar, config and environment", async () => {
    await cluster.apply(deployment("store", "web"), "shop");
    const pod = await waitForPod("store", "shop");
    const spec = podSpec(pod);
    const sidecar = spec.initContainers?.[0];
    expect(sidecar?.name).toBe("tether-sidecar");
    expect(sidecar?.restartPolicy).toBe("Always");
    expect(sidecar?.image).toBe("registry.test/tether/sidecar:9");
    // The PolicyServerCluster's TLS Secret is mounted into the sidecar.
    expect(sidecar?.volumeMounts?.map((m) => m.mountPath)).toContain("/etc/tether/secrets/ps-ca");
    expect(spec.containers.map((c) => c.name)).toEqual(["httpd"]);
    const env = Object.fromEntries((spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      LANG: "C",
      TETHER_POLICY_SERVER_HOST: "127.0.0.1",
      TETHER_POLICY_SERVER_PORT: "15001",
    });
    const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
    expect(volumes.get("tether-sidecar-config")?.configMap?.name).toBe("web-sidecar");
    expect(volumes.get("tether-agent-config")?.configMap?.name).toBe("web-agent-config");
    expect([...volumes.values()].some((v) => v.secret?.secretName === "ps-ca")).toBe(true);
    // The workload's own labels are kept; the Agent's selector labels are not added.
    expect(pod.metadata.labels?.["app"]).toBe("store");
    expect(pod.metadata.labels?.["app.kubernetes.io/instance"]).toBeUndefined();
    expect(
      await operator.metric("tether_operator_webhook_admissions_total", { result: "injected" }),
    ).toBeGreaterThan(0);
  });

  it("injects the sidecar into examples/adopt-deployment as its README says", async () => {
    await cluster.ok(["apply", "-n", "shop", "-f", join(REPO_ROOT, "examples", "adopt-deployment")]);
    const pod = await waitForPod("shop-web", "shop");
    const spec = podSpec(pod);
    expect(spec.initContainers?.[0]?.name).toBe("tether-sidecar");
    const env = Object.fromEntries((spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    expect(env["TETHER_POLICY_SERVER_PORT"]).toBe("15001");
    expect(spec.volumes?.find((v) => v.name === "tether-sidecar-config")?.configMap?.name).toBe(
      "shop-sidecar",
    );
  });

  it("answers a review of an injected pod, as the API server stored it, with no patch (idempotent)", async () => {
    const [stored] = await podsOf("store", "shop");
    expect(stored).toBeDefined();
    const secret = await cluster.get("secret", "tether-ca", "tether-system");
    const ca = Buffer.from(secret?.data?.["ca.crt"] ?? "", "base64").toString("utf8");
    const dispatcher = new Agent({ connect: { ca, servername: "localhost" } });
    try {
      const res = await request(`https://127.0.0.1:${webhookPort}/mutate-pods`, {
        method: "POST",
        dispatcher,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          apiVersion: "admission.k8s.io/v1",
          kind: "AdmissionReview",
          request: {
            uid: "again-1",
            kind: { group: "", version: "v1", kind: "Pod" },
            operation: "CREATE",
            namespace: "shop",
            object: stored,
          },
        }),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      expect(res.statusCode).toBe(200);
      const review = (await res.body.json()) as { response: Record<string, unknown> };
      expect(review.response).toEqual({ uid: "again-1", allowed: true });
    } finally {
      await dispatcher.close();
    }
  });

  it("leaves pods alone in a namespace that did not opt in, and pods that name no Agent", async () => {
    await cluster.apply(deployment("plain-web", "web"), "plain");
    const plain = await waitForPod("plain-web", "plain");
    expect(podSpec(plain).initContainers).toBeUndefined();
    expect(podSpec(plain).containers.map((c) => c.name)).toEqual(["httpd"]);
    await cluster.apply(
      `apiVersion: v1
kind: Pod
metadata: {name: no-agent, labels: {app: no-agent}}
spec:
  containers: [{name: httpd, image: "httpd:2.4"}]
`,
      "shop",
    );
    const unnamed = await waitForPod("no-agent", "shop");
    expect(podSpec(unnamed).initContainers).toBeUndefined();
    expect(podSpec(unnamed).containers[0]?.env).toBeUndefined();
  });

  it("refuses a pod naming a missing Agent, with the reason, and the ReplicaSet reports it", async () => {
    const direct = await cluster.cp.kubectl(["apply", "-n", "shop", "-f", "-"], {
      input: `apiVersion: v1
kind: Pod
metadata: {name: orphan, annotations: {tether.dev/agent: nope}}
spec:
  containers: [{name: httpd, image: "httpd:2.4"}]
`,
    });
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toContain('admission webhook "inject.tether.dev" denied the request');
    expect(direct.stderr).toContain("annotation tether.dev/agent: Agent nope not found in namespace shop");
    await cluster.apply(deployment("shop-lost", "nope"), "shop");
    const event = await waitFor(
      "the ReplicaSet's FailedCreate event",
      async () => {
        const events = await cluster.list("events", "shop");
        return events.find(
          (e) =>
            (e as unknown as { reason?: string; message?: string }).reason === "FailedCreate" &&
            ((e as unknown as { message?: string }).message ?? "").includes("Agent nope not found"),
        );
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(event).toBeDefined();
    expect(await podsOf("shop-lost", "shop")).toEqual([]);
  });
});
