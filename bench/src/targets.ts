// Starting the processes under test: the upstream nginx, the three proxies in front of it, and the
// Node relay that shows what the runtime itself costs.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { haproxyConfig, proxyNginxConfig, sidecarConfig, upstreamNginxConfig } from "./configs.ts";
import type { Endpoint } from "./configs.ts";
import { BenchError, Proc, pause, waitForPort } from "./proc.ts";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const START_TIMEOUT_MS = 15_000;

/** A proxy (or the upstream itself, for "direct") that the load is pointed at. */
export interface Target {
  readonly name: string;
  readonly origin: string;
  /** The process whose CPU and memory are measured; null for "direct". */
  readonly proc: Proc | null;
}

/**
 * The Node flags the sidecar image runs with (between `node` and the script in sidecar/Dockerfile's
 * ENTRYPOINT), so the bench measures the sidecar as it ships.
 */
export function sidecarImageNodeFlags(): string[] {
  const dockerfile = readFileSync(`${REPO_ROOT}sidecar/Dockerfile`, "utf8");
  const line = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
  if (line === undefined) throw new Error("sidecar/Dockerfile: no exec-form ENTRYPOINT line");
  const args = JSON.parse(line) as string[];
  // The image names its snapshot's path; sidecar/bin/tether-sidecar.js adds the local build's itself.
  return args.slice(1).filter((a) => a.startsWith("--") && !a.startsWith("--snapshot-blob"));
}

export type ProxyKind = "tether-sidecar" | "haproxy" | "nginx";

/** A reference measured beside the proxies but not put through the footprint or restart scenarios. */
export type AnchorKind = "node-relay";

/** The relay as `npm run build` compiles it: a .ts entry would load Node's type stripper (~18 MB). */
export const NODE_RELAY_SCRIPT = `${REPO_ROOT}bench/dist/node-relay.js`;

export interface ProxyStart {
  readonly dir: string;
  readonly port: number;
  /** Only the sidecar has a separate admin port. */
  readonly adminPort: number;
  readonly upstreams: readonly Endpoint[];
  readonly cpus: string;
  /** Node flags added after the image's, for the Node targets (sidecar, relay): e.g. --perf-basic-prof. */
  readonly nodeFlags?: readonly string[];
}

export async function startUpstreamNginx(dir: string, ports: readonly number[], cpus: string): Promise<Proc> {
  mkdirSync(`${dir}/www`, { recursive: true });
  writeFileSync(`${dir}/www/payload`, "x".repeat(1023) + "\n");
  writeFileSync(`${dir}/upstream.conf`, upstreamNginxConfig(dir, ports));
  const proc = new Proc({
    name: "upstream nginx",
    command: "nginx",
    args: ["-c", `${dir}/upstream.conf`, "-e", `${dir}/upstream-error.log`, "-p", dir],
    cpus,
  });
  for (const port of ports) await waitForPort("127.0.0.1", port, START_TIMEOUT_MS, proc);
  return proc;
}

export async function startProxy(kind: ProxyKind, options: ProxyStart): Promise<Target> {
  const origin = `http://127.0.0.1:${options.port}`;
  if (kind === "haproxy") {
    writeFileSync(`${options.dir}/haproxy.cfg`, haproxyConfig(options.port, options.upstreams));
    const proc = new Proc({
      name: "haproxy",
      command: "haproxy",
      args: ["-f", `${options.dir}/haproxy.cfg`, "-db"],
      cpus: options.cpus,
    });
    await waitForPort("127.0.0.1", options.port, START_TIMEOUT_MS, proc);
    return { name: kind, origin, proc };
  }
  if (kind === "nginx") {
    writeFileSync(
      `${options.dir}/proxy-nginx.conf`,
      proxyNginxConfig(options.dir, options.port, options.upstreams),
    );
    const proc = new Proc({
      name: "nginx proxy",
      command: "nginx",
      args: [
        "-c",
        `${options.dir}/proxy-nginx.conf`,
        "-e",
        `${options.dir}/proxy-nginx-error.log`,
        "-p",
        options.dir,
      ],
      cpus: options.cpus,
    });
    await waitForPort("127.0.0.1", options.port, START_TIMEOUT_MS, proc);
    return { name: kind, origin, proc };
  }
  return startSidecar(options);
}

/**
 * The Node reference (bench/src/node-relay.ts, run compiled; main.ts leaves it out when not built): the same node binary with the sidecar image's flags,
 * relaying bytes only, so the runtime's own cost per request is measured in the same run.
 */
export async function startAnchor(kind: AnchorKind, options: ProxyStart): Promise<Target> {
  const proc = new Proc({
    name: kind,
    command: process.execPath,
    args: [
      ...sidecarImageNodeFlags(),
      ...(options.nodeFlags ?? []),
      NODE_RELAY_SCRIPT,
      "--port",
      String(options.port),
      "--upstreams",
      options.upstreams.map((u) => `${u.host}:${u.port}`).join(","),
    ],
    cpus: options.cpus,
  });
  await waitForPort("127.0.0.1", options.port, START_TIMEOUT_MS, proc);
  return { name: kind, origin: `http://127.0.0.1:${options.port}`, proc };
}

async function startSidecar(options: ProxyStart): Promise<Target> {
  if (!existsSync(`${REPO_ROOT}sidecar/dist/main.js`)) {
    throw new BenchError(
      "TETHER_ERR_BENCH_SIDECAR_NOT_BUILT",
      "sidecar/dist/main.js is missing: run `npm run build`",
    );
  }
  const configPath = `${options.dir}/sidecar-${options.port}.yaml`;
  writeFileSync(
    configPath,
    sidecarConfig({ listenPort: options.port, adminPort: options.adminPort, upstreams: options.upstreams }),
  );
  const proc = new Proc({
    name: "tether-sidecar",
    command: process.execPath,
    args: [
      ...sidecarImageNodeFlags(),
      ...(options.nodeFlags ?? []),
      `${REPO_ROOT}sidecar/bin/tether-sidecar.js`,
      "--config",
      configPath,
    ],
    cwd: REPO_ROOT,
    cpus: options.cpus,
  });
  await waitReady(`http://127.0.0.1:${options.adminPort}/ready`, proc);
  return { name: "tether-sidecar", origin: `http://127.0.0.1:${options.port}`, proc };
}

async function waitReady(url: string, proc: Proc): Promise<void> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  let last = "";
  while (performance.now() < deadline) {
    if (!proc.running)
      throw new BenchError("TETHER_ERR_BENCH_EXITED", `${proc.name} exited\n${proc.output()}`);
    try {
      const response = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
      last = await response.body.text();
      if (response.statusCode === 200) return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await pause(50);
  }
  await proc.kill();
  throw new BenchError(
    "TETHER_ERR_BENCH_NOT_READY",
    `${proc.name}: ${url} not 200 in time (${last})\n${proc.output()}`,
  );
}

/** Resolves once `origin + path` answers 200 (a proxy that is up but has no healthy upstream yet is not ready). */
export async function waitServing(origin: string, path: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = "";
  while (performance.now() < deadline) {
    try {
      const response = await request(`${origin}${path}`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await response.body.dump();
      if (response.statusCode === 200) return;
      last = `status ${response.statusCode}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await pause(50);
  }
  throw new BenchError(
    "TETHER_ERR_BENCH_NOT_SERVING",
    `${origin}${path} did not answer 200 within ${timeoutMs} ms (${last})`,
  );
}
