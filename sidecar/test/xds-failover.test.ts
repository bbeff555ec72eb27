// The built sidecar fails over between two ADS servers behind one address, as between the operator
// replicas behind the xDS Service: a front (a TCP proxy handing each new connection to the next
// server in turn, as kube-proxy does for a ClusterIP) over two @tether/xds servers, each a child
// process. The server holding the sidecar's stream dies; the sidecar reconnects to the other within a
// bound, keeps serving traffic meanwhile, and ends with the same config (same versions).
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ResourceJson } from "@tether/xds";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { exited, freePort, Sidecar, Upstream, waitFor, waitForLine } from "./support/harness.ts";
import { adsBootstrapYaml, httpListenerResource } from "./support/xds-resources.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const ADS_SERVER = path.join(here, "support/ads-server.ts");
const GROUP = "ns/agent/demo";
/** Deadline for the first ADS exchange (stream open, CDS + EDS + LDS applied) on a busy 2-core machine. */
const ADS_WAIT_MS = 20_000;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An ADS server in a child process, serving one snapshot (version "1") to GROUP. */
class AdsServerProcess {
  port = 0;
  private proc: ChildProcess | undefined;

  async start(listenerPort: number, backendPort: number, port = 0): Promise<this> {
    const snapshot = {
      group: GROUP,
      version: "1",
      cluster: [
        {
          name: "ps",
          type: "EDS",
          connect_timeout: "0.25s",
          eds_cluster_config: { eds_config: { ads: {}, resource_api_version: "V3" }, service_name: "ps" },
        },
      ],
      endpoint: [
        {
          cluster_name: "ps",
          endpoints: [
            {
              lb_endpoints: [
                {
                  endpoint: {
                    address: { socket_address: { address: "127.0.0.1", port_value: backendPort } },
                  },
                },
              ],
            },
          ],
        },
      ],
      listener: [httpListenerResource(listenerPort, "ps", "5s")] as ResourceJson[],
    };
    const args = [ADS_SERVER, "--snapshot", JSON.stringify(snapshot), "--port", String(port)];
    const proc = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "inherit"],
    });
    this.proc = proc;
    cleanups.push(() => this.kill());
    const line = await waitForLine(proc, (l) => l.includes('"listening"'), "ADS server to listen");
    this.port = (JSON.parse(line) as { listening: number }).listening;
    return this;
  }

  /** SIGKILL: the kernel closes its sockets, no GOAWAY and no gRPC status reach the sidecar. */
  async kill(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc === undefined) return;
    proc.kill("SIGKILL");
    await exited(proc);
  }
}

/** One address over several servers: each new connection goes to the next server in turn. */
class Front {
  port = 0;
  private readonly server: net.Server;
  private next = 0;
  /** Open connections by server port: the sidecar's side and the server's side. */
  readonly open = new Map<number, Set<{ client: net.Socket; upstream: net.Socket }>>();
  /** Servers whose packets vanish (a lost node): nothing is forwarded, nothing is closed. */
  private readonly lost = new Set<number>();

  private readonly ports: readonly number[];

  constructor(ports: readonly number[]) {
    this.ports = ports;
    this.server = net.createServer((client) => {
      const port = this.ports[this.next++ % this.ports.length] ?? 0;
      const upstream = net.connect(port, "127.0.0.1");
      const pair = { client, upstream };
      const set = this.open.get(port) ?? new Set();
      this.open.set(port, set);
      set.add(pair);
      // A dead server refuses: the client's connection is reset, as kube-proxy's would be.
      const done = (): void => {
        set.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", done).on("close", done);
      upstream.on("error", done).on("close", done);
      if (this.lost.has(port)) {
        client.resume(); // read and drop: a close still shows
        upstream.resume();
        return;
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    cleanups.push(() => this.stop());
    return this;
  }

  /** The server port holding exactly one open connection (the sidecar's ADS stream), if any. */
  serving(): number | undefined {
    const ports = [...this.open].filter(([, set]) => set.size > 0).map(([port]) => port);
    return ports.length === 1 ? ports[0] : undefined;
  }

  /** The server's node is lost: its connections stay open but carry nothing, new ones hang. */
  lose(port: number): void {
    this.lost.add(port);
    for (const { client, upstream } of this.open.get(port) ?? []) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      // Read and drop, so the sidecar closing its side still shows.
      client.resume();
      upstream.resume();
    }
  }

  /** Open connections to `port` that still exist (a lost server's are closed only by the sidecar). */
  connections(port: number): number {
    return this.open.get(port)?.size ?? 0;
  }

  async stop(): Promise<void> {
    for (const set of this.open.values()) {
      for (const { client, upstream } of set) {
        client.destroy();
        upstream.destroy();
      }
    }
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}

function bootstrap(
  admin: number,
  listenerPort: number,
  backendPort: number,
  xdsPort: number,
  http2Options = "{}",
): string {
  const listener = httpListenerResource(listenerPort, "backend", "5s");
  return adsBootstrapYaml({ admin, group: GROUP, listener, backendPort, xdsPort, http2Options });
}

/** Which upstream answered on `port` (a fresh connection each time). */
async function who(port: number): Promise<string> {
  const res = await request(`http://127.0.0.1:${port}/`, { reset: true });
  return (await res.body.text()).split(" ")[0] ?? "";
}

/** Every version_info in the sidecar's /config_dump (the dynamic clusters, listeners, endpoints). */
async function configVersions(s: Sidecar): Promise<string[]> {
  const text = await (await request(`http://127.0.0.1:${s.adminPort}/config_dump`)).body.text();
  return [...text.matchAll(/"version_info":"([^"]*)"/g)].map((m) => m[1] ?? "").sort();
}

async function upstream(name: string): Promise<Upstream> {
  const u = await new Upstream(await freePort(), name).start();
  cleanups.push(() => u.kill());
  return u;
}

interface Setup {
  sidecar: Sidecar;
  front: Front;
  listenerPort: number;
  victim: AdsServerProcess;
  survivor: AdsServerProcess;
  /** The config versions the sidecar runs before the failure. */
  before: string[];
}

/** Two ADS servers behind a front, a sidecar on the ADS config, and which server holds its stream. */
async function setup(http2Options?: string): Promise<Setup> {
  const [a, b] = [await upstream("a"), await upstream("b")];
  const listenerPort = await freePort();
  const servers = [
    await new AdsServerProcess().start(listenerPort, b.port),
    await new AdsServerProcess().start(listenerPort, b.port),
  ];
  const front = await new Front(servers.map((s) => s.port)).start();
  const admin = await freePort();
  const sidecar = new Sidecar(
    admin,
    Sidecar.writeConfig(bootstrap(admin, listenerPort, a.port, front.port, http2Options)),
  );
  cleanups.push(() => sidecar.stop());
  await sidecar.start();
  await waitFor("traffic on the ADS config", async () => (await who(listenerPort)) === "b", ADS_WAIT_MS);
  const servingPort = await waitFor("one ADS stream", () => front.serving());
  const victim = servers.find((s) => s.port === servingPort);
  const survivor = servers.find((s) => s.port !== servingPort);
  if (victim === undefined || survivor === undefined) throw new Error("no serving ADS server");
  const before = await configVersions(sidecar);
  expect(before.length).toBeGreaterThan(0);
  return { sidecar, front, listenerPort, victim, survivor, before };
}

/**
 * Runs `disturb`, with requests through the sidecar all along, until the sidecar's stream is on the
 * survivor and its connected gauge is 1 (within `boundMs`); the time that took, and every answer.
 */
async function failover(
  t: Setup,
  disturb: () => Promise<void> | void,
  boundMs: number,
): Promise<{ reconnectMs: number; answers: string[] }> {
  const state = { stop: false };
  const answers: string[] = [];
  const traffic = (async (): Promise<void> => {
    while (!state.stop) {
      answers.push(await who(t.listenerPort).catch((err: unknown) => `failed: ${String(err)}`));
    }
  })();
  try {
    const start = performance.now();
    await disturb();
    await waitFor(
      "the stream on the survivor",
      () => t.front.connections(t.survivor.port) === 1 && t.front.connections(t.victim.port) === 0,
      boundMs,
    );
    await waitFor(
      "connected gauge 1 on the survivor",
      async () => (await t.sidecar.metric("envoy_control_plane_connected_state")) === 1,
      boundMs,
    );
    return { reconnectMs: performance.now() - start, answers };
  } finally {
    state.stop = true;
    await traffic;
  }
}

describe("sidecar ADS reconnect back-off (retry_policy.retry_back_off)", () => {
  it("waits no longer than max_interval between attempts, so it is back within it once the server is", async () => {
    const [a, b] = [await upstream("a"), await upstream("b")];
    const listenerPort = await freePort();
    const xdsPort = await freePort();
    const server = await new AdsServerProcess().start(listenerPort, b.port, xdsPort);
    const admin = await freePort();
    const listener = httpListenerResource(listenerPort, "backend", "5s");
    const yaml = adsBootstrapYaml({
      admin,
      group: GROUP,
      listener,
      backendPort: a.port,
      xdsPort,
      retryBackOff: "{ base_interval: 0.1s, max_interval: 0.4s }",
    });
    const sidecar = new Sidecar(admin, Sidecar.writeConfig(yaml));
    cleanups.push(() => sidecar.stop());
    await sidecar.start();
    await waitFor("traffic on the ADS config", async () => (await who(listenerPort)) === "b", ADS_WAIT_MS);

    // Away for 4 s: Envoy's default back-off (0.5 s doubling to 30 s) would be drawing waits of
    // seconds by then; this one never waits more than 0.4 s.
    await server.kill();
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const back = performance.now();
    await new AdsServerProcess().start(listenerPort, b.port, xdsPort);
    await waitFor(
      "connected gauge 1",
      async () => (await sidecar.metric("envoy_control_plane_connected_state")) === 1,
      3_000,
    );
    const reconnectMs = performance.now() - back;
    console.log(`ADS back-off: reconnected ${reconnectMs.toFixed(0)} ms after the server listened again`);
    const waits = [...sidecar.logs.matchAll(/"retryInMs":(\d+)/g)].map((m) => Number(m[1]));
    expect(waits.length).toBeGreaterThanOrEqual(5);
    expect(Math.max(...waits)).toBeLessThanOrEqual(400);
    expect(await who(listenerPort)).toBe("b");
  });
});

describe("sidecar ADS failover between two servers behind one address", () => {
  it("reconnects to the other server within 3 s after the serving one is SIGKILLed, serving throughout, same config", async () => {
    const t = await setup();
    const { reconnectMs, answers } = await failover(t, () => t.victim.kill(), 3_000);
    console.log(`ADS failover: reconnected ${reconnectMs.toFixed(0)} ms after the SIGKILL`);
    expect(answers.filter((x) => x !== "b")).toEqual([]);
    expect(answers.length).toBeGreaterThan(0);
    expect(await configVersions(t.sidecar)).toEqual(t.before);
    expect(t.sidecar.logs).toMatch(/xDS stream closed; reconnecting/);
  });

  it("with connection_keepalive, notices a server that went silent (no FIN, no RST) and reconnects to the other", async () => {
    const t = await setup("{ connection_keepalive: { interval: 0.5s, timeout: 0.5s } }");
    // Silent: its connection stays open and carries nothing, as when its node is lost. The PING
    // goes unanswered within 0.5 s of being sent (at most 0.5 s later), then the next connect.
    const { reconnectMs, answers } = await failover(
      t,
      () => {
        t.front.lose(t.victim.port);
      },
      5_000,
    );
    console.log(`ADS failover: reconnected ${reconnectMs.toFixed(0)} ms after the server went silent`);
    expect(answers.filter((x) => x !== "b")).toEqual([]);
    expect(await configVersions(t.sidecar)).toEqual(t.before);
    expect(t.sidecar.logs).toMatch(/no keepalive answer within 500 ms/);
  });
});
