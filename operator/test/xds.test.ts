/**
 * The operator as an xDS control plane, against a real kube-apiserver: an ADS client (X1's
 * AdsClient, speaking gRPC + protobuf like a sidecar, over TLS trusting the operator's CA from the
 * tether-xds-ca ConfigMap) gets CDS, LDS and EDS for an Agent; EDS follows
 * a hand-made EndpointSlice (there is no kubelet here) through ready → terminating → gone; a NACK
 * sets ConfigRejected on the Agent with a Warning Event naming the error, and an ACK of a later
 * version clears it.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdsClient, type ResourceJson, type ResourceType } from "@tether/xds";
import { pino } from "pino";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "./helpers/cluster.ts";
import { buildOperator, OperatorProcess } from "./helpers/operator-process.ts";
import { waitFor } from "./helpers/wait.ts";

let cluster: TestCluster;
let operator: OperatorProcess;
let client: AdsClient | undefined;
/** The xDS Service's name as sidecars dial it, and the CA bundle file a sidecar mounts. */
const XDS_NAME = "tether-xds.tether-system.svc.cluster.local";
let caFile = "";

/** What the client has accepted, by type, and the NACK it should send next (once). */
const seen = new Map<ResourceType, { version: string; resources: ReadonlyMap<string, ResourceJson> }>();
let rejectNext: { type: ResourceType; message: string } | undefined;

beforeAll(async () => {
  buildOperator();
  cluster = await TestCluster.start();
  operator = await OperatorProcess.start({
    kubeconfig: cluster.kubeconfig,
    // The client here is not a pod (identities are tested in xds-auth.test.ts).
    args: ["--leader-elect", "false", "--xds-service", "tether-xds.tether-system", "--xds-auth", "false"],
  });
});

afterAll(async () => {
  await client?.stop();
  await (operator as OperatorProcess | undefined)?.stop();
  await (cluster as TestCluster | undefined)?.stop();
});

function slice(endpoints: string): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ps-x1
  labels: {kubernetes.io/service-name: ps}
addressType: IPv4
ports: [{name: policy-server, port: 44443, protocol: TCP}]
endpoints: ${endpoints}
`;
}

type Lb = { endpoint: { address: { socket_address: { address: string } } }; health_status: string };
function hosts(): string[] {
  const cla = seen.get("endpoint")?.resources.get("policy-server") as
    { endpoints: { lb_endpoints: Lb[] }[] } | undefined;
  return (cla?.endpoints ?? []).flatMap((l) =>
    l.lb_endpoints.map((e) => `${e.endpoint.address.socket_address.address} ${e.health_status}`),
  );
}

describe("xDS", () => {
  it("renders the bootstrap with dynamic_resources, tether_xds and the node identity flags", async () => {
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps}
spec:
  port: 44443
  managed:
    replicas: 2
    template: {spec: {containers: [{name: ps, image: "ps:1"}]}}
---
apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: web}
spec:
  policyServerClusterRef: {name: ps}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
`);
    const cm = await cluster.waitFor("configmap", "web-sidecar", () => true);
    const bootstrap = parse(cm.data?.["envoy.yaml"] ?? "") as Record<string, unknown>;
    expect(bootstrap["node"]).toEqual({ id: "default/web", cluster: "default/agent/web" });
    expect(bootstrap["dynamic_resources"]).toMatchObject({
      ads_config: { grpc_services: [{ envoy_grpc: { cluster_name: "tether_xds" } }] },
    });
    // xDS over TLS: the tether_xds cluster trusts the mounted bundle and checks the Service's name.
    const clusters = (bootstrap["static_resources"] as { clusters: Record<string, unknown>[] }).clusters;
    expect(clusters.find((c) => c["name"] === "tether_xds")?.["transport_socket"]).toEqual({
      name: "envoy.transport_sockets.tls",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        sni: XDS_NAME,
        common_tls_context: {
          validation_context: {
            trusted_ca: { filename: "/etc/tether/xds-ca/ca.crt" },
            match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: XDS_NAME } }],
          },
        },
      },
    });
    // The bundle: the operator's CA Secret's ca.crt, in the Agent's namespace, owned by no one.
    const bundle = await cluster.waitFor("configmap", "tether-xds-ca", () => true);
    const secret = await cluster.get("secret", "tether-ca", "default");
    const trusted = Buffer.from(secret?.data?.["ca.crt"] ?? "", "base64").toString();
    expect(trusted).toContain("-----BEGIN CERTIFICATE-----");
    expect(bundle.data?.["ca.crt"]).toBe(trusted);
    expect(bundle.metadata.labels?.["app.kubernetes.io/managed-by"]).toBe("tether-operator");
    expect(bundle.metadata.ownerReferences).toBeUndefined();
    caFile = join(mkdtempSync(join(tmpdir(), "tether-xds-ca-")), "ca.crt");
    writeFileSync(caFile, trusted);
    const deployment = await cluster.waitFor("deployment", "web", () => true);
    // A native sidecar (an init container that keeps running) by default.
    const podSpec0 = (
      deployment.spec?.["template"] as {
        spec: {
          initContainers?: { name: string; args: string[] }[];
          containers: { name: string; args: string[] }[];
        };
      }
    ).spec;
    const sidecar = [...(podSpec0.initContainers ?? []), ...podSpec0.containers].find(
      (c) => c.name === "tether-sidecar",
    );
    expect(sidecar?.args).toEqual(
      expect.arrayContaining(["--service-node", "--service-cluster", "default/agent/web"]),
    );
    // The bundle is mounted into the sidecar container only.
    const mounting = [...(podSpec0.initContainers ?? []), ...podSpec0.containers]
      .filter((c) =>
        (c as { volumeMounts?: { name: string }[] }).volumeMounts?.some((m) => m.name === "tether-xds-ca"),
      )
      .map((c) => c.name);
    expect(mounting).toEqual(["tether-sidecar"]);
    expect((podSpec0 as { volumes?: unknown[] }).volumes).toContainEqual({
      name: "tether-xds-ca",
      configMap: { name: "tether-xds-ca", defaultMode: 420 },
    });
    // The policy-server pods drain: a preStop sleep and a grace period (spec.drain defaults).
    const ps = await cluster.waitFor("deployment", "ps", () => true);
    const podSpec = (ps.spec?.["template"] as { spec: Record<string, unknown> }).spec;
    expect(podSpec["terminationGracePeriodSeconds"]).toBe(30);
    expect(podSpec["containers"]).toEqual([
      expect.objectContaining({ lifecycle: { preStop: { sleep: { seconds: 5 } } } }),
    ]);
  });

  it("serves CDS, LDS and EDS to a sidecar of the Agent; EDS follows the EndpointSlice", async () => {
    await cluster.waitFor("service", "ps", () => true);
    await cluster.apply(
      slice(`[{addresses: [10.0.0.1], conditions: {ready: true, serving: true, terminating: false}}]`),
    );
    const [host, port] = operator.xdsAddress.split(":");
    client = new AdsClient(
      {
        target: { host: host ?? "127.0.0.1", port: Number(port) },
        node: { id: "default/web-0", cluster: "default/agent/web" },
        backoff: { baseMs: 100, maxMs: 1000 },
        log: pino({ level: "silent" }),
        tls: { caFile, sni: XDS_NAME, verifyName: XDS_NAME },
      },
      {
        onResources: (type, version, resources) => {
          if (rejectNext?.type === type) {
            const message = rejectNext.message;
            rejectNext = undefined;
            return Promise.resolve(message);
          }
          seen.set(type, { version, resources });
          if (type === "cluster") {
            const eds = [...resources.values()]
              .filter((c) => c["type"] === "EDS")
              .map((c) => String(c["name"]));
            client?.subscribe("endpoint", eds);
          }
          return Promise.resolve(undefined);
        },
      },
    );
    client.start();
    await waitFor(
      "CDS, LDS and EDS",
      () => seen.has("cluster") && seen.has("listener") && seen.has("endpoint"),
    );
    expect(seen.get("cluster")?.resources.get("policy-server")).toMatchObject({
      type: "EDS",
      eds_cluster_config: { service_name: "policy-server" },
    });
    expect([...(seen.get("listener")?.resources.keys() ?? [])]).toEqual(["policy-server"]);
    expect(hosts()).toEqual(["10.0.0.1 HEALTHY"]);
    await waitFor(
      "one stream in the metrics",
      async () => (await operator.metric("tether_operator_xds_streams")) === 1,
    );

    // A rolling restart: the old pod terminates (still serving), a new one is ready.
    await cluster.apply(
      slice(`[{addresses: [10.0.0.1], conditions: {ready: false, serving: true, terminating: true}},
  {addresses: [10.0.0.2], conditions: {ready: true, serving: true, terminating: false}}]`),
    );
    await waitFor("10.0.0.1 DRAINING", () => hosts().join(",") === "10.0.0.1 DRAINING,10.0.0.2 HEALTHY");
    await cluster.apply(
      slice(`[{addresses: [10.0.0.2], conditions: {ready: true, serving: true, terminating: false}}]`),
    );
    await waitFor("10.0.0.1 gone", () => hosts().join(",") === "10.0.0.2 HEALTHY");
    // Two changes pushed to the one stream (the first response of a new stream is not a push).
    expect(await operator.metric("tether_operator_xds_pushes_total", { type: "endpoint" })).toBe(2);
  });

  it("a NACK sets ConfigRejected with an Event naming the error; a later ACK clears it", async () => {
    rejectNext = { type: "listener", message: "listener policy-server: port 44443 is taken" };
    // A listener change: the idle timeout of the tcp_proxy.
    await cluster.ok([
      "patch",
      "agent",
      "web",
      "--type",
      "merge",
      "-p",
      '{"spec":{"pool":{"idleTimeout":"7m"}}}',
    ]);
    const rejected = await waitFor("ConfigRejected True", async () => {
      const c = await cluster.condition("agent", "web", "ConfigRejected");
      return c?.["status"] === "True" ? c : undefined;
    });
    expect(rejected["reason"]).toBe("XdsNack");
    expect(String(rejected["message"])).toContain("sidecar default/web-0 rejected listener version");
    expect(String(rejected["message"])).toContain("port 44443 is taken");
    const events = await waitFor("the XdsNack Event", async () => {
      const list = await cluster.list("events");
      const found = list.filter((e) => (e as unknown as { reason?: string }).reason === "XdsNack");
      return found.length > 0 ? found : undefined;
    });
    expect((events[0] as unknown as { message: string }).message).toContain("port 44443 is taken");
    expect(await operator.metric("tether_operator_xds_nacks_total", { type: "listener" })).toBe(1);

    await cluster.ok([
      "patch",
      "agent",
      "web",
      "--type",
      "merge",
      "-p",
      '{"spec":{"pool":{"idleTimeout":"8m"}}}',
    ]);
    const cleared = await waitFor("ConfigRejected False", async () => {
      const c = await cluster.condition("agent", "web", "ConfigRejected");
      return c?.["status"] === "False" ? c : undefined;
    });
    expect(cleared["reason"]).toBe("Accepted");
  });

  it("a NACK on a standby replica is an Event at once; status stays the leader's to write", async () => {
    // A Lease someone else holds for an hour keeps a second operator a standby.
    const now = new Date().toISOString().replace(/Z$/, "000Z");
    await cluster.apply(`apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: tether-operator, namespace: default}
spec: {holderIdentity: elsewhere, leaseDurationSeconds: 3600, acquireTime: "${now}", renewTime: "${now}"}
`);
    const standby = await OperatorProcess.start({
      kubeconfig: cluster.kubeconfig,
      args: [
        "--leader-elect",
        "true",
        "--identity",
        "standby",
        "--lease-namespace",
        "default",
        "--xds-service",
        "tether-xds.tether-system",
        "--xds-auth",
        "false",
      ],
    });
    const [host, port] = standby.xdsAddress.split(":");
    const rejecting = new AdsClient(
      {
        target: { host: host ?? "127.0.0.1", port: Number(port) },
        node: { id: "default/web-1", cluster: "default/agent/web" },
        backoff: { baseMs: 100, maxMs: 1000 },
        log: pino({ level: "silent" }),
        tls: { caFile, sni: XDS_NAME, verifyName: XDS_NAME },
      },
      {
        onResources: (type) =>
          Promise.resolve(
            type === "listener" ? "listener policy-server: port 44443 is in use here" : undefined,
          ),
      },
    );
    try {
      rejecting.start();
      const event = await waitFor("the standby's XdsNack Event", async () => {
        const list = (await cluster.list("events")) as unknown as { reason?: string; message?: string }[];
        return list.find((e) => e.reason === "XdsNack" && e.message?.includes("default/web-1") === true);
      });
      expect(event.message).toContain("port 44443 is in use here");
      expect(await standby.metric("tether_operator_leader")).toBe(0);
      expect(await standby.metric("tether_operator_xds_nacks_total", { type: "listener" })).toBeGreaterThan(
        0,
      );
      // The status is the leader's; the leader never saw this NACK.
      expect((await cluster.condition("agent", "web", "ConfigRejected"))?.["status"]).toBe("False");
    } finally {
      await rejecting.stop();
      await standby.stop();
    }
  });
  it("an independent client (go-control-plane's protos and grpc-go's TLS, xds-check) gets CDS, EDS and LDS from the operator, all valid Envoy API", () => {
    const script = fileURLToPath(new URL("../../tools/xds-check/build.sh", import.meta.url));
    const built = spawnSync("bash", [script], { encoding: "utf8", timeout: 600_000 });
    const bin = built.stdout.trim().split("\n").at(-1) ?? "";
    expect(built.status, built.stderr.slice(-500)).toBe(0);
    const judged = spawnSync(
      bin,
      [
        "client",
        "--server",
        operator.xdsAddress,
        "--node-id",
        "default/web-9",
        "--node-cluster",
        "default/agent/web",
        "--expect",
        "cluster,endpoint,listener",
        "--timeout",
        "20s",
        "--ca",
        caFile,
        "--server-name",
        XDS_NAME,
      ],
      { encoding: "utf8", timeout: 60_000 },
    );
    // One JSON line per response; every resource decoded with proto.Unmarshal and ValidateAll().
    const lines = judged.stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { type: string; valid: boolean; error?: string });
    expect(judged.status, `${judged.stdout}\n${judged.stderr}`).toBe(0);
    expect(new Set(lines.map((l) => l.type))).toEqual(new Set(["cluster", "endpoint", "listener"]));
    expect(lines.filter((l) => !l.valid)).toEqual([]);
  });
});
