// A routed (ProxyRoute-style) comparison: the sidecar with a route table shaped as the operator
// renders ProxyRoutes (exact path, longer prefixes, extensions last; one route per non-idempotent
// method plus one for the rest; PathTrim / PathPrepend rewrites), next to HAProxy and nginx routing
// and rewriting the same paths, in front of the same upstream nginx. See bench/README.md.
//
//   node bench/src/routed.ts [--rounds 2] [--out FILE]
//
// Also exports the measuring loop that bench/src/tls.ts reuses.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { haproxyConfig, proxyNginxConfig, sidecarConfig } from "./configs.ts";
import type { Endpoint } from "./configs.ts";
import type { LoadSummary } from "./loadgen.ts";
import { measureDuring } from "./procstat.ts";
import { BenchError, Proc, freePort, runBench, waitForPort } from "./proc.ts";
import { fixedRateTable, saturationTable } from "./report.ts";
import type { RoundMeasurement } from "./report.ts";
import { REPO_ROOT, startUpstreamNginx, waitServing } from "./targets.ts";
import { runWrk } from "./wrk.ts";
import { fixedRateLoad } from "./fixed-rate.ts";

export const PROXY_CPU = "0";
export const LOAD_CPU = "1";
export const FIXED_RATE = 1000;

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Something the load is pointed at, with the URL path it is asked for. */
export interface PathTarget {
  readonly name: string;
  /** origin + path */
  readonly url: string;
  readonly proc: Proc | null;
}

async function fixedRate(url: string): Promise<LoadSummary> {
  return fixedRateLoad(url, { rate: FIXED_RATE, durationMs: 5000, cpus: LOAD_CPU });
}

/** wrk -t1 -c32 5 s (after a discarded 1 s warm-up), then 5 s at a fixed 1000 req/s; targets alternate. */
export async function measureTargets(
  targets: readonly PathTarget[],
  rounds: number,
): Promise<RoundMeasurement[]> {
  const out: RoundMeasurement[] = [];
  for (let round = 1; round <= rounds; round++) {
    log(`round ${round}/${rounds}`);
    for (const target of targets) {
      const pid = target.proc?.pid ?? null;
      await runWrk({ url: target.url, threads: 1, connections: 32, durationS: 1, cpus: LOAD_CPU });
      const saturation = await measureDuring(pid, () =>
        runWrk({ url: target.url, threads: 1, connections: 32, durationS: 5, cpus: LOAD_CPU }),
      );
      const rate = await measureDuring(pid, () => fixedRate(target.url));
      log(
        `  ${target.name}: ${saturation.result.requestsPerSecond.toFixed(0)} req/s; @${FIXED_RATE}/s p50 ` +
          `${rate.result.p50Ms.toFixed(3)} ms p99 ${rate.result.p99Ms.toFixed(3)} ms, ${rate.result.failures} failures`,
      );
      out.push({
        target: target.name,
        round,
        saturation: saturation.result,
        saturationCpu: saturation.cpuCores,
        saturationRssMb: saturation.maxRssMb,
        fixedRate: rate.result,
        fixedRateCpu: rate.cpuCores,
      });
    }
  }
  return out;
}

export function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").trim();
}

export function versions(): string {
  const run = (cmd: string): string => {
    try {
      return execFileSync("sh", ["-c", cmd], { encoding: "utf8" }).trim();
    } catch {
      return "(unavailable)";
    }
  };
  return `nproc ${run("nproc")}; node ${process.version}; ${run("haproxy -v | head -n 1")}; ${run("nginx -v 2>&1")}`;
}

/**
 * Prints a run's report (title, the command, duration, load and versions, then `body`), writes it
 * to `out` when given, and removes the run's scratch directory.
 */
export function finishRun(run: {
  title: string;
  script: string;
  rounds: number;
  startedAt: number;
  loadAtStart: string;
  body: readonly string[];
  out: string | undefined;
  dir: string;
}): void {
  const seconds = ((Date.now() - run.startedAt) / 1000).toFixed(0);
  const report = [
    `### ${run.title} — run ${new Date().toISOString()}`,
    "",
    `Command: \`node bench/src/${run.script} --rounds ${run.rounds}\`; ${seconds} s. ` +
      `Load average at start ${run.loadAtStart}, at end ${loadAverage()}. ${versions()}.`,
    "",
    ...run.body,
  ].join("\n");
  process.stdout.write(report + "\n");
  if (run.out !== undefined) writeFileSync(run.out, report + "\n");
  rmSync(run.dir, { recursive: true, force: true });
}

export async function startPinned(
  name: string,
  command: string,
  args: string[],
  port: number,
): Promise<Proc> {
  const proc = new Proc({ name, command, args, cpus: PROXY_CPU, cwd: REPO_ROOT });
  await waitForPort("127.0.0.1", port, 15_000, proc);
  return proc;
}

/** The sidecar's config with its routes section replaced (the cluster `pool` stays as in the main bench). */
export function sidecarWithRoutes(
  listenPort: number,
  adminPort: number,
  upstreams: readonly Endpoint[],
  routes: string,
): string {
  const base = sidecarConfig({ listenPort, adminPort, upstreams });
  const start = base.indexOf("                      routes:\n");
  const end = base.indexOf("                http_filters:\n");
  if (start < 0 || end < 0) throw new BenchError("TETHER_ERR_BENCH_CONFIG", "sidecar config shape changed");
  return base.slice(0, start) + "                      routes:\n" + routes + base.slice(end);
}

// --- the routed case -------------------------------------------------------------------------

interface ProxyRouteLike {
  readonly match: string; // Envoy match fields, YAML flow
  readonly rewrite: string; // "" or an Envoy rewrite field, YAML flow
}

/** Five ProxyRoutes, most specific first, as the operator orders them. */
const PROXY_ROUTES: readonly ProxyRouteLike[] = [
  { match: "path: /api/login", rewrite: "prefix_rewrite: /payload" },
  { match: "prefix: /weblogic/console/", rewrite: "prefix_rewrite: /admin/" },
  { match: "prefix: /weblogic/", rewrite: "prefix_rewrite: /" },
  { match: "prefix: /static/", rewrite: "" },
  {
    match: `safe_regex: { regex: '.*\\.(jsp|jspx)' }`,
    rewrite: `regex_rewrite: { pattern: { regex: "^(.*)$" }, substitution: '/jspfiles\\1' }`,
  },
];

/** Per ProxyRoute: one route per non-idempotent method (reset-before-request), one for the rest (reset). */
function sidecarRoutes(): string {
  const out: string[] = [];
  for (const r of PROXY_ROUTES) {
    for (const method of ["POST", "PATCH", "CONNECT", undefined]) {
      const headers =
        method === undefined ? "" : `, headers: [{ name: ":method", string_match: { exact: ${method} } }]`;
      const retryOn = method === undefined ? "connect-failure,reset" : "connect-failure,reset-before-request";
      out.push(
        [
          `                        - match: { ${r.match}${headers} }`,
          `                          route:`,
          `                            cluster: pool`,
          `                            timeout: 30s`,
          ...(r.rewrite === "" ? [] : [`                            ${r.rewrite}`]),
          `                            retry_policy: { retry_on: "${retryOn}", num_retries: 3, retry_back_off: { base_interval: 2s, max_interval: 2s } }`,
        ].join("\n"),
      );
    }
  }
  return out.join("\n") + "\n";
}

function haproxyRouted(listenPort: number, upstreams: readonly Endpoint[]): string {
  const base = haproxyConfig(listenPort, upstreams);
  // First match wins: the route is decided once, on the original path, then rewritten.
  const frontend = `frontend bench
  bind 127.0.0.1:${listenPort}
  http-request set-var(txn.route) str(login) if { path /api/login }
  http-request set-var(txn.route) str(console) if !{ var(txn.route) -m found } { path_beg /weblogic/console/ }
  http-request set-var(txn.route) str(weblogic) if !{ var(txn.route) -m found } { path_beg /weblogic/ }
  http-request set-var(txn.route) str(static) if !{ var(txn.route) -m found } { path_beg /static/ }
  http-request set-var(txn.route) str(jsp) if !{ var(txn.route) -m found } { path_reg \\.(jsp|jspx)$ }
  http-request return status 404 content-type text/plain string "no route matched" unless { var(txn.route) -m found }
  http-request set-path /payload if { var(txn.route) -m str login }
  http-request set-path %[path,regsub(^/weblogic/console/,/admin/)] if { var(txn.route) -m str console }
  http-request set-path %[path,regsub(^/weblogic/,/)] if { var(txn.route) -m str weblogic }
  http-request set-path /jspfiles%[path] if { var(txn.route) -m str jsp }
  default_backend pool
`;
  return base.replace(/frontend bench\n[\s\S]*?default_backend pool\n/, frontend);
}

function nginxRouted(dir: string, listenPort: number, upstreams: readonly Endpoint[]): string {
  const base = proxyNginxConfig(dir, listenPort, upstreams);
  // nginx's own order: exact (=), then the longest ^~ prefix, then regexes; that is the operator's.
  const locations = `    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_connect_timeout 1s;
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 0;
    proxy_next_upstream_timeout 15s;
    location = /api/login { proxy_pass http://pool/payload; }
    location ^~ /weblogic/console/ { proxy_pass http://pool/admin/; }
    location ^~ /weblogic/ { proxy_pass http://pool/; }
    location ^~ /static/ { proxy_pass http://pool; }
    location ~ \\.(jsp|jspx)$ { rewrite ^(.*)$ /jspfiles$1 break; proxy_pass http://pool; }
    location / { return 404 "no route matched"; }
`;
  return base.replace(/ {4}location \/ \{\n[\s\S]*?\n {4}\}\n/, locations);
}

/** Client path → path the upstream serves (what "direct" is asked for). */
export const ROUTED_PATHS: readonly {
  readonly label: string;
  readonly path: string;
  readonly upstreamPath: string;
}[] = [
  {
    label: "extension + PathPrepend",
    path: "/shop/cart/index.jsp",
    upstreamPath: "/jspfiles/shop/cart/index.jsp",
  },
  { label: "prefix + PathTrim", path: "/weblogic/payload", upstreamPath: "/payload" },
];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: "string", default: "2" }, out: { type: "string" } },
  });
  const rounds = Number(values.rounds);
  const dir = mkdtempSync(join(os.tmpdir(), "tether-bench-routed-"));
  const started: Proc[] = [];
  const loadAtStart = loadAverage();
  const startedAt = Date.now();
  const sections: string[] = [];
  try {
    const upstreamPorts = [await freePort(), await freePort()];
    started.push(await startUpstreamNginx(dir, upstreamPorts, LOAD_CPU));
    for (const p of ROUTED_PATHS) {
      const file = join(dir, "www", p.upstreamPath);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, "x".repeat(1023) + "\n");
    }
    const upstreams = upstreamPorts.map((port) => ({ host: "127.0.0.1", port }));
    const [sp, sa, hp, np] = [await freePort(), await freePort(), await freePort(), await freePort()];
    writeFileSync(join(dir, "routed-sidecar.yaml"), sidecarWithRoutes(sp, sa, upstreams, sidecarRoutes()));
    writeFileSync(join(dir, "routed-haproxy.cfg"), haproxyRouted(hp, upstreams));
    writeFileSync(join(dir, "routed-nginx.conf"), nginxRouted(dir, np, upstreams));
    const sidecar = await startPinned(
      "tether-sidecar",
      process.execPath,
      [`${REPO_ROOT}sidecar/bin/tether-sidecar.js`, "--config", join(dir, "routed-sidecar.yaml")],
      sp,
    );
    started.push(sidecar);
    const haproxy = await startPinned(
      "haproxy",
      "haproxy",
      ["-f", join(dir, "routed-haproxy.cfg"), "-db"],
      hp,
    );
    started.push(haproxy);
    const nginx = await startPinned(
      "nginx proxy",
      "nginx",
      ["-c", join(dir, "routed-nginx.conf"), "-e", join(dir, "proxy-nginx-error.log"), "-p", dir],
      np,
    );
    started.push(nginx);
    const origins = {
      sidecar: `http://127.0.0.1:${sp}`,
      haproxy: `http://127.0.0.1:${hp}`,
      nginx: `http://127.0.0.1:${np}`,
    };
    for (const p of ROUTED_PATHS) {
      for (const origin of Object.values(origins)) await waitServing(origin, p.path, 10_000);
      const targets: PathTarget[] = [
        { name: "direct", url: `http://127.0.0.1:${upstreamPorts[0] ?? 0}${p.upstreamPath}`, proc: null },
        { name: "tether-sidecar", url: `${origins.sidecar}${p.path}`, proc: sidecar },
        { name: "haproxy", url: `${origins.haproxy}${p.path}`, proc: haproxy },
        { name: "nginx", url: `${origins.nginx}${p.path}`, proc: nginx },
      ];
      log(`${p.label}: GET ${p.path} → upstream ${p.upstreamPath}`);
      const m = await measureTargets(targets, rounds);
      sections.push(
        `#### ${p.label}: \`GET ${p.path}\` → upstream \`${p.upstreamPath}\`\n\n` +
          `${saturationTable(m)}\n\n${fixedRateTable(m, FIXED_RATE)}\n`,
      );
    }
  } finally {
    await Promise.all(started.map((proc) => proc.kill()));
  }
  finishRun({
    title: "Routed (ProxyRoute-style)",
    script: "routed.ts",
    rounds,
    startedAt,
    loadAtStart,
    body: sections,
    out: values.out,
    dir,
  });
}

if (import.meta.main) runBench(main);
