// AdsServer <-> AdsClient over a real socket: subscriptions, ACK/NACK, pushes only of what changed,
// reconnect after the server restarts.
import { afterEach, describe, expect, it } from "vitest";
import { AdsClient, AdsServer, TYPE_URLS } from "../src/index.ts";
import type { AckEvent, NackEvent, PushEvent, ResourceJson, ResourceType, Snapshot } from "../src/index.ts";

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const GROUP = "ns/agent/a1";

function cluster(name: string, eds = true): ResourceJson {
  return eds
    ? {
        name,
        type: "EDS",
        connect_timeout: "1s",
        eds_cluster_config: { eds_config: { ads: {}, resource_api_version: "V3" }, service_name: name },
      }
    : { name, type: "STATIC", connect_timeout: "0.25s" };
}

function endpoints(name: string, ports: number[], draining: number[] = []): ResourceJson {
  return {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: ports.map((port) => ({
          endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: port } } },
          ...(draining.includes(port) ? { health_status: "DRAINING" } : { health_status: "HEALTHY" }),
        })),
      },
    ],
  };
}

function listener(name: string, rds: string): ResourceJson {
  return {
    name,
    address: { socket_address: { address: "127.0.0.1", port_value: 15001 } },
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type":
                "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
              stat_prefix: name,
              rds: { config_source: { ads: {}, resource_api_version: "V3" }, route_config_name: rds },
              http_filters: [
                {
                  name: "envoy.filters.http.router",
                  typed_config: {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                  },
                },
              ],
            },
          },
        ],
      },
    ],
  };
}

function route(name: string, cluster: string): ResourceJson {
  return {
    name,
    virtual_hosts: [
      {
        name: "all",
        domains: ["*"],
        routes: [{ match: { prefix: "/" }, route: { cluster, timeout: "15s" } }],
      },
    ],
  };
}

function snapshot(version: string, parts: Partial<Record<ResourceType, ResourceJson[]>>): Snapshot {
  const by = (type: ResourceType): Map<string, ResourceJson> =>
    new Map((parts[type] ?? []).map((r) => [String(type === "endpoint" ? r["cluster_name"] : r["name"]), r]));
  return {
    version,
    resources: {
      cluster: by("cluster"),
      endpoint: by("endpoint"),
      listener: by("listener"),
      route: by("route"),
    },
  };
}

interface Received {
  type: ResourceType;
  version: string;
  resources: ReadonlyMap<string, ResourceJson>;
}

/** A handler recording every update; `reject` decides NACKs; waiters resolve on a predicate. */
class Recorder {
  readonly updates: Received[] = [];
  readonly states: boolean[] = [];
  reject: (r: Received) => string | undefined = () => undefined;
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];

  onResources = (
    type: ResourceType,
    version: string,
    resources: ReadonlyMap<string, ResourceJson>,
  ): Promise<string | undefined> => {
    const r = { type, version, resources };
    this.updates.push(r);
    this.check();
    return Promise.resolve(this.reject(r));
  };
  onConnectionState = (connected: boolean): void => {
    this.states.push(connected);
    this.check();
  };

  last(type: ResourceType): Received | undefined {
    return this.updates.filter((u) => u.type === type).at(-1);
  }

  /** Resolves once `pred` holds (checked on every handler event and every 10 ms), or fails at the deadline. */
  until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const poll = setInterval(() => {
        this.check();
      }, 10);
      const timer = setTimeout(() => {
        clearInterval(poll);
        reject(new Error(`timed out waiting for ${what}`));
      }, ms);
      this.waiters.push({
        pred,
        resolve: () => {
          clearTimeout(timer);
          clearInterval(poll);
          resolve();
        },
      });
    });
  }

  check(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred()) return true;
      w.resolve();
      return false;
    });
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(port = 0): Promise<{ server: AdsServer; port: number }> {
  const server = new AdsServer({ host: "127.0.0.1", port, log: silent });
  const bound = await server.start();
  cleanups.push(() => server.stop());
  return { server, port: bound.port };
}

function startClient(port: number, rec: Recorder, random = () => 0.5): AdsClient {
  const client = new AdsClient(
    {
      target: { host: "127.0.0.1", port },
      node: { id: "ns/pod-1", cluster: GROUP },
      log: silent,
      random,
      backoff: { baseMs: 50, maxMs: 200 },
    },
    rec,
  );
  client.start();
  cleanups.push(() => client.stop());
  return client;
}

describe("AdsServer <-> AdsClient", () => {
  it("delivers CDS and LDS as wildcards, EDS and RDS by subscribed name, and ACKs them", async () => {
    const { server, port } = await startServer();
    const acks: AckEvent[] = [];
    server.onAck((e) => acks.push(e));
    server.setSnapshot(
      GROUP,
      snapshot("v1", {
        cluster: [cluster("ps"), cluster("other")],
        endpoint: [endpoints("ps", [8080]), endpoints("other", [9090])],
        listener: [listener("http", "routes")],
        route: [route("routes", "ps"), route("unused", "other")],
      }),
    );
    const rec = new Recorder();
    const client = startClient(port, rec);
    await rec.until(
      () => rec.last("cluster") !== undefined && rec.last("listener") !== undefined,
      "CDS and LDS",
    );
    expect(client.connected).toBe(true);
    expect([...rec.last("cluster")!.resources.keys()].sort()).toEqual(["other", "ps"]);
    expect(rec.last("cluster")!.resources.get("ps")).toEqual(cluster("ps"));
    expect(rec.last("listener")!.resources.get("http")).toEqual(listener("http", "routes"));
    expect(rec.last("endpoint")).toBeUndefined(); // not subscribed yet

    client.subscribe("endpoint", ["ps"]);
    client.subscribe("route", ["routes"]);
    await rec.until(
      () => rec.last("endpoint") !== undefined && rec.last("route") !== undefined,
      "EDS and RDS",
    );
    expect([...rec.last("endpoint")!.resources.keys()]).toEqual(["ps"]);
    expect(rec.last("endpoint")!.resources.get("ps")).toEqual(endpoints("ps", [8080]));
    expect([...rec.last("route")!.resources.keys()]).toEqual(["routes"]);
    expect(rec.last("route")!.resources.get("routes")).toEqual(route("routes", "ps"));

    await rec.until(() => acks.length >= 4, "four ACKs");
    expect(acks.map((a) => a.type).sort()).toEqual(["cluster", "endpoint", "listener", "route"]);
    expect(acks.every((a) => a.version === "v1" && a.group === GROUP && a.nodeId === "ns/pod-1")).toBe(true);
    expect(server.streams()).toEqual([
      expect.objectContaining({
        nodeId: "ns/pod-1",
        group: GROUP,
        acked: { cluster: "v1", endpoint: "v1", listener: "v1", route: "v1" },
      }),
    ]);
    expect(client.counters).toEqual({ update_attempt: 4, update_success: 4, update_rejected: 0 });
  });

  it("pushes only the types whose content changed for the stream, CDS before EDS", async () => {
    const { server, port } = await startServer();
    const pushes: PushEvent[] = [];
    server.onPush((e) => pushes.push(e));
    const base = {
      cluster: [cluster("ps")],
      endpoint: [endpoints("ps", [8080]), endpoints("x", [1])],
      listener: [listener("http", "r")],
      route: [route("r", "ps")],
    };
    server.setSnapshot(GROUP, snapshot("v1", base));
    const rec = new Recorder();
    const client = startClient(port, rec);
    await rec.until(() => rec.last("cluster") !== undefined, "CDS");
    client.subscribe("endpoint", ["ps"]);
    await rec.until(() => rec.last("endpoint") !== undefined, "EDS");
    await rec.until(() => server.streams()[0]?.acked.endpoint === "v1", "EDS ACK");
    const before = pushes.length;

    // Only an unsubscribed endpoint changes: nothing for this stream.
    server.setSnapshot(
      GROUP,
      snapshot("v2", { ...base, endpoint: [endpoints("ps", [8080]), endpoints("x", [2])] }),
    );
    // The subscribed endpoint drains: one EDS push, nothing else.
    server.setSnapshot(
      GROUP,
      snapshot("v3", { ...base, endpoint: [endpoints("ps", [8080], [8080]), endpoints("x", [2])] }),
    );
    await rec.until(() => rec.last("endpoint")?.version === "v3", "EDS v3");
    expect(pushes.slice(before).map((p) => [p.type, p.version])).toEqual([["endpoint", "v3"]]);
    expect(rec.last("endpoint")!.resources.get("ps")).toEqual(endpoints("ps", [8080], [8080]));

    // A new cluster with its endpoints: CDS first, then EDS.
    const next = {
      ...base,
      cluster: [cluster("ps"), cluster("ps2")],
      endpoint: [endpoints("ps", [8080]), endpoints("ps2", [8081])],
    };
    server.setSnapshot(GROUP, snapshot("v4", next));
    client.subscribe("endpoint", ["ps", "ps2"]);
    await rec.until(() => rec.last("endpoint")?.resources.has("ps2") === true, "EDS with ps2");
    const order = pushes.slice(before + 1).map((p) => p.type);
    expect(order[0]).toBe("cluster");
    expect(order).toContain("endpoint");
    expect(order).not.toContain("listener");
    expect(order).not.toContain("route");
  });

  it("updates a group from the changed types only, keeping the others; a type never set must be given", async () => {
    const { server, port } = await startServer();
    const pushes: PushEvent[] = [];
    server.onPush((e) => pushes.push(e));
    expect(() => {
      server.updateSnapshot(GROUP, "v0", { cluster: new Map([["ps", cluster("ps")]]) });
    }).toThrow(/no endpoint resources given and none set before/);
    server.setSnapshot(
      GROUP,
      snapshot("v1", {
        cluster: [cluster("ps")],
        endpoint: [endpoints("ps", [8080])],
        listener: [listener("http", "r")],
      }),
    );
    const rec = new Recorder();
    const client = startClient(port, rec);
    await rec.until(() => rec.last("listener") !== undefined, "LDS");
    client.subscribe("endpoint", ["ps"]);
    await rec.until(() => server.streams()[0]?.acked.endpoint === "v1", "EDS ACK");
    const before = pushes.length;

    // Only the endpoints are given: the clusters and listeners stay as they were, and are not re-sent.
    server.updateSnapshot(GROUP, "v2", { endpoint: new Map([["ps", endpoints("ps", [9090])]]) });
    await rec.until(() => rec.last("endpoint")?.version === "v2", "EDS v2");
    expect(rec.last("endpoint")!.resources.get("ps")).toEqual(endpoints("ps", [9090]));
    expect(pushes.slice(before).map((p) => [p.type, p.version])).toEqual([["endpoint", "v2"]]);

    // A client connecting now gets the kept clusters and listeners with the new endpoints.
    const late = new Recorder();
    const second = startClient(port, late);
    await late.until(
      () => late.last("cluster") !== undefined && late.last("listener") !== undefined,
      "CDS+LDS",
    );
    expect([...late.last("cluster")!.resources.keys()]).toEqual(["ps"]);
    expect([...late.last("listener")!.resources.keys()]).toEqual(["http"]);
    expect(late.last("cluster")!.version).toBe("v2");
    second.subscribe("endpoint", ["ps"]);
    await late.until(() => late.last("endpoint") !== undefined, "EDS on the second stream");
    expect(late.last("endpoint")!.resources.get("ps")).toEqual(endpoints("ps", [9090]));
  });

  it("reports a NACK with the rejected version and keeps the stream; the client keeps its accepted version", async () => {
    const { server, port } = await startServer();
    const nacks: NackEvent[] = [];
    const acks: AckEvent[] = [];
    server.onNack((e) => nacks.push(e));
    server.onAck((e) => acks.push(e));
    server.setSnapshot(GROUP, snapshot("v1", { cluster: [cluster("ps", false)], listener: [] }));
    const rec = new Recorder();
    rec.reject = (r) =>
      r.type === "cluster" && r.version === "v2" ? "clusters[0].connect_timeout: too short" : undefined;
    const client = startClient(port, rec);
    await rec.until(() => acks.some((a) => a.type === "cluster" && a.version === "v1"), "ACK of v1");

    server.setSnapshot(
      GROUP,
      snapshot("v2", { cluster: [{ ...cluster("ps", false), connect_timeout: "0.001s" }], listener: [] }),
    );
    await rec.until(() => nacks.length === 1, "the NACK");
    expect(nacks[0]).toMatchObject({
      nodeId: "ns/pod-1",
      group: GROUP,
      type: "cluster",
      version: "v2",
      code: 3,
    });
    expect(nacks[0]!.message).toBe("clusters[0].connect_timeout: too short");
    expect(server.streams()[0]!.acked.cluster).toBe("v1");
    expect(client.counters.update_rejected).toBe(1);

    // The stream carries on: the next good snapshot is pushed and ACKed on it.
    server.setSnapshot(
      GROUP,
      snapshot("v3", { cluster: [cluster("ps", false), cluster("b", false)], listener: [] }),
    );
    await rec.until(() => acks.some((a) => a.type === "cluster" && a.version === "v3"), "ACK of v3");
    expect(rec.states).toEqual([true]);
  });

  it("NACKs a resource it cannot decode without calling the handler", async () => {
    const { server, port } = await startServer();
    const nacks: NackEvent[] = [];
    server.onNack((e) => nacks.push(e));
    // A listener whose filter carries an Any the subset does not know: the server itself refuses it.
    expect(() => {
      server.setSnapshot(
        GROUP,
        snapshot("bad", {
          listener: [
            {
              name: "l",
              listener_filters: [{ name: "x", typed_config: { "@type": "type.googleapis.com/foo.Bar" } }],
            },
          ],
        }),
      );
    }).toThrow(/listener "l".*listener_filters\[0\].typed_config.@type: unknown @type/);
    expect(() => {
      server.setSnapshot(GROUP, snapshot("bad", { cluster: [{ name: "c", conect_timeout: "1s" }] }));
    }).toThrow(/cluster "c".conect_timeout: unknown field of envoy.config.cluster.v3.Cluster/);
    const rec = new Recorder();
    startClient(port, rec);
    server.setSnapshot(GROUP, snapshot("ok", { cluster: [cluster("ps")] }));
    await rec.until(() => rec.last("cluster")?.version === "ok", "the good snapshot");
    expect(nacks).toEqual([]);
  });

  it("reconnects with back-off after the server goes away and re-sends its subscriptions", async () => {
    const first = await startServer();
    first.server.setSnapshot(
      GROUP,
      snapshot("v1", { cluster: [cluster("ps")], endpoint: [endpoints("ps", [1])] }),
    );
    const rec = new Recorder();
    const delays: number[] = [];
    const client = startClient(first.port, rec, () => {
      delays.push(1);
      return 0.5;
    });
    client.subscribe("endpoint", ["ps"]);
    await rec.until(() => rec.last("endpoint")?.version === "v1", "EDS v1");
    await first.server.stop();
    await rec.until(() => rec.states.includes(false), "disconnected");
    expect(client.connected).toBe(false);

    const second = new AdsServer({ host: "127.0.0.1", port: first.port, log: silent });
    cleanups.push(() => second.stop());
    second.setSnapshot(GROUP, snapshot("v2", { cluster: [cluster("ps")], endpoint: [endpoints("ps", [2])] }));
    await second.start();
    await rec.until(() => rec.last("endpoint")?.version === "v2", "EDS v2 from the new server");
    expect(client.connected).toBe(true);
    expect(rec.last("endpoint")!.resources.get("ps")).toEqual(endpoints("ps", [2]));
    await rec.until(() => second.streams()[0]?.acked.cluster === "v2", "ACK of v2 on the new server");
    expect(delays.length).toBeGreaterThan(0);
  });

  it("waits below the base after its first three refused connects, then backs off as usual", async () => {
    // A port nothing listens on: every connect is refused at once.
    const { server, port } = await startServer();
    await server.stop();
    const retries: { reason: string; retryInMs: number }[] = [];
    const log = {
      ...silent,
      warn(fields: object, msg: string) {
        if (msg === "xDS stream closed; reconnecting") retries.push(fields as (typeof retries)[number]);
      },
    };
    const client = new AdsClient(
      {
        target: { host: "127.0.0.1", port },
        node: { id: "ns/pod-1", cluster: GROUP },
        log,
        random: () => 0.999, // the longest wait each step allows
        backoff: { baseMs: 20, maxMs: 160 },
      },
      new Recorder(),
    );
    client.start();
    cleanups.push(() => client.stop());
    await new Recorder().until(() => retries.length >= 8, "eight refused connects", 5_000);
    const first = retries.slice(0, 8);
    expect(first.every((r) => r.reason.includes("ECONNREFUSED"))).toBe(true);
    // Three below the base, then the usual sequence from the base up to the cap.
    expect(first.map((r) => r.retryInMs)).toEqual([19, 19, 19, 19, 39, 79, 159, 159]);
  });

  it("answers a second subscription of the same type on the stream with the current state", async () => {
    const { server, port } = await startServer();
    server.setSnapshot(GROUP, snapshot("v1", { route: [route("a", "x"), route("b", "y")] }));
    const rec = new Recorder();
    const client = startClient(port, rec);
    client.subscribe("route", ["a"]);
    await rec.until(() => rec.last("route")?.resources.has("a") === true, "route a");
    client.subscribe("route", ["a", "b"]);
    await rec.until(() => rec.last("route")?.resources.size === 2, "routes a and b");
    expect(rec.last("route")!.version).toBe("v1");
    expect(TYPE_URLS.route).toBe("type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
  });
});

describe("AdsServer with a client that does not read", () => {
  it("holds at most one push per type while the stream is full, then sends the latest snapshot", async () => {
    const { server, port } = await startServer();
    // Big enough that a few responses fill the HTTP/2 window and the stream's buffer.
    const big = (v: number): Snapshot =>
      snapshot(`v${String(v)}`, {
        cluster: [{ ...cluster("ps", false), alt_stat_name: "x".repeat(200_000 + v) }],
      });
    server.setSnapshot(GROUP, big(0));
    let pushes = 0;
    server.onPush(() => {
      pushes++;
    });
    const grpc = await import("@grpc/grpc-js");
    const { ADS_METHOD } = await import("../src/wire.ts");
    const client = new grpc.Client(`127.0.0.1:${String(port)}`, grpc.credentials.createInsecure());
    cleanups.push(() => {
      client.close();
      return Promise.resolve();
    });
    const call = client.makeBidiStreamRequest(
      ADS_METHOD.path,
      ADS_METHOD.requestSerialize,
      ADS_METHOD.responseDeserialize,
    );
    call.on("error", () => undefined); // the cancel at the end
    call.write({
      version_info: "",
      node: { id: "ns/slow-1", cluster: GROUP },
      resource_names: [],
      type_url: TYPE_URLS.cluster,
      response_nonce: "",
    });
    const received: string[] = [];
    const deadline = Date.now() + 10_000;
    while (pushes === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    // 100 changes while the client reads nothing.
    for (let v = 1; v <= 100; v++) {
      server.setSnapshot(GROUP, big(v));
      await new Promise((r) => setImmediate(r));
    }
    const sentWhileStuck = pushes;
    expect(sentWhileStuck).toBeLessThan(50);
    call.on("data", (r: { version_info: string }) => received.push(r.version_info));
    while (received.at(-1) !== "v100" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(received.at(-1)).toBe("v100");
    expect(received.length).toBeLessThan(50);
    call.cancel();
  });
});
