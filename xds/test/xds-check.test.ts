// Judged by parts nobody here wrote: tools/xds-check (Go, go-control-plane + grpc-go) as the client
// of our AdsServer, and as the server (go-control-plane's snapshot cache) of our AdsClient.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { AdsClient, AdsServer } from "../src/index.ts";
import type { AckEvent, NackEvent, ResourceJson, ResourceType, Snapshot } from "../src/index.ts";

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const GROUP = "default/agent/web";
const HCM =
  "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/** The judge binary, built (or found in the cache) by its own script; undefined if Go is missing. */
function buildJudge(): { bin?: string; why: string } {
  const script = fileURLToPath(new URL("../../tools/xds-check/build.sh", import.meta.url));
  const r = spawnSync("bash", [script], { encoding: "utf8", timeout: 600_000 });
  const bin = r.stdout.trim().split("\n").at(-1);
  if (r.status !== 0 || bin === undefined || bin === "")
    return { why: `xds-check did not build: ${r.stderr.slice(-500)}` };
  return { bin, why: "" };
}
const judge = buildJudge();

const resources: Record<ResourceType, ResourceJson[]> = {
  cluster: [
    {
      name: "policy-server",
      type: "EDS",
      connect_timeout: "1s",
      lb_policy: "LEAST_REQUEST",
      eds_cluster_config: {
        eds_config: { ads: {}, resource_api_version: "V3" },
        service_name: "policy-server",
      },
      health_checks: [
        {
          timeout: "0.5s",
          interval: "1s",
          unhealthy_threshold: 2,
          healthy_threshold: 2,
          tcp_health_check: {},
        },
      ],
    },
  ],
  endpoint: [
    {
      cluster_name: "policy-server",
      endpoints: [
        {
          lb_endpoints: [
            {
              endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: 44443 } } },
              health_status: "HEALTHY",
            },
            {
              endpoint: { address: { socket_address: { address: "10.0.0.2", port_value: 44443 } } },
              health_status: "DRAINING",
            },
          ],
        },
      ],
    },
  ],
  listener: [
    {
      name: "agent_http",
      address: { socket_address: { address: "127.0.0.1", port_value: 15001 } },
      filter_chains: [
        {
          filters: [
            {
              name: "envoy.filters.network.http_connection_manager",
              typed_config: {
                "@type": HCM,
                stat_prefix: "agent_http",
                rds: {
                  config_source: { ads: {}, resource_api_version: "V3" },
                  route_config_name: "policy_routes",
                },
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
    },
  ],
  route: [
    {
      name: "policy_routes",
      virtual_hosts: [
        {
          name: "policy",
          domains: ["*"],
          routes: [
            {
              match: { prefix: "/" },
              route: {
                cluster: "policy-server",
                timeout: "15s",
                retry_policy: {
                  retry_on: "connect-failure,reset",
                  num_retries: 3,
                  retry_back_off: { base_interval: "0.100s", max_interval: "1s" },
                },
              },
            },
          ],
        },
      ],
    },
  ],
};

/** Tether's own filter in the listener's HCM, optional as the operator renders it. */
function withDecisionCache(r: Record<ResourceType, ResourceJson[]>): Record<ResourceType, ResourceJson[]> {
  const listener = structuredClone(r.listener[0]!) as {
    filter_chains: { filters: { typed_config: { http_filters: unknown[] } }[] }[];
  };
  listener.filter_chains[0]!.filters[0]!.typed_config.http_filters.unshift({
    name: "tether.filters.http.decision_cache",
    is_optional: true,
    typed_config: {
      "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache",
      ttl: "180s",
      notifications: true,
      key_headers: ["authorization", "cookie"],
      max_body_bytes: 0,
    },
  });
  return { ...r, listener: [listener] };
}

function snapshot(version: string, r: Record<ResourceType, ResourceJson[]>): Snapshot {
  const by = (type: ResourceType): Map<string, ResourceJson> =>
    new Map(r[type].map((x) => [String(type === "endpoint" ? x["cluster_name"] : x["name"]), x]));
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

/** Lines of a child's stdout as JSON, with a waiter for a line matching a predicate. */
class Lines {
  readonly all: Record<string, unknown>[] = [];
  stderr = "";
  private buffer = "";
  private waiters: {
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];

  readonly child: ChildProcessWithoutNullStreams;

  constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const text = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (text.trim() === "") continue;
        const line = JSON.parse(text) as Record<string, unknown>;
        this.all.push(line);
        this.waiters = this.waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => (this.stderr += chunk));
  }

  line(
    pred: (l: Record<string, unknown>) => boolean,
    what: string,
    ms = 20_000,
  ): Promise<Record<string, unknown>> {
    const found = this.all.find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`timed out waiting for ${what}; stderr: ${this.stderr.slice(-800)}`));
      }, ms);
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  exit(ms = 30_000): Promise<number | null> {
    if (this.child.exitCode !== null) return Promise.resolve(this.child.exitCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`xds-check did not exit; stderr: ${this.stderr.slice(-800)}`));
      }, ms);
      this.child.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }
}

/** Waits for a condition checked every 10 ms, with a deadline. */
async function until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function run(args: string[]): Lines {
  const child = spawn(judge.bin!, args, { stdio: ["pipe", "pipe", "pipe"] });
  cleanups.push(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return new Lines(child);
}

async function startServer(): Promise<{ server: AdsServer; port: number }> {
  const server = new AdsServer({ host: "127.0.0.1", port: 0, log: silent });
  const { port } = await server.start();
  cleanups.push(() => server.stop());
  return { server, port };
}

describe.skipIf(judge.bin === undefined)(`xds-check judges @tether/xds ${judge.why}`, () => {
  async function clientGetsAllFour(config: Record<ResourceType, ResourceJson[]>): Promise<void> {
    const { server, port } = await startServer();
    const acks: AckEvent[] = [];
    server.onAck((e) => acks.push(e));
    server.setSnapshot(GROUP, snapshot("v1", config));
    const client = run([
      "client",
      "--server",
      `127.0.0.1:${port}`,
      "--node-id",
      "default/web-0",
      "--node-cluster",
      GROUP,
      "--timeout",
      "20s",
      "--expect",
      "cluster,endpoint,listener,route",
    ]);
    expect(await client.exit(), `${client.stderr}\n${JSON.stringify(client.all)}`).toBe(0);
    const types = new Set(client.all.map((l) => l["type"]));
    expect([...types].sort()).toEqual(["cluster", "endpoint", "listener", "route"]);
    expect(client.all.filter((l) => l["valid"] !== true)).toEqual([]);
    await until(() => new Set(acks.map((a) => a.type)).size === 4, "four ACKs");
    expect(acks.every((a) => a.version === "v1" && a.nodeId === "default/web-0" && a.group === GROUP)).toBe(
      true,
    );
  }

  it("xds-check client gets all four types from our AdsServer, each valid Envoy API, and ACKs them", async () => {
    await clientGetsAllFour(resources);
  });

  // Envoy skips an is_optional HTTP filter whose type it does not know; so does xds-check.
  it("... with Tether's optional DecisionCache filter in the listener", async () => {
    await clientGetsAllFour(withDecisionCache(resources));
  });

  it("a NACK from xds-check client reaches onNack and the stream carries on to the next snapshot", async () => {
    const { server, port } = await startServer();
    const nacks: NackEvent[] = [];
    const acks: AckEvent[] = [];
    server.onAck((e) => acks.push(e));
    server.onNack((e) => {
      nacks.push(e);
      // The operator's answer to a NACK: a corrected snapshot, pushed on the same stream.
      server.setSnapshot(
        GROUP,
        snapshot("v2", { ...resources, cluster: [{ ...resources.cluster[0]!, connect_timeout: "2s" }] }),
      );
    });
    server.setSnapshot(GROUP, snapshot("v1", resources));
    const client = run([
      "client",
      "--server",
      `127.0.0.1:${port}`,
      "--node-id",
      "default/web-0",
      "--node-cluster",
      GROUP,
      "--timeout",
      "20s",
      "--expect",
      "cluster,endpoint,listener,route",
      "--nack-first",
      "cluster",
    ]);
    expect(await client.exit(), `${client.stderr}\n${JSON.stringify(client.all)}`).toBe(0);
    expect(nacks).toHaveLength(1);
    expect(nacks[0]).toMatchObject({ nodeId: "default/web-0", group: GROUP, type: "cluster", version: "v1" });
    expect(nacks[0]!.message).not.toBe("");
    await until(
      () => acks.some((a) => a.type === "cluster" && a.version === "v2"),
      "the ACK of v2 on the same stream",
    );
    const clusterLines = client.all.filter((l) => l["type"] === "cluster");
    expect(clusterLines.map((l) => l["version"])).toEqual(["v1", "v2"]);
  });

  async function serverFeedsOurClient(config: Record<ResourceType, ResourceJson[]>): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "xds-check-"));
    cleanups.push(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    const file = join(dir, "snapshot.json");
    const withType = (type: ResourceType, list: ResourceJson[]): ResourceJson[] =>
      list.map((r) => ({ "@type": `type.googleapis.com/${typeName[type]}`, ...r }));
    const typeName: Record<ResourceType, string> = {
      cluster: "envoy.config.cluster.v3.Cluster",
      endpoint: "envoy.config.endpoint.v3.ClusterLoadAssignment",
      listener: "envoy.config.listener.v3.Listener",
      route: "envoy.config.route.v3.RouteConfiguration",
    };
    const write = (version: string, r: Record<ResourceType, ResourceJson[]>): void => {
      const body = {
        version,
        clusters: withType("cluster", r.cluster),
        endpoints: withType("endpoint", r.endpoint),
        listeners: withType("listener", r.listener),
        routes: withType("route", r.route),
      };
      writeFileSync(file, JSON.stringify(body));
    };
    write("1", config);
    const server = run(["server", "--listen", "127.0.0.1:0", "--snapshot", file]);
    const listening = String(
      (await server.line((l) => typeof l["listening"] === "string", "listening"))["listening"],
    );
    const port = Number(listening.slice(listening.lastIndexOf(":") + 1));

    const got = new Map<ResourceType, { version: string; resources: ReadonlyMap<string, ResourceJson> }>();
    let client: AdsClient | undefined = undefined;
    client = new AdsClient(
      { target: { host: "127.0.0.1", port }, node: { id: "default/web-0", cluster: GROUP }, log: silent },
      {
        onResources: (type, version, res) => {
          got.set(type, { version, resources: res });
          // As the sidecar does: subscribe to what the clusters and listeners reference.
          if (type === "cluster") client?.subscribe("endpoint", [...res.keys()]);
          if (type === "listener") client?.subscribe("route", ["policy_routes"]);
          return Promise.resolve(undefined);
        },
      },
    );
    client.start();
    cleanups.push(() => client.stop());

    await until(() => got.size === 4, "all four types from xds-check server");
    expect(got.get("cluster")!.resources.get("policy-server")).toMatchObject({
      name: "policy-server",
      type: "EDS",
    });
    expect(got.get("endpoint")!.resources.get("policy-server")).toEqual(resources.endpoint[0]);
    expect(got.get("route")!.resources.get("policy_routes")).toEqual(resources.route[0]);
    expect(got.get("listener")!.resources.get("agent_http")).toEqual(config.listener[0]);
    for (const type of ["cluster", "endpoint", "listener", "route"]) {
      await server.line(
        (l) => l["type"] === type && l["ack"] === true && l["version"] === "1",
        `the ACK of ${type}`,
      );
    }
    expect(client.connected).toBe(true);
    expect(client.counters.update_rejected).toBe(0);

    // A new snapshot: one endpoint stops draining, a new one appears.
    const endpoints = [
      {
        endpoint: { address: { socket_address: { address: "10.0.0.3", port_value: 44443 } } },
        health_status: "HEALTHY",
      },
    ];
    write("2", {
      ...config,
      endpoint: [{ cluster_name: "policy-server", endpoints: [{ lb_endpoints: endpoints }] }],
    });
    server.child.kill("SIGHUP");
    await until(() => got.get("endpoint")?.version === "2", "the SIGHUP snapshot");
    expect(got.get("endpoint")!.resources.get("policy-server")).toEqual({
      cluster_name: "policy-server",
      endpoints: [{ lb_endpoints: endpoints }],
    });
    await server.line(
      (l) => l["type"] === "endpoint" && l["ack"] === true && l["version"] === "2",
      "the ACK of endpoint version 2",
    );
  }

  it("our AdsClient gets all four types from xds-check server, ACKs them, and follows a SIGHUP snapshot change", async () => {
    await serverFeedsOurClient(resources);
  });
});
