// The built sidecar as an ADS client of @tether/xds's AdsServer (in this process), over real sockets:
// static config first, then the ADS config; EDS changes touch only the hosts that changed; DRAINING
// hosts take no new requests while in-flight ones finish; an invalid resource is NACKed and the old
// config keeps serving; the control plane going away keeps the last config and the gauge follows.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  AdsServer,
  TYPE_URLS,
  type NackEvent,
  type ResourceJson,
  type Snapshot,
  type TlsIdentity,
} from "@tether/xds";
import { createLogger } from "../src/log.ts";
import { request } from "undici";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  exited,
  freePort,
  makeCertificates,
  Sidecar,
  Upstream,
  waitFor,
  waitForLine,
} from "./support/harness.ts";
import { adsBootstrapYaml, httpListenerResource } from "./support/xds-resources.ts";

const here = path.dirname(fileURLToPath(import.meta.url));

const GROUP = "ns/agent/demo";
/** Deadline for the first ADS exchange (stream open, CDS + EDS + LDS applied) on a busy 2-core machine. */
const ADS_WAIT_MS = 20_000;
const log = createLogger("silent");

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function edsCluster(name: string): ResourceJson {
  return {
    name,
    type: "EDS",
    connect_timeout: "0.25s",
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: "V3" }, service_name: name },
  };
}

type Endpoint = { port: number; status?: "HEALTHY" | "DRAINING" | "UNHEALTHY" };

function assignment(name: string, endpoints: readonly Endpoint[]): ResourceJson {
  return {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: endpoints.map((e) => ({
          endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: e.port } } },
          health_status: e.status ?? "HEALTHY",
        })),
      },
    ],
  };
}

function snapshot(
  version: string,
  listenerPort: number,
  endpoints: readonly Endpoint[],
  listener: ResourceJson = httpListenerResource(listenerPort, "ps", "5s"),
): Snapshot {
  return {
    version,
    resources: {
      cluster: new Map([["ps", edsCluster("ps")]]),
      endpoint: new Map([["ps", assignment("ps", endpoints)]]),
      listener: new Map([["http", listener]]),
      route: new Map(),
    },
  };
}

/** The ADS cluster's TLS as the operator renders it: trust `caFile`, SNI and SAN `name`. */
function xdsTlsYaml(caFile: string, name: string): string {
  return `
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: ${name}
          common_tls_context:
            validation_context:
              trusted_ca: { filename: ${caFile} }
              match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: ${name} } }]`;
}

/** A bootstrap serving `backend` (static) on `listenerPort`, with ADS to localhost:`xdsPort`. */
function bootstrap(
  admin: number,
  listenerPort: number,
  backendPort: number,
  xdsPort: number,
  xdsTls = "",
): string {
  const listener = httpListenerResource(listenerPort, "backend", "5s");
  return adsBootstrapYaml({
    admin,
    group: GROUP,
    listener,
    backendPort,
    xdsPort,
    xdsHost: "localhost",
    xdsTls,
  });
}

/** Which upstream answered `path` on `port` (a fresh connection each time). */
async function who(port: number, path = "/"): Promise<string> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { reset: true });
  return (await res.body.text()).split(" ")[0] ?? "";
}

async function upstream(name: string): Promise<Upstream> {
  const u = await new Upstream(await freePort(), name).start();
  cleanups.push(() => u.kill());
  return u;
}

async function adsServer(
  port = 0,
  tls?: TlsIdentity,
): Promise<{ server: AdsServer; port: number; nacks: NackEvent[] }> {
  const server = new AdsServer({ host: "127.0.0.1", port, log, ...(tls === undefined ? {} : { tls }) });
  const nacks: NackEvent[] = [];
  server.onNack((e) => nacks.push(e));
  const started = await server.start();
  cleanups.push(() => server.stop());
  return { server, port: started.port, nacks };
}

async function sidecarWith(
  listenerPort: number,
  backendPort: number,
  xdsPort: number,
  xdsTls = "",
): Promise<Sidecar> {
  const admin = await freePort();
  const s = new Sidecar(
    admin,
    Sidecar.writeConfig(bootstrap(admin, listenerPort, backendPort, xdsPort, xdsTls)),
  );
  cleanups.push(() => s.stop());
  return s.start();
}

/** `/clusters` host stat (e.g. rq_total) of `cluster`'s host 127.0.0.1:`port`. */
async function hostStat(s: Sidecar, cluster: string, port: number, stat: string): Promise<string> {
  const text = await (await request(`http://127.0.0.1:${s.adminPort}/clusters`)).body.text();
  const line = text.split("\n").find((l) => l.startsWith(`${cluster}::127.0.0.1:${port}::${stat}::`));
  return line?.split("::")[3] ?? "";
}

/** go-control-plane's snapshot file for `xds-check server`: every resource with its "@type". */
function snapshotFile(s: Snapshot): string {
  const typed = (type: keyof typeof TYPE_URLS): ResourceJson[] =>
    [...s.resources[type].values()].map((r) => ({ "@type": TYPE_URLS[type], ...r }));
  return JSON.stringify({
    version: s.version,
    clusters: typed("cluster"),
    endpoints: typed("endpoint"),
    listeners: typed("listener"),
    routes: typed("route"),
  });
}

interface ServerRequestLine {
  type: string;
  version: string;
  ack: boolean;
  error?: string;
  node_id: string;
}

/** `xds-check server` (go-control-plane's reference server) as a child process. */
class GoControlPlane {
  proc: ChildProcess | undefined;
  readonly lines: ServerRequestLine[] = [];
  port = 0;
  private readonly file: string;
  private readonly bin: string;

  constructor(bin: string) {
    this.bin = bin;
    this.file = path.join(mkdtempSync(path.join(os.tmpdir(), "tether-gcp-")), "snapshot.json");
  }

  async start(s: Snapshot): Promise<this> {
    writeFileSync(this.file, snapshotFile(s));
    const proc = spawn(this.bin, ["server", "--listen", "127.0.0.1:0", "--snapshot", this.file], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    this.proc = proc;
    let buf = "";
    proc.stdout.on("data", (c: Buffer) => {
      buf += c.toString();
      let i;
      while ((i = buf.indexOf("\n")) !== -1) {
        const line = JSON.parse(buf.slice(0, i)) as ServerRequestLine & { listening?: string };
        buf = buf.slice(i + 1);
        if (line.listening === undefined) this.lines.push(line);
      }
    });
    const ready = await waitForLine(proc, (l) => l.includes('"listening"'), "xds-check server to listen");
    this.port = Number((JSON.parse(ready) as { listening: string }).listening.split(":").at(-1));
    return this;
  }

  /** Writes the new snapshot and SIGHUPs the server, which sets it and pushes what changed. */
  update(s: Snapshot): void {
    writeFileSync(this.file, snapshotFile(s));
    this.proc?.kill("SIGHUP");
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc === undefined) return;
    proc.kill("SIGKILL");
    await exited(proc);
  }
}

describe("sidecar as an ADS client (@tether/xds AdsServer)", () => {
  it("serves the static config first, then the ADS config; EDS changes touch only the hosts that changed", async () => {
    const [a, b, c] = [await upstream("a"), await upstream("b"), await upstream("c")];
    const { server, port: xdsPort } = await adsServer();
    const listenerPort = await freePort();
    const s = await sidecarWith(listenerPort, a.port, xdsPort);
    // No snapshot yet: the static config serves.
    expect(await who(listenerPort)).toBe("a");
    await waitFor(
      "connected gauge 1",
      async () => (await s.metric("envoy_control_plane_connected_state")) === 1,
      ADS_WAIT_MS,
    );

    server.setSnapshot(GROUP, snapshot("1", listenerPort, [{ port: b.port }]));
    await waitFor("traffic on the ADS config", async () => (await who(listenerPort)) === "b", ADS_WAIT_MS);
    for (let i = 0; i < 5; i++) expect(await who(listenerPort)).toBe("b");
    expect(await s.metric("envoy_cluster_manager_cds_update_success")).toBe(1);
    expect(await s.metric("envoy_listener_manager_lds_update_success")).toBe(1);
    // The static backend cluster is gone; the ADS cluster stays.
    const clusters = await (await request(`http://127.0.0.1:${s.adminPort}/clusters`)).body.text();
    expect(clusters).not.toContain("backend::");
    expect(clusters).toContain("tether_xds::");
    const bRequests = Number(await hostStat(s, "ps", b.port, "rq_total"));
    expect(bRequests).toBeGreaterThanOrEqual(6);

    // EDS adds c: traffic reaches c, and b is the same host (its counters were not reset).
    server.setSnapshot(GROUP, snapshot("2", listenerPort, [{ port: b.port }, { port: c.port }]));
    await waitFor("traffic on c", async () => (await who(listenerPort)) === "c");
    expect(Number(await hostStat(s, "ps", b.port, "rq_total"))).toBeGreaterThanOrEqual(bRequests);
    expect(await s.metric("envoy_cluster_update_success", "ps")).toBeGreaterThanOrEqual(1);
    // The cluster was not rebuilt: one CDS update only.
    expect(await s.metric("envoy_cluster_manager_cds_update_success")).toBe(1);

    // EDS removes b: only c serves.
    server.setSnapshot(GROUP, snapshot("3", listenerPort, [{ port: c.port }]));
    await waitFor("b removed", async () => (await hostStat(s, "ps", b.port, "rq_total")) === "");
    for (let i = 0; i < 5; i++) expect(await who(listenerPort)).toBe("c");
    const dump = JSON.stringify(
      await (await request(`http://127.0.0.1:${s.adminPort}/config_dump`)).body.json(),
    );
    expect(dump).toContain("envoy.admin.v3.ClustersConfigDump");
    expect(dump).toContain('"dynamic_active_clusters":[{"version_info":"1"');
    expect(dump).toContain('"dynamic_endpoint_configs":[{"version_info":"3"');
  });

  it("connects over TLS as the ADS cluster's UpstreamTlsContext says; refuses a server its CA does not vouch for", async () => {
    const [a, b] = [await upstream("a"), await upstream("b")];
    const certs = makeCertificates(); // server.pem: DNS:policy.test, signed by ca.pem
    const identity = { certPem: readFileSync(certs.cert, "utf8"), keyPem: readFileSync(certs.key, "utf8") };
    const { server, port: xdsPort } = await adsServer(0, identity);
    const trusting = await freePort();
    const s = await sidecarWith(trusting, a.port, xdsPort, xdsTlsYaml(certs.ca, "policy.test"));
    server.setSnapshot(GROUP, snapshot("1", trusting, [{ port: b.port }]));
    await waitFor(
      "traffic on the ADS config over TLS",
      async () => (await who(trusting)) === "b",
      ADS_WAIT_MS,
    );
    expect(await s.metric("envoy_control_plane_connected_state")).toBe(1);

    // Another CA: the handshake fails, the static config keeps serving, the gauge stays 0.
    const distrusting = await freePort();
    const other = await sidecarWith(distrusting, a.port, xdsPort, xdsTlsYaml(certs.wrongCa, "policy.test"));
    if (other.proc === undefined) throw new Error("the second sidecar is not running");
    await waitForLine(other.proc, (l) => l.includes("unable to verify"), "a failed TLS handshake");
    expect(await who(distrusting)).toBe("a");
    expect(await other.metric("envoy_control_plane_connected_state")).toBe(0);
    expect(server.streams().map((st) => st.nodeId)).toEqual(["ns/pod-1"]);
  });

  it("holds requests while EDS lists no endpoint (every server restarting) and serves them once one appears", async () => {
    const [a, b, c] = [await upstream("a"), await upstream("b"), await upstream("c")];
    const { server, port: xdsPort } = await adsServer();
    const listenerPort = await freePort();
    const s = await sidecarWith(listenerPort, a.port, xdsPort);
    // The route retries connect failures with back-off, as the operator renders for policy servers.
    const listener = httpListenerResource(listenerPort, "ps", "5s");
    const route = JSON.parse(
      JSON.stringify(listener).replace(
        '"timeout":"5s"',
        '"timeout":"15s","retry_policy":{"retry_on":"connect-failure,reset","num_retries":30,"retry_back_off":{"base_interval":"0.1s","max_interval":"1s"}}',
      ),
    ) as ResourceJson;
    server.setSnapshot(GROUP, snapshot("1", listenerPort, [{ port: b.port }], route));
    await waitFor("traffic on the ADS config", async () => (await who(listenerPort)) === "b", ADS_WAIT_MS);

    server.setSnapshot(GROUP, snapshot("2", listenerPort, [], route));
    await waitFor("b removed", async () => (await hostStat(s, "ps", b.port, "rq_total")) === "");
    const held = Array.from({ length: 3 }, async () => {
      const res = await request(`http://127.0.0.1:${listenerPort}/`, { reset: true });
      return { status: res.statusCode, body: await res.body.text(), at: performance.now() };
    });
    await waitFor("requests held", async () => (await s.metric("tether_held_requests", "ps")) === 3);
    const pushedAt = performance.now();
    server.setSnapshot(GROUP, snapshot("3", listenerPort, [{ port: c.port }], route));
    const answers = await Promise.all(held);
    for (const answer of answers) {
      expect(answer.status, answer.body).toBe(200);
      expect(answer.body.split(" ")[0]).toBe("c");
      expect(answer.at).toBeGreaterThan(pushedAt);
    }
  });

  it("a DRAINING host gets no new requests while an in-flight one finishes, then its idle connections close", async () => {
    const [a, b, c] = [await upstream("a"), await upstream("b"), await upstream("c")];
    const { server, port: xdsPort } = await adsServer();
    const listenerPort = await freePort();
    const s = await sidecarWith(listenerPort, a.port, xdsPort);
    server.setSnapshot(GROUP, snapshot("1", listenerPort, [{ port: b.port }]));
    await waitFor("traffic on the ADS config", async () => (await who(listenerPort)) === "b", ADS_WAIT_MS);

    const inFlight = request(`http://127.0.0.1:${listenerPort}/slow?ms=1500`, { reset: true }).then(
      async (res) => ({ status: res.statusCode, body: await res.body.text() }),
    );
    await waitFor(
      "the slow request on b",
      async () => (await hostStat(s, "ps", b.port, "rq_active")) === "1",
    );
    server.setSnapshot(
      GROUP,
      snapshot("2", listenerPort, [{ port: b.port, status: "DRAINING" }, { port: c.port }]),
    );
    await waitFor("b draining", async () =>
      (await s.healthFlags("ps", b.port)).includes("/eds_status_draining"),
    );
    for (let i = 0; i < 10; i++) expect(await who(listenerPort)).toBe("c");
    const finished = await inFlight;
    expect(finished.status).toBe(200);
    expect(finished.body.startsWith("b GET /slow")).toBe(true);
    // The pooled connection that carried it closes once it is idle.
    await waitFor("b's connections closed", async () => (await b.stats()).openConnections === 1);
  });

  it("NACKs an invalid resource with the path-named problem and keeps serving the old config", async () => {
    const [a, b] = [await upstream("a"), await upstream("b")];
    const { server, port: xdsPort, nacks } = await adsServer();
    const listenerPort = await freePort();
    const s = await sidecarWith(listenerPort, a.port, xdsPort);
    server.setSnapshot(GROUP, snapshot("1", listenerPort, [{ port: b.port }]));
    await waitFor("traffic on the ADS config", async () => (await who(listenerPort)) === "b", ADS_WAIT_MS);

    server.setSnapshot(
      GROUP,
      snapshot("2", listenerPort, [{ port: b.port }], httpListenerResource(listenerPort, "nope", "5s")),
    );
    const nack = await waitFor("a NACK", () => nacks.find((n) => n.type === "listener"));
    expect(nack.version).toBe("2");
    expect(nack.message).toContain(
      'listener "http": filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster "nope"',
    );
    await waitFor(
      "lds rejected",
      async () => (await s.metric("envoy_listener_manager_lds_update_rejected")) === 1,
    );
    for (let i = 0; i < 5; i++) expect(await who(listenerPort)).toBe("b");
  });

  it("keeps the last config while the control plane is away and reconnects (gauge 1 → 0 → 1)", async () => {
    const [a, b] = [await upstream("a"), await upstream("b")];
    const first = await adsServer();
    const listenerPort = await freePort();
    const s = await sidecarWith(listenerPort, a.port, first.port);
    first.server.setSnapshot(GROUP, snapshot("1", listenerPort, [{ port: b.port }]));
    await waitFor("traffic on the ADS config", async () => (await who(listenerPort)) === "b", ADS_WAIT_MS);

    await first.server.stop();
    await waitFor(
      "connected gauge 0",
      async () => (await s.metric("envoy_control_plane_connected_state")) === 0,
    );
    for (let i = 0; i < 5; i++) expect(await who(listenerPort)).toBe("b");

    const second = await adsServer(first.port);
    second.server.setSnapshot(GROUP, snapshot("1", listenerPort, [{ port: b.port }]));
    await waitFor(
      "connected gauge 1 again",
      async () => (await s.metric("envoy_control_plane_connected_state")) === 1,
      20_000,
    );
    await waitFor("ACKed on the new stream", () => second.server.streams()[0]?.acked.listener === "1");
    expect(await who(listenerPort)).toBe("b");
  });
});

describe("sidecar identity on the ADS stream (--xds-token-file)", () => {
  it("sends the file as a bearer token, read afresh at every reconnect (a refused stream retries)", async () => {
    const [a, b] = [await upstream("a"), await upstream("b")];
    const presented: (string | undefined)[] = [];
    // Refuses the first token, serves the rotated one: as the operator would after a TokenReview.
    const server = new AdsServer({
      host: "127.0.0.1",
      port: 0,
      log,
      authorize: (c) => {
        presented.push(c.authorization);
        return Promise.resolve(
          c.authorization === "Bearer token-2" && c.node.id === "ns/pod-1"
            ? { allowed: true as const }
            : {
                allowed: false as const,
                code: "UNAUTHENTICATED" as const,
                reason: "test",
                message: "not yet",
              },
        );
      },
    });
    const { port: xdsPort } = await server.start();
    cleanups.push(() => server.stop());
    const listenerPort = await freePort();
    server.setSnapshot(GROUP, snapshot("1", listenerPort, [{ port: b.port }]));
    const tokenFile = path.join(mkdtempSync(path.join(os.tmpdir(), "tether-token-")), "token");
    writeFileSync(tokenFile, "token-1\n");
    const admin = await freePort();
    const s = new Sidecar(admin, Sidecar.writeConfig(bootstrap(admin, listenerPort, a.port, xdsPort)));
    s.extraArgs = ["--xds-token-file", tokenFile];
    cleanups.push(() => s.stop());
    await s.start();
    await waitFor("the first token, refused", () => presented.includes("Bearer token-1"), ADS_WAIT_MS);
    expect(await who(listenerPort)).toBe("a"); // still the static config
    writeFileSync(tokenFile, "token-2\n"); // the kubelet rotating the projected token
    await waitFor("traffic on the ADS config", async () => (await who(listenerPort)) === "b", ADS_WAIT_MS);
    expect(presented[0]).toBe("Bearer token-1");
    expect(presented.at(-1)).toBe("Bearer token-2");
  });
});

describe("sidecar as an ADS client (go-control-plane's server, xds-check server)", () => {
  let bin = "";
  beforeAll(() => {
    // Cached by source hash: builds only when tools/xds-check changed.
    const out = execFileSync("bash", [path.resolve(here, "../../tools/xds-check/build.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      timeout: 590_000,
    });
    bin = out.trim().split("\n").at(-1) ?? "";
  }, 600_000);

  it("serves traffic by the snapshot, ACKs it, follows an EDS change and NACKs an invalid listener", async () => {
    const [a, b, c] = [await upstream("a"), await upstream("b"), await upstream("c")];
    const listenerPort = await freePort();
    const gcp = new GoControlPlane(bin);
    cleanups.push(() => gcp.stop());
    await gcp.start(snapshot("1", listenerPort, [{ port: b.port }]));
    await sidecarWith(listenerPort, a.port, gcp.port);
    await waitFor(
      "traffic on the go-control-plane snapshot",
      async () => (await who(listenerPort)) === "b",
      ADS_WAIT_MS,
    );
    const acked = (type: string, version: string): boolean =>
      gcp.lines.some((l) => l.type === type && l.ack && l.version === version && l.node_id === "ns/pod-1");
    await waitFor(
      "CDS, EDS and LDS ACKed",
      () => acked("cluster", "1") && acked("endpoint", "1") && acked("listener", "1"),
    );

    gcp.update(snapshot("2", listenerPort, [{ port: c.port }]));
    await waitFor("traffic on c", async () => (await who(listenerPort)) === "c");
    // go-control-plane re-sends every type with the new version; unchanged content is ACKed, not re-applied.
    await waitFor("CDS version 2 ACKed", () => acked("cluster", "2"));

    gcp.update(
      snapshot("3", listenerPort, [{ port: c.port }], httpListenerResource(listenerPort, "nope", "5s")),
    );
    const nack = await waitFor("the NACK's error_detail at the server", () =>
      gcp.lines.find((l) => l.type === "listener" && l.error !== undefined),
    );
    expect(nack.error, nack.error).toContain(`unknown cluster "nope"`);
    for (let i = 0; i < 5; i++) expect(await who(listenerPort)).toBe("c");
  });
});
