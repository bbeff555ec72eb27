/**
 * The operator as a real process against a real kube-apiserver + etcd (+ kube-controller-manager for
 * garbage collection): children appear with the right names, labels, owners and content; updates
 * converge; missing references are reported and recover by themselves; name conflicts are left
 * alone; deletion is followed by garbage collection; a no-op resync or a restart writes nothing.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { TestCluster, type KubeJson } from "./helpers/cluster.ts";
import {
  buildOperator,
  buildSidecar,
  OperatorProcess,
  REPO_ROOT,
  validateWithSidecar,
} from "./helpers/operator-process.ts";
import { waitFor } from "./helpers/wait.ts";

let cluster: TestCluster;
let operator: OperatorProcess;
const RESYNC = "2s";

beforeAll(async () => {
  buildOperator();
  cluster = await TestCluster.start({ controllers: true });
  operator = await OperatorProcess.start({
    kubeconfig: cluster.kubeconfig,
    args: [
      "--leader-elect",
      "false",
      "--resync-period",
      RESYNC,
      "--sidecar-image",
      "registry.test/tether/sidecar:9",
    ],
  });
});

afterAll(async () => {
  // Undefined when beforeAll failed part-way.
  await (operator as OperatorProcess | undefined)?.stop();
  await (cluster as TestCluster | undefined)?.stop();
});

type Container = { name: string; image?: string; env?: { name: string; value: string }[] };
const containersOf = (d: KubeJson): Container[] =>
  (d.spec?.["template"] as { spec: { containers: Container[] } }).spec.containers;
const templateHash = (d: KubeJson): string | undefined =>
  (d.spec?.["template"] as { metadata: { annotations?: Record<string, string> } }).metadata.annotations?.[
    "tether.dev/pod-template-hash"
  ];
const envoyOf = (cm: KubeJson): Record<string, unknown> =>
  parse(cm.data?.["envoy.yaml"] ?? "") as Record<string, unknown>;

function agentManifest(name: string, psc: string, extra = ""): string {
  return `apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: ${name}}
spec:
  policyServerClusterRef: {name: ${psc}}
  template:
    spec:
      containers: [{name: agent, image: "agent:1"}]
${extra}`;
}

function pscManifest(name: string, port = 44443): string {
  return `apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ${name}}
spec:
  port: ${port}
  external:
    servers: [{host: 192.0.2.10}, {host: 192.0.2.11, priority: 1}]
`;
}

describe("quick-start examples", () => {
  beforeAll(async () => {
    await cluster.ok(["apply", "-n", "default", "-f", join(REPO_ROOT, "examples", "quick-start")]);
  });

  it("creates the Agent's Deployment and ConfigMaps with labels, owner and content", async () => {
    const agent = await cluster.waitFor("agent", "web", (o) => o.status?.["observedGeneration"] === 1);
    const deployment = await cluster.waitFor("deployment", "web", () => true);
    const sidecarCm = await cluster.waitFor("configmap", "web-sidecar", () => true);
    const agentCm = await cluster.waitFor("configmap", "web-agent-config", () => true);
    for (const child of [deployment, sidecarCm, agentCm]) {
      expect(child.metadata.labels).toMatchObject({
        "app.kubernetes.io/name": "tether",
        "app.kubernetes.io/instance": "web",
        "app.kubernetes.io/component": "agent",
        "app.kubernetes.io/managed-by": "tether-operator",
      });
      expect(child.metadata.ownerReferences).toEqual([
        expect.objectContaining({
          kind: "Agent",
          name: "web",
          uid: agent.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        }),
      ]);
    }
    const [app] = containersOf(deployment);
    // A native sidecar (the operator's default): the first init container, restartPolicy Always.
    const [sidecar] = (deployment.spec?.["template"] as { spec: { initContainers: Container[] } }).spec
      .initContainers;
    expect(sidecar?.name).toBe("tether-sidecar");
    expect((sidecar as { restartPolicy?: string } | undefined)?.restartPolicy).toBe("Always");
    expect(sidecar?.image).toBe("registry.test/tether/sidecar:9");
    expect(app?.env).toEqual(
      expect.arrayContaining([
        { name: "TETHER_POLICY_SERVER_HOST", value: "127.0.0.1" },
        { name: "TETHER_POLICY_SERVER_PORT", value: "15001" },
      ]),
    );
    expect(agentCm.data?.["agent.conf"]).toContain("DefaultAgentName=web");
    const envoy = envoyOf(sidecarCm) as {
      static_resources: { listeners: { name: string }[]; clusters: { name: string }[] };
    };
    expect(envoy.static_resources.listeners.map((l) => l.name)).toEqual([
      "policy-server",
      "http-8080",
      "tether-admin-public",
    ]);
    expect(envoy.static_resources.clusters.map((c) => c.name)).toEqual([
      "policy-server",
      "route-app",
      "tether-admin-local",
    ]);
  });

  it("creates the managed PolicyServerCluster's Deployment and headless Service", async () => {
    const svc = await cluster.waitFor("service", "ps-main", () => true);
    expect(svc.spec?.["clusterIP"]).toBe("None");
    const d = await cluster.waitFor("deployment", "ps-main", () => true);
    expect(d.metadata.labels?.["app.kubernetes.io/component"]).toBe("policy-server");
    const psc = await cluster.waitFor("psc", "ps-main", (o) => o.status?.["endpoints"] !== undefined);
    expect(psc.status?.["endpoints"]).toEqual({ ready: 0, total: 2 });
  });

  it("creates the Broker's Deployment, Service and sidecar ConfigMap", async () => {
    const d = await cluster.waitFor("deployment", "appserver-broker", () => true);
    expect(containersOf(d).map((c) => c.name)).toEqual(["tether-sidecar"]);
    const svc = await cluster.waitFor("service", "appserver-broker", () => true);
    expect((svc.spec?.["ports"] as { port: number }[])[0]?.port).toBe(20001);
    const cm = await cluster.waitFor("configmap", "appserver-broker-sidecar", () => true);
    expect(JSON.stringify(envoyOf(cm))).toContain('"address":"appserver-0.appserver"');
  });

  it("renders sidecar configs that the real sidecar validates", async () => {
    buildSidecar();
    const dir = await mkdtemp(join(tmpdir(), "tether-operator-test-"));
    try {
      for (const name of ["web-sidecar", "appserver-broker-sidecar"]) {
        const cm = await cluster.waitFor("configmap", name, () => true);
        const file = join(dir, `${name}.yaml`);
        await writeFile(file, cm.data?.["envoy.yaml"] ?? "");
        const result = await validateWithSidecar(file);
        expect({ name, ...result }).toMatchObject({ name, code: 0 });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reports status a person can act on", async () => {
    const agent = await cluster.waitFor("agent", "web", (o) => o.status?.["conditions"] !== undefined);
    const conditions = agent.status?.["conditions"] as Record<string, unknown>[];
    expect(conditions.map((c) => [c["type"], c["status"], c["reason"]])).toEqual([
      ["Ready", "False", "Progressing"],
      ["PolicyServerResolved", "True", "Resolved"],
      ["RoutesAccepted", "True", "Accepted"],
    ]);
    expect(conditions[0]?.["message"]).toBe("0/2 agent pods ready");
    const route = await cluster.waitFor("proxyroute", "app", (o) => o.status?.["conditions"] !== undefined);
    expect(route.status?.["conditions"]).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "Accepted", status: "True", observedGeneration: 1 }),
      ]),
    );
  });
});

describe("updates", () => {
  it("hot-reloads config-only changes (spec, new route) without rolling the Deployment, and rolls a template change", async () => {
    await cluster.apply(pscManifest("ps-upd"));
    await cluster.apply(agentManifest("upd", "ps-upd"));
    const before = await cluster.waitFor("deployment", "upd", () => true);
    const oldConfig = (await cluster.waitFor("configmap", "upd-sidecar", () => true)).data?.["envoy.yaml"];
    await cluster.ok([
      "patch",
      "agent",
      "upd",
      "--type=merge",
      "-p",
      '{"spec":{"reconnect":{"holdTimeout":"45s"}}}',
    ]);
    await cluster.waitFor("configmap", "upd-sidecar", (o) => o.data?.["envoy.yaml"] !== oldConfig);
    await cluster.waitFor("agent", "upd", (o) => o.status?.["observedGeneration"] === 2);
    // A new ProxyRoute is configuration too.
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: ProxyRoute
metadata: {name: upd-route}
spec:
  agentRef: {name: upd}
  listenerPort: 8081
  match: {pathPrefix: /u/}
  backend: {servers: [{host: 10.0.0.7, port: 80}]}
`);
    await cluster.waitFor("configmap", "upd-sidecar", (o) =>
      (o.data?.["envoy.yaml"] ?? "").includes("route-upd-route"),
    );
    const after = await cluster.get("deployment", "upd");
    expect(after?.metadata.generation).toBe(before.metadata.generation);
    expect(templateHash(after!)).toBe(templateHash(before));

    await cluster.ok([
      "patch",
      "agent",
      "upd",
      "--type=json",
      "-p",
      '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"agent:2"}]',
    ]);
    const rolled = await cluster.waitFor("deployment", "upd", (o) => containersOf(o)[0]?.image === "agent:2");
    expect(rolled.metadata.generation).toBeGreaterThan(before.metadata.generation ?? 0);
    expect(templateHash(rolled)).not.toBe(templateHash(before));
  });

  it("renders a changed PolicyServerCluster into its Agents' sidecar config", async () => {
    await cluster.apply(pscManifest("ps-dep", 5000));
    await cluster.apply(agentManifest("dep", "ps-dep"));
    await cluster.waitFor("configmap", "dep-sidecar", (o) =>
      (o.data?.["envoy.yaml"] ?? "").includes("port_value: 5000"),
    );
    await cluster.ok(["patch", "psc", "ps-dep", "--type=merge", "-p", '{"spec":{"port":5001}}']);
    await cluster.waitFor("configmap", "dep-sidecar", (o) =>
      (o.data?.["envoy.yaml"] ?? "").includes("port_value: 5001"),
    );
    const d = await cluster.waitFor(
      "deployment",
      "dep",
      (o) =>
        containersOf(o)[0]?.env?.some((e) => e.name === "TETHER_POLICY_SERVER_PORT" && e.value === "5001") ===
        true,
    );
    expect(d).toBeDefined();
  });
});

describe("references", () => {
  it("reports a missing PolicyServerCluster by name and recovers when it appears (any creation order)", async () => {
    await cluster.apply(agentManifest("early", "ps-late"));
    await cluster.waitFor(
      "agent",
      "early",
      (o) =>
        (o.status?.["conditions"] as Record<string, unknown>[] | undefined)?.some(
          (c) => c["type"] === "PolicyServerResolved" && c["status"] === "False",
        ) === true,
    );
    const resolved = await cluster.condition("agent", "early", "PolicyServerResolved");
    expect(resolved).toMatchObject({
      reason: "NotFound",
      message: "PolicyServerCluster ps-late not found in namespace default",
    });
    const ready = await cluster.condition("agent", "early", "Ready");
    expect(ready).toMatchObject({ status: "False", reason: "PolicyServerNotResolved" });
    expect(await cluster.get("deployment", "early")).toBeUndefined();

    await cluster.apply(pscManifest("ps-late"));
    await cluster.waitFor(
      "agent",
      "early",
      (o) =>
        (o.status?.["conditions"] as Record<string, unknown>[] | undefined)?.some(
          (c) => c["type"] === "PolicyServerResolved" && c["status"] === "True",
        ) === true,
    );
    await cluster.waitFor("deployment", "early", () => true);
  });

  it("reports a ProxyRoute whose Agent is missing, then accepts it", async () => {
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: ProxyRoute
metadata: {name: orphan}
spec:
  agentRef: {name: later}
  match: {pathPrefix: /x/}
  backend: {servers: [{host: 10.0.0.9, port: 80}]}
`);
    await cluster.waitFor("proxyroute", "orphan", (o) => o.status?.["conditions"] !== undefined);
    expect(await cluster.condition("proxyroute", "orphan", "ResolvedRefs")).toMatchObject({
      status: "False",
      reason: "AgentNotFound",
      message: "Agent later not found in namespace default",
    });
    await cluster.apply(pscManifest("ps-later"));
    await cluster.apply(agentManifest("later", "ps-later"));
    await cluster.waitFor("proxyroute", "orphan", (o) =>
      (o.status?.["conditions"] as Record<string, unknown>[]).some(
        (c) => c["type"] === "Accepted" && c["status"] === "True",
      ),
    );
    await cluster.waitFor("configmap", "later-sidecar", (o) =>
      (o.data?.["envoy.yaml"] ?? "").includes("route-orphan"),
    );
  });

  it("reports a Broker's missing backend Service and recovers when it appears", async () => {
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: Broker
metadata: {name: brk}
spec:
  port: 20002
  backends: {serviceRef: {name: appsvc, port: 50001}}
`);
    await cluster.waitFor("broker", "brk", (o) => o.status?.["conditions"] !== undefined);
    expect(await cluster.condition("broker", "brk", "Ready")).toMatchObject({
      status: "False",
      reason: "BackendNotFound",
      message: "Service appsvc not found in namespace default",
    });
    await cluster.ok(["create", "service", "clusterip", "appsvc", "-n", "default", "--tcp=50001:50001"]);
    await cluster.waitFor("broker", "brk", (o) =>
      (o.status?.["conditions"] as Record<string, unknown>[]).some((c) => c["reason"] === "Progressing"),
    );
  });

  it("answers 503 for a ProxyRoute whose backend Service is missing, then routes to the Service once it exists", async () => {
    await cluster.apply(pscManifest("ps-gone"));
    await cluster.apply(agentManifest("gone", "ps-gone"));
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: ProxyRoute
metadata: {name: gone-app}
spec:
  agentRef: {name: gone}
  match: {pathPrefix: /orders/}
  backend: {serviceRef: {name: orders, port: 8080}}
---
apiVersion: tether.dev/v1alpha1
kind: ProxyRoute
metadata: {name: gone-rest}
spec:
  agentRef: {name: gone}
  match: {pathPrefix: /}
  backend: {servers: [{host: 10.0.0.9, port: 80}]}
`);
    type Routes = { name: string; route?: { cluster: string }; direct_response?: unknown }[];
    const httpRoutes = (cm: KubeJson): Routes => {
      const envoy = envoyOf(cm) as {
        static_resources: {
          listeners: {
            name: string;
            filter_chains: {
              filters: { typed_config: { route_config: { virtual_hosts: { routes: Routes }[] } } }[];
            }[];
          }[];
        };
      };
      const http = envoy.static_resources.listeners.find((l) => l.name === "http-8080");
      return http?.filter_chains[0]?.filters[0]?.typed_config.route_config.virtual_hosts[0]?.routes ?? [];
    };
    // The condition is as for any unresolved reference; the route keeps its match with a 503.
    await cluster.waitFor("proxyroute", "gone-app", (o) => o.status?.["conditions"] !== undefined);
    expect(await cluster.condition("proxyroute", "gone-app", "ResolvedRefs")).toMatchObject({
      status: "False",
      reason: "BackendNotFound",
      message: "Service orders not found in namespace default",
    });
    expect(await cluster.condition("proxyroute", "gone-app", "Accepted")).toMatchObject({
      status: "False",
      reason: "UnresolvedRefs",
    });
    const cm = await cluster.waitFor("configmap", "gone-sidecar", (o) => httpRoutes(o).length > 0);
    const routes = httpRoutes(cm);
    expect(routes[0]).toEqual({
      name: "gone-app/any",
      match: { prefix: "/orders/" },
      direct_response: {
        status: 503,
        body: { inline_string: "ProxyRoute gone-app: backend Service orders does not exist\n" },
      },
    });
    expect(routes.slice(1).every((r) => r.route?.cluster === "route-gone-rest")).toBe(true);
    buildSidecar();
    const dir = await mkdtemp(join(tmpdir(), "tether-operator-test-"));
    try {
      const file = join(dir, "gone-sidecar.yaml");
      await writeFile(file, cm.data?.["envoy.yaml"] ?? "");
      expect(await validateWithSidecar(file)).toMatchObject({ code: 0 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    await cluster.ok(["create", "service", "clusterip", "orders", "-n", "default", "--tcp=8080:8080"]);
    await cluster.waitFor("configmap", "gone-sidecar", (o) =>
      httpRoutes(o).some((r) => r.route?.cluster === "route-gone-app"),
    );
    expect(await cluster.condition("proxyroute", "gone-app", "Accepted")).toMatchObject({ status: "True" });
  });

  it("rejects a ProxyRoute on a port the Agent already uses, naming it", async () => {
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: ProxyRoute
metadata: {name: clash-port}
spec:
  agentRef: {name: web}
  listenerPort: 15001
  match: {path: /x}
  backend: {servers: [{host: 10.0.0.9, port: 80}]}
`);
    await cluster.waitFor("proxyroute", "clash-port", (o) => o.status?.["conditions"] !== undefined);
    expect(await cluster.condition("proxyroute", "clash-port", "Accepted")).toMatchObject({
      status: "False",
      reason: "PortConflict",
      message: "listenerPort 15001 is taken by the policy-server listener of Agent web",
    });
    await cluster.waitFor("agent", "web", (o) =>
      (o.status?.["conditions"] as Record<string, unknown>[]).some(
        (c) => c["type"] === "RoutesAccepted" && c["status"] === "False",
      ),
    );
    expect((await cluster.condition("agent", "web", "RoutesAccepted"))?.["message"]).toContain(
      "ProxyRoute clash-port: listenerPort 15001",
    );
    const cm = await cluster.get("configmap", "web-sidecar");
    expect(cm?.data?.["envoy.yaml"]).not.toContain("route-clash-port");
    await cluster.ok(["delete", "proxyroute", "clash-port", "-n", "default"]);
    await cluster.waitFor("agent", "web", (o) =>
      (o.status?.["conditions"] as Record<string, unknown>[]).some(
        (c) => c["type"] === "RoutesAccepted" && c["status"] === "True",
      ),
    );
  });

  it("marks lastTransitionTime only when a condition's status changes", async () => {
    const first = await cluster.condition("agent", "later", "PolicyServerResolved");
    await cluster.ok(["patch", "agent", "later", "--type=merge", "-p", '{"spec":{"replicas":3}}']);
    await cluster.waitFor("agent", "later", (o) => o.status?.["observedGeneration"] === 2);
    const second = await cluster.condition("agent", "later", "PolicyServerResolved");
    expect(second?.["lastTransitionTime"]).toBe(first?.["lastTransitionTime"]);
    expect(second?.["observedGeneration"]).toBe(2);
  });
});

describe("children the API server refuses", () => {
  it("reports an invalid pod template in status instead of retrying forever, and recovers when fixed", async () => {
    await cluster.apply(pscManifest("ps-bad"));
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: bad}
spec:
  policyServerClusterRef: {name: ps-bad}
  template: {spec: {containers: [{name: Not_A_Dns_Label, image: "agent:1"}]}}
`);
    await cluster.waitFor(
      "agent",
      "bad",
      (o) =>
        (o.status?.["conditions"] as Record<string, unknown>[] | undefined)?.some(
          (c) => c["reason"] === "ApplyFailed",
        ) === true,
    );
    const ready = await cluster.condition("agent", "bad", "Ready");
    expect(ready?.["message"]).toContain("Deployment default/bad was rejected");
    expect(ready?.["message"]).toContain("Not_A_Dns_Label");
    expect(await cluster.get("deployment", "bad")).toBeUndefined();
    // The ConfigMaps are independent of the pod template and exist already.
    expect(await cluster.get("configmap", "bad-sidecar")).toBeDefined();
    await cluster.ok([
      "patch",
      "agent",
      "bad",
      "--type=json",
      "-p",
      '[{"op":"replace","path":"/spec/template/spec/containers/0/name","value":"agent"}]',
    ]);
    await cluster.waitFor("deployment", "bad", () => true);
    await cluster.waitFor("agent", "bad", (o) =>
      (o.status?.["conditions"] as Record<string, unknown>[]).some(
        (c) => c["type"] === "Ready" && c["reason"] === "Progressing",
      ),
    );
  });
});

describe("name conflicts", () => {
  it("leaves an object it does not control untouched and says so, then recovers when it is gone", async () => {
    await cluster.ok([
      "create",
      "configmap",
      "taken-sidecar",
      "-n",
      "default",
      "--from-literal=owner=someone-else",
    ]);
    await cluster.apply(pscManifest("ps-taken"));
    await cluster.apply(agentManifest("taken", "ps-taken"));
    await cluster.waitFor(
      "agent",
      "taken",
      (o) =>
        (o.status?.["conditions"] as Record<string, unknown>[] | undefined)?.some(
          (c) => c["reason"] === "NameConflict",
        ) === true,
    );
    const ready = await cluster.condition("agent", "taken", "Ready");
    expect(ready?.["message"]).toContain("ConfigMap default/taken-sidecar already exists");
    const cm = await cluster.get("configmap", "taken-sidecar");
    expect(cm?.data).toEqual({ owner: "someone-else" });
    expect(cm?.metadata.ownerReferences).toBeUndefined();

    await cluster.ok(["delete", "configmap", "taken-sidecar", "-n", "default"]);
    // Nothing watches unlabelled ConfigMaps: the periodic resync notices the name is free.
    const owned = await cluster.waitFor(
      "configmap",
      "taken-sidecar",
      (o) => o.metadata.ownerReferences !== undefined,
    );
    expect(owned.data?.["envoy.yaml"]).toContain("policy-server");
    await cluster.waitFor("agent", "taken", (o) =>
      (o.status?.["conditions"] as Record<string, unknown>[]).every((c) => c["reason"] !== "NameConflict"),
    );
  });
});

describe("deletion", () => {
  it("garbage-collects the children through their ownerReferences", async () => {
    await cluster.apply(pscManifest("ps-gone"));
    await cluster.apply(agentManifest("gone", "ps-gone"));
    await cluster.waitFor("deployment", "gone", () => true);
    await cluster.ok(["delete", "agent", "gone", "-n", "default"]);
    await waitFor(
      "children to be garbage-collected",
      async () => {
        const left = await Promise.all([
          cluster.get("deployment", "gone"),
          cluster.get("configmap", "gone-sidecar"),
          cluster.get("configmap", "gone-agent-config"),
        ]);
        return left.every((o) => o === undefined);
      },
      { timeoutMs: 60_000 },
    );
  });
});

describe("quiet when nothing changed", () => {
  async function resourceVersions(): Promise<Map<string, string>> {
    const items = await cluster.list(
      "agents,policyserverclusters,proxyroutes,brokers,deployments,services,configmaps",
    );
    return new Map(
      items.map((o) => [`${o.kind ?? ""}/${o.metadata.name}`, o.metadata.resourceVersion ?? ""]),
    );
  }

  it("writes nothing on resync once converged", async () => {
    await waitFor(
      "the queue to drain",
      async () => (await operator.metric("tether_operator_queue_depth")) === 0,
    );
    // Converged: two resync periods in a row without a write.
    let writes = await operator.writes();
    await waitFor(
      "a quiet period",
      async () => {
        const reconciles = await operator.reconciles();
        await waitFor("a resync", async () => (await operator.reconciles()) > reconciles + 5, {
          timeoutMs: 10_000,
        });
        const now = await operator.writes();
        const quiet = now === writes;
        writes = now;
        return quiet;
      },
      { timeoutMs: 60_000 },
    );
    const before = await resourceVersions();
    const reconcilesBefore = await operator.reconciles();
    const eventsBefore = (await cluster.list("events")).length;
    await waitFor(
      "two more resyncs",
      async () => (await operator.reconciles()) >= reconcilesBefore + 2 * 12,
      {
        timeoutMs: 20_000,
      },
    );
    expect(await operator.writes()).toBe(writes);
    expect(await resourceVersions()).toEqual(before);
    expect((await cluster.list("events")).length).toBe(eventsBefore);
  });

  it("writes nothing after an operator restart", async () => {
    const before = await resourceVersions();
    await operator.stop();
    operator = await OperatorProcess.start({
      kubeconfig: cluster.kubeconfig,
      args: [
        "--leader-elect",
        "false",
        "--resync-period",
        RESYNC,
        "--sidecar-image",
        "registry.test/tether/sidecar:9",
      ],
    });
    await waitFor("a full pass", async () => (await operator.reconciles()) >= before.size / 2, {
      timeoutMs: 20_000,
    });
    await waitFor(
      "the queue to drain",
      async () => (await operator.metric("tether_operator_queue_depth")) === 0,
    );
    expect(await operator.writes()).toBe(0);
    expect(await resourceVersions()).toEqual(before);
  });
});
