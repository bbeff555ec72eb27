import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../kube/resources.ts";
import { OperatorMetrics } from "../metrics.ts";
import type {
  AckEvent,
  NackEvent,
  ResourceType,
  Snapshot,
  SnapshotServer,
  StreamInfo,
} from "../xds/contract.ts";
import type { ControllerContext, Stores, TetherKind } from "./context.ts";
import { XdsController } from "./xds.ts";

/** Just enough of a Store: objects by namespace/name. */
class FakeStore {
  readonly objects = new Map<string, KubeObject>();
  put(o: KubeObject): void {
    this.objects.set(`${o.metadata.namespace ?? ""}/${o.metadata.name}`, o);
  }
  delete(namespace: string, name: string): void {
    this.objects.delete(`${namespace}/${name}`);
  }
  get(namespace: string, name: string): KubeObject | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }
  list(namespace?: string): KubeObject[] {
    return [...this.objects.values()].filter(
      (o) => namespace === undefined || o.metadata.namespace === namespace,
    );
  }
  on(): void {}
}

/** As AdsServer: a type left out of an update keeps the group's current resources. */
class FakeServer implements SnapshotServer {
  /** Each update: the types sent, and the group's whole snapshot after it. */
  readonly set: { group: string; sent: ResourceType[]; snapshot: Snapshot }[] = [];
  readonly removed: string[] = [];
  private readonly current = new Map<string, Snapshot>();
  /** How many of the next updates to refuse, as AdsServer does a snapshot it cannot encode. */
  refuse = 0;
  nack: (e: NackEvent) => void = () => undefined;
  ack: (e: AckEvent) => void = () => undefined;
  updateSnapshot(group: string, version: string, changed: Partial<Snapshot["resources"]>): void {
    if (this.refuse > 0) {
      this.refuse--;
      throw new Error("refused");
    }
    const before = this.current.get(group)?.resources;
    const pick = <T extends ResourceType>(type: T): Snapshot["resources"][T] => {
      const resources = changed[type] ?? before?.[type];
      if (resources === undefined) throw new Error(`${group}: no ${type} resources given or kept`);
      return resources;
    };
    const snapshot: Snapshot = {
      version,
      resources: {
        cluster: pick("cluster"),
        endpoint: pick("endpoint"),
        listener: pick("listener"),
        route: pick("route"),
      },
    };
    this.current.set(group, snapshot);
    const sent = (Object.keys(changed) as ResourceType[]).filter((t) => changed[t] !== undefined);
    this.set.push({ group, sent, snapshot });
  }
  removeSnapshot(group: string): void {
    this.current.delete(group);
    this.removed.push(group);
  }
  onNack(listener: (e: NackEvent) => void): void {
    this.nack = listener;
  }
  onAck(listener: (e: AckEvent) => void): void {
    this.ack = listener;
  }
  streams(): StreamInfo[] {
    return [{ nodeId: "ns/web-1", group: "ns/agent/web", connectedAt: new Date(0), acked: {} }];
  }
  last(): Snapshot {
    const s = this.set.at(-1);
    if (s === undefined) throw new Error("no snapshot set");
    return s.snapshot;
  }
}

const ns = "ns";
const meta = (name: string, extra: Record<string, unknown> = {}): KubeObject["metadata"] => ({
  name,
  namespace: ns,
  uid: `uid-${name}`,
  ...extra,
});

function slice(
  endpoints: { ip: string; ready: boolean; serving: boolean; terminating: boolean }[],
): KubeObject {
  return {
    metadata: meta("ps-abcde", { labels: { "kubernetes.io/service-name": "ps" } }),
    addressType: "IPv4",
    ports: [{ name: "policy-server", port: 8080, protocol: "TCP" }],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating },
    })),
  };
}

function setup(): {
  stores: Record<keyof Stores, FakeStore>;
  server: FakeServer;
  xds: XdsController;
  requeued: string[];
  metrics: OperatorMetrics;
} {
  const names: (keyof Stores)[] = [
    "policyServerClusters",
    "agents",
    "brokers",
    "proxyRoutes",
    "deployments",
    "services",
    "configMaps",
    "deploymentNames",
    "configMapNames",
    "endpointSlices",
  ];
  const stores = Object.fromEntries(names.map((n) => [n, new FakeStore()])) as Record<
    keyof Stores,
    FakeStore
  >;
  stores.policyServerClusters.put({
    metadata: meta("ps"),
    spec: {
      port: 8080,
      managed: { replicas: 2, template: { spec: { containers: [{ name: "p", image: "p" }] } } },
    },
  });
  stores.agents.put({
    metadata: meta("web"),
    spec: {
      policyServerClusterRef: { name: "ps" },
      template: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
    },
  });
  stores.services.put({
    metadata: meta("ps"),
    spec: { clusterIP: "None", ports: [{ name: "policy-server", port: 8080, targetPort: 8080 }] },
  });
  stores.endpointSlices.put(
    slice([
      { ip: "10.0.0.1", ready: true, serving: true, terminating: false },
      { ip: "10.0.0.2", ready: true, serving: true, terminating: false },
    ]),
  );
  const logger = pino({ level: "silent" });
  const metrics = new OperatorMetrics();
  const ctx = {
    stores: stores as unknown as Stores,
    render: {
      sidecarImage: "s",
      clusterDomain: "cluster.local",
      xds: { host: "x.tether.svc.cluster.local", port: 18000 },
    },
    logger,
    now: () => new Date(0),
  } as unknown as ControllerContext;
  const server = new FakeServer();
  const requeued: string[] = [];
  const xds = new XdsController(ctx, {
    server,
    logger,
    metrics,
    onRejectionChange: (kind: TetherKind, namespace, name) => requeued.push(`${kind}/${namespace}/${name}`),
  });
  return { stores, server, xds, requeued, metrics };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("XdsController", () => {
  it("publishes every type again after the server refused a group's snapshot", async () => {
    const { server, xds } = setup();
    server.refuse = 1;
    xds.markNamespace(ns);
    xds.start();
    await turn();
    expect(server.set).toEqual([]);
    // Nothing was recorded as published: the same content is sent again, whole.
    xds.markNamespace(ns);
    await turn();
    expect(server.set.map((s) => [s.group, [...s.sent].sort()])).toEqual([
      ["ns/agent/web", ["cluster", "endpoint", "listener", "route"]],
    ]);
  });

  it("pushes nothing before the caches are complete, then one snapshot per Agent", async () => {
    const { server, xds } = setup();
    xds.markNamespace(ns);
    await turn();
    expect(server.set).toEqual([]);
    xds.start();
    await turn();
    expect(server.set.map((s) => s.group)).toEqual(["ns/agent/web"]);
    const snap = server.last();
    expect([...snap.resources.cluster.keys()]).toEqual(["policy-server"]);
    expect(snap.resources.cluster.get("policy-server")).toMatchObject({ type: "EDS" });
    expect([...snap.resources.listener.keys()]).toEqual(["policy-server"]);
    expect(snap.resources.route.size).toBe(0);
    expect(snap.resources.endpoint.get("policy-server")).toEqual({
      cluster_name: "policy-server",
      endpoints: [
        {
          priority: 0,
          lb_endpoints: ["10.0.0.1", "10.0.0.2"].map((address) => ({
            endpoint: { address: { socket_address: { address, port_value: 8080 } } },
            health_status: "HEALTHY",
          })),
        },
      ],
    });
  });

  it("a terminating pod becomes DRAINING, then disappears; unchanged input pushes nothing", async () => {
    const { stores, server, xds, metrics } = setup();
    xds.start();
    await turn();
    const first = server.last().version;
    xds.markNamespace(ns);
    await turn();
    expect(server.set).toHaveLength(1);
    stores.endpointSlices.put(
      slice([
        { ip: "10.0.0.1", ready: false, serving: true, terminating: true },
        { ip: "10.0.0.2", ready: true, serving: true, terminating: false },
      ]),
    );
    xds.markNamespace(ns);
    await turn();
    const second = server.last();
    expect(second.version).not.toBe(first);
    const hosts = (s: Snapshot): unknown =>
      (
        s.resources.endpoint.get("policy-server") as {
          endpoints: {
            lb_endpoints: {
              endpoint: { address: { socket_address: { address: string } } };
              health_status: string;
            }[];
          }[];
        }
      ).endpoints[0]?.lb_endpoints.map((e) => [e.endpoint.address.socket_address.address, e.health_status]);
    expect(hosts(second)).toEqual([
      ["10.0.0.1", "DRAINING"],
      ["10.0.0.2", "HEALTHY"],
    ]);
    stores.endpointSlices.put(slice([{ ip: "10.0.0.2", ready: true, serving: true, terminating: false }]));
    xds.markNamespace(ns);
    await turn();
    expect(hosts(server.last())).toEqual([["10.0.0.2", "HEALTHY"]]);
    // Only the endpoints changed: one push of EDS per change to the group's one stream, no CDS/LDS.
    const text = await metrics.registry.getSingleMetricAsString("tether_operator_xds_pushes_total");
    expect(text).toContain('tether_operator_xds_pushes_total{type="endpoint"} 3');
    expect(text).toContain('tether_operator_xds_pushes_total{type="cluster"} 1');
  });

  it("a NACK sets ConfigRejected and requeues the Agent; an ACK of a later version clears it", async () => {
    const { server, xds, requeued, metrics } = setup();
    xds.start();
    await turn();
    const version = server.last().version;
    expect(xds.configRejected("agent", ns, "web")).toBeUndefined();
    server.nack({
      nodeId: "ns/web-1",
      group: "ns/agent/web",
      type: "listener",
      version,
      nonce: "1",
      message: "listeners[0]: port 9901 in use",
      code: 3,
    });
    expect(requeued).toEqual(["Agent/ns/web"]);
    expect(xds.configRejected("agent", ns, "web")).toEqual({
      type: "ConfigRejected",
      status: "True",
      reason: "XdsNack",
      message: `sidecar ns/web-1 rejected listener version ${version}: listeners[0]: port 9901 in use`,
    });
    expect(await metrics.registry.getSingleMetricAsString("tether_operator_xds_nacks_total")).toContain(
      'tether_operator_xds_nacks_total{type="listener"} 1',
    );
    // An ACK of the rejected version (impossible) or of another type changes nothing.
    server.ack({ nodeId: "ns/web-1", group: "ns/agent/web", type: "listener", version });
    server.ack({ nodeId: "ns/web-1", group: "ns/agent/web", type: "cluster", version: "v2" });
    expect(xds.configRejected("agent", ns, "web")?.status).toBe("True");
    server.ack({ nodeId: "ns/web-1", group: "ns/agent/web", type: "listener", version: "v2" });
    expect(xds.configRejected("agent", ns, "web")).toMatchObject({ status: "False", reason: "Accepted" });
    expect(requeued).toEqual(["Agent/ns/web", "Agent/ns/web"]);
  });

  it("a deleted Agent's snapshot is removed; an unresolved PolicyServerCluster keeps the last one", async () => {
    const { stores, server, xds } = setup();
    xds.start();
    await turn();
    stores.policyServerClusters.delete(ns, "ps");
    xds.markNamespace(ns);
    await turn();
    expect(server.set).toHaveLength(1);
    expect(server.removed).toEqual([]);
    stores.agents.delete(ns, "web");
    xds.markNamespace(ns);
    await turn();
    expect(server.removed).toEqual(["ns/agent/web"]);
  });

  it("a slice change rebuilds only the endpoints of the groups using its Service, reusing the rest", async () => {
    const { stores, server, xds } = setup();
    stores.agents.put({
      metadata: meta("api"),
      spec: {
        policyServerClusterRef: { name: "ps" },
        template: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
      },
    });
    stores.services.put({ metadata: meta("backend"), spec: { ports: [{ name: "http", port: 7001 }] } });
    stores.proxyRoutes.put({
      metadata: meta("r", { creationTimestamp: "2026-01-01T00:00:00Z" }),
      spec: {
        agentRef: { name: "api" },
        listenerPort: 8081,
        match: { pathPrefix: "/app/" },
        backend: { serviceRef: { name: "backend", port: 7001 } },
      },
    });
    xds.start();
    await turn();
    expect(server.set.map((s) => s.group).sort()).toEqual(["ns/agent/api", "ns/agent/web"]);
    const before = server.set.find((s) => s.group === "ns/agent/api")?.snapshot;
    server.set.length = 0;
    // A Service no group uses: nothing to rebuild.
    xds.markService(ns, "unused");
    await turn();
    expect(server.set).toEqual([]);
    stores.endpointSlices.put({
      metadata: meta("backend-1", { labels: { "kubernetes.io/service-name": "backend" } }),
      addressType: "IPv4",
      ports: [{ name: "http", port: 7001, protocol: "TCP" }],
      endpoints: [{ addresses: ["10.9.0.1"], conditions: { ready: true } }],
    });
    xds.markService(ns, "backend");
    await turn();
    expect(server.set.map((s) => s.group)).toEqual(["ns/agent/api"]);
    const after = server.last();
    expect(after.version).not.toBe(before?.version);
    expect(JSON.stringify(after.resources.endpoint.get("route-r"))).toContain("10.9.0.1");
    // Only the endpoints are sent: the server keeps the clusters and listeners it encoded before.
    expect(server.set.at(-1)?.sent).toEqual(["endpoint"]);
    expect(after.resources.cluster).toBe(before?.resources.cluster);
    expect(after.resources.listener).toBe(before?.resources.listener);
  });
});
