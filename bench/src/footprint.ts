// What each proxy costs to keep around: start-up time, idle RSS (anonymous and file-backed), RSS per
// idle keep-alive downstream connection, and the peak (VmHWM) through a saturation run, each proxy
// in a fresh process. `npm run bench` runs it for every proxy; alone it also compares sidecar flags:
//
//   node bench/src/footprint.ts [--targets tether-sidecar,haproxy,nginx] [--connections 1000]
//                               [--variant "NAME=[DIR|]NODE_FLAGS"]… [--xds]
// A variant is a sidecar build (DIR holds bin/ and dist/; default sidecar/) run with NODE_FLAGS;
// without --variant the sidecar runs with the image's flags (sidecar/Dockerfile). --xds adds, for
// each sidecar, two rows of the same sidecar configured over ADS, as the operator configures agents:
// in plaintext, and over TLS (the operator's default).
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { AdsServer, type ResourceJson } from "@tether/xds";
import { request } from "undici";
import { parse as parseYaml } from "yaml";
import { sidecarConfig } from "./configs.ts";
import type { Endpoint } from "./configs.ts";
import { makeCertificates } from "./certs.ts";
import { adsBootstrap } from "./fanout-sidecars.ts";
import { BenchError, Proc, freePort, pause, runBench } from "./proc.ts";
import { cpuSeconds } from "./procstat.ts";
import { REPO_ROOT, sidecarImageNodeFlags, startProxy, startUpstreamNginx, waitServing } from "./targets.ts";
import type { ProxyKind } from "./targets.ts";
import { runWrk } from "./wrk.ts";

const PROXY_CPU = "0";
const LOAD_CPU = "1";
const START_TIMEOUT_MS = 15_000;

export interface Footprint {
  readonly name: string;
  /** From spawn to the first 200 through the proxy (the sidecar: to /ready 200, then /payload). */
  readonly startupMs: number;
  readonly idleRssMb: number;
  /** The idle RSS split: anonymous (heap, stacks) and file-backed (mostly the executable's code). */
  readonly idleAnonMb: number;
  readonly idleFileMb: number;
  readonly connections: number;
  /** (RSS with the idle connections open − idle RSS) / connections. */
  readonly perConnectionKb: number;
  /** VmHWM at the end: through start-up, the idle connections and a `wrk -c32` saturation run. */
  readonly peakMb: number;
  /** RSS split right after the saturation run: what the peak is made of. */
  readonly loadAnonMb: number;
  readonly loadFileMb: number;
  readonly saturationRps: number;
  /** Requests answered in the saturation run per CPU-second the proxy used (user + system). */
  readonly rpsPerCpuSecond: number;
}

interface ProcMemory {
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
  readonly hwm: number;
}

function procMemory(pid: number): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (key: string): number =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) / 1024;
  return { rss: mb("VmRSS"), anon: mb("RssAnon"), file: mb("RssFile") + mb("RssShmem"), hwm: mb("VmHWM") };
}

/**
 * The bench's sidecar config made to look like an agent's: the policy-server cluster (health checks,
 * outlier detection) behind a ProxyRoute-style prefix route with a rewrite and the decision cache.
 */
export function agentSidecarConfig(
  listenPort: number,
  adminPort: number,
  upstreams: readonly Endpoint[],
): string {
  const base = sidecarConfig({ listenPort, adminPort, upstreams });
  const routes = "                      routes:\n";
  const filters = "                http_filters:\n";
  if (!base.includes(routes) || !base.includes(filters)) {
    throw new BenchError("TETHER_ERR_BENCH_CONFIG", "sidecar config shape changed");
  }
  return base
    .replace(
      routes,
      routes +
        `                        - match: { prefix: /weblogic/ }
                          route:
                            cluster: pool
                            timeout: 30s
                            prefix_rewrite: /
                            retry_policy: { retry_on: "connect-failure,reset", num_retries: 3, retry_back_off: { base_interval: 0.1s, max_interval: 1s } }
`,
    )
    .replace(
      filters,
      filters +
        `                  - name: tether.filters.http.decision_cache
                    is_optional: true
                    typed_config:
                      "@type": type.googleapis.com/tether.v1alpha1.DecisionCache
                      ttl: 180s
                      notifications: true
                      key_headers: [cookie, authorization]
`,
    );
}

const SILENT = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** The control plane's name in its certificate, and the SAN the sidecar checks (TLS rows). */
const XDS_SERVER_NAME = "tether-xds.bench.test";

/**
 * The same agent sidecar as its pods run it: a bootstrap with only the admin and the ADS cluster, and
 * the listener and clusters of agentSidecarConfig served over ADS by @tether/xds's server, the one the
 * operator runs. With `tlsDir`, over TLS as the operator's default is (a throwaway CA written there,
 * the sidecar verifying the server's name); else in plaintext.
 */
export async function startAdsFor(
  listenPort: number,
  adminPort: number,
  upstreams: readonly Endpoint[],
  tlsDir?: string,
): Promise<{ server: AdsServer; bootstrap: string }> {
  const config = parseYaml(agentSidecarConfig(listenPort, adminPort, upstreams)) as {
    static_resources: { listeners: ResourceJson[]; clusters: ResourceJson[] };
  };
  const byName = (list: ResourceJson[]): Map<string, ResourceJson> =>
    new Map(list.map((r) => [String(r["name"]), r]));
  const certs = tlsDir === undefined ? undefined : makeCertificates(tlsDir, XDS_SERVER_NAME);
  const server = new AdsServer({
    host: "127.0.0.1",
    port: 0,
    log: SILENT,
    ...(certs === undefined
      ? {}
      : { tls: { certPem: readFileSync(certs.cert, "utf8"), keyPem: readFileSync(certs.key, "utf8") } }),
  });
  const { port } = await server.start();
  const group = "bench/agent/footprint";
  server.setSnapshot(group, {
    version: "1",
    resources: {
      cluster: byName(config.static_resources.clusters),
      endpoint: new Map(),
      listener: byName(config.static_resources.listeners),
      route: new Map(),
    },
  });
  const tls = certs === undefined ? undefined : { caFile: certs.ca, name: XDS_SERVER_NAME };
  const bootstrap = adsBootstrap({ nodeId: "bench/agent-0", group }, adminPort, port, tls);
  return { server, bootstrap };
}

/** Opens `count` keep-alive connections, each sending one GET and reading its answer; they stay open. */
async function openIdleConnections(origin: URL, path: string, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const one = async (): Promise<void> => {
    const socket = net.connect(Number(origin.port), origin.hostname);
    sockets.push(socket);
    socket.setTimeout(10_000, () => socket.destroy(new Error("idle connection: no answer in 10 s")));
    await once(socket, "connect");
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${origin.host}\r\n\r\n`);
    let text = "";
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        text += chunk.toString("latin1");
        const end = text.indexOf("\r\n\r\n");
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1];
        if (end >= 0 && length !== undefined && text.length >= end + 4 + Number(length)) {
          socket.off("data", onData);
          socket.setTimeout(0);
          if (!text.startsWith("HTTP/1.1 200")) reject(new Error(`idle connection: ${text.slice(0, 40)}`));
          else resolve();
        }
      };
      socket.on("data", onData);
      socket.once("error", reject);
      socket.once("close", () => {
        reject(new Error("idle connection closed before its answer"));
      });
    });
    socket.removeAllListeners("close");
    socket.removeAllListeners("error");
    socket.on("error", () => undefined);
  };
  for (let i = 0; i < count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, one));
  }
  return sockets;
}

async function waitReady(url: string, proc: Proc): Promise<void> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (!proc.running)
      throw new BenchError("TETHER_ERR_BENCH_EXITED", `${proc.name} exited\n${proc.output()}`);
    try {
      const response = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
      await response.body.dump();
      if (response.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await pause(10);
  }
  throw new BenchError("TETHER_ERR_BENCH_NOT_READY", `${url} not ready\n${proc.output()}`);
}

export interface FootprintTarget {
  readonly name: string;
  readonly kind: ProxyKind;
  /** Sidecar only: node flags before the launcher (default: the image's, sidecar/Dockerfile). */
  readonly nodeFlags?: readonly string[];
  /** Sidecar only: the directory holding bin/ and dist/ (default: sidecar/). */
  readonly dir?: string;
  /** Sidecar only: listener and clusters over ADS, as the operator configures agent sidecars. */
  readonly xds?: "plaintext" | "tls";
}

/** Starts the target fresh, measures, and stops it. */
export async function measureFootprint(
  target: FootprintTarget,
  dir: string,
  upstreams: readonly Endpoint[],
  connections: number,
): Promise<Footprint> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  let startedAt = performance.now();
  let proc: Proc;
  let ads: AdsServer | undefined;
  if (target.kind === "tether-sidecar") {
    const adminPort = await freePort();
    const config = `${dir}/footprint-${port}.yaml`;
    if (target.xds !== undefined) {
      const tlsDir = target.xds === "tls" ? mkdtempSync(path.join(dir, "xds-tls-")) : undefined;
      const started = await startAdsFor(port, adminPort, upstreams, tlsDir);
      ads = started.server;
      writeFileSync(config, started.bootstrap);
      // The control plane (and its certificates) are ready before the sidecar starts: not its time.
      startedAt = performance.now();
    } else {
      writeFileSync(config, agentSidecarConfig(port, adminPort, upstreams));
    }
    proc = new Proc({
      name: target.name,
      command: process.execPath,
      args: [
        ...(target.nodeFlags ?? sidecarImageNodeFlags()),
        `${target.dir ?? `${REPO_ROOT}sidecar`}/bin/tether-sidecar.js`,
        "--config",
        config,
      ],
      cwd: REPO_ROOT,
      cpus: PROXY_CPU,
    });
    try {
      await waitReady(`http://127.0.0.1:${adminPort}/ready`, proc);
    } catch (err) {
      await proc.kill();
      await ads?.stop();
      throw err;
    }
  } else {
    const started = await startProxy(target.kind, { dir, port, adminPort: 0, upstreams, cpus: PROXY_CPU });
    if (started.proc === null) throw new BenchError("TETHER_ERR_BENCH_TARGET", `${target.kind}: no process`);
    proc = started.proc;
  }
  try {
    await waitServing(origin, "/payload", START_TIMEOUT_MS);
    const startupMs = performance.now() - startedAt;
    await pause(3000);
    const idle = procMemory(proc.pid);
    const sockets = await openIdleConnections(new URL(origin), "/payload", connections);
    await pause(2000);
    const withConnections = procMemory(proc.pid);
    for (const s of sockets) s.destroy();
    await pause(1000);
    const url = `${origin}/payload`;
    const cpuBefore = cpuSeconds(proc.pid);
    const wrk = await runWrk({ url, threads: 1, connections: 32, durationS: 5, cpus: LOAD_CPU });
    const cpu = cpuSeconds(proc.pid) - cpuBefore;
    const end = procMemory(proc.pid);
    return {
      name: target.name,
      startupMs,
      idleRssMb: idle.rss,
      idleAnonMb: idle.anon,
      idleFileMb: idle.file,
      connections,
      perConnectionKb: ((withConnections.rss - idle.rss) * 1024) / connections,
      peakMb: end.hwm,
      loadAnonMb: end.anon,
      loadFileMb: end.file,
      saturationRps: wrk.requestsPerSecond,
      // wrk runs 5 s (its 1 s warm-up is not part of runWrk): requests over the proxy's CPU time.
      rpsPerCpuSecond: cpu > 0 ? (wrk.requestsPerSecond * 5) / cpu : 0,
    };
  } finally {
    await proc.kill();
    await ads?.stop();
  }
}

export function footprintTable(rows: readonly Footprint[]): string {
  const lines = [
    "| proxy | start-up to serving | idle RSS | idle anon / file-backed | RSS per idle connection | peak RSS (VmHWM) | after load anon / file-backed | req/s in the saturation run | req per proxy CPU-second |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.name} | ${r.startupMs.toFixed(0)} ms | ${r.idleRssMb.toFixed(1)} MB | ` +
        `${r.idleAnonMb.toFixed(1)} / ${r.idleFileMb.toFixed(1)} MB | ` +
        `${r.perConnectionKb.toFixed(1)} KB (${r.connections}) | ${r.peakMb.toFixed(1)} MB | ` +
        `${r.loadAnonMb.toFixed(1)} / ${r.loadFileMb.toFixed(1)} MB | ${r.saturationRps.toFixed(0)} | ` +
        `${(r.rpsPerCpuSecond / 1000).toFixed(1)}k |`,
    );
  }
  return lines.join("\n") + "\n";
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      targets: { type: "string", default: "tether-sidecar,haproxy,nginx" },
      variant: { type: "string", multiple: true },
      connections: { type: "string", default: "1000" },
      rounds: { type: "string", default: "1" },
      xds: { type: "boolean", default: false },
    },
  });
  const kinds = values.targets.split(",").map((t) => t.trim()) as ProxyKind[];
  const targets: FootprintTarget[] = [];
  for (const kind of kinds) {
    if (kind !== "tether-sidecar") {
      targets.push({ name: kind, kind });
      continue;
    }
    if (values.variant === undefined) {
      targets.push({ name: kind, kind });
      continue;
    }
    for (const v of values.variant) {
      const eq = v.indexOf("=");
      if (eq <= 0)
        throw new BenchError("TETHER_ERR_BENCH_ARGS", `--variant: expected NAME=[DIR|]FLAGS, got ${v}`);
      const spec = v.slice(eq + 1);
      const bar = spec.indexOf("|");
      const flags = (bar < 0 ? spec : spec.slice(bar + 1)).split(" ").filter((f) => f !== "");
      const dir = bar < 0 ? undefined : path.resolve(REPO_ROOT, spec.slice(0, bar));
      targets.push({ name: v.slice(0, eq), kind, nodeFlags: flags, ...(dir === undefined ? {} : { dir }) });
    }
  }
  if (values.xds) {
    for (const t of targets.filter((x) => x.kind === "tether-sidecar")) {
      targets.push({ ...t, name: `${t.name} (xDS)`, xds: "plaintext" });
      targets.push({ ...t, name: `${t.name} (xDS, TLS)`, xds: "tls" });
    }
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "tether-footprint-"));
  const ports = [await freePort(), await freePort()];
  const upstream = await startUpstreamNginx(dir, ports, LOAD_CPU);
  const upstreams = ports.map((p) => ({ host: "127.0.0.1", port: p }));
  const rows: Footprint[] = [];
  process.stderr.write(`load average at start: ${readFileSync("/proc/loadavg", "utf8")}`);
  try {
    for (let r = 0; r < Number(values.rounds); r++) {
      for (const t of targets) {
        const row = await measureFootprint(t, dir, upstreams, Number(values.connections));
        rows.push(row);
        process.stderr.write(`${footprintTable([row]).split("\n")[2] ?? ""}\n`);
      }
    }
  } finally {
    await upstream.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stderr.write(`load average at end: ${readFileSync("/proc/loadavg", "utf8")}`);
  process.stdout.write(footprintTable(rows));
}

if (import.meta.main) runBench(main);
