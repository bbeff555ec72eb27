// A/B micro-bench for the sidecar alone: the same saturation and fixed-rate measurements as
// main.ts, but only for tether-sidecar builds, alternating variants round by round so two builds
// (or one build with different Node flags) are compared on the same machine in the same minutes.
//
//   node bench/src/sidecar-profile.ts --variant base=/tmp/ab/base --variant new=sidecar --rounds 3
//   node bench/src/sidecar-profile.ts --variant "lean=sidecar|--max-semi-space-size=1"
//
// A variant is NAME=DIR[|NODE_FLAGS]: DIR is sidecar/ itself or a copy of it (cp -a, so the build's
// times stay in order) after `npm run build`. It runs as shipped — bin/tether-sidecar.js, which
// starts the bundle from its start-up snapshot — when DIR has the bundle, else dist/main.js (the
// unbundled build: slower to start, more memory). NODE_FLAGS are passed to node before the script;
// add the image's own (sidecar/Dockerfile's ENTRYPOINT) to measure the image.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { request } from "undici";
import { sidecarConfig } from "./configs.ts";
import type { LoadSummary } from "./loadgen.ts";
import { BenchError, Proc, freePort, pause } from "./proc.ts";
import { cpuSeconds, measureDuring, memory } from "./procstat.ts";
import { REPO_ROOT, startUpstreamNginx, waitServing } from "./targets.ts";
import { runWrk } from "./wrk.ts";
import { fixedRateLoad } from "./fixed-rate.ts";

const PROXY_CPU = "0";
const LOAD_CPU = "1";

interface Variant {
  readonly name: string;
  readonly dir: string;
  readonly flags: readonly string[];
  /** The script node runs: the shipped entry point, or the unbundled build. */
  readonly entry: string;
}

/** The shipped entry point when `dir` has the bundle and its snapshot, else the unbundled build. */
function entryOf(dir: string): string {
  const bin = `${dir}/bin/tether-sidecar.js`;
  if (existsSync(bin) && existsSync(`${dir}/dist/bundle/sidecar.blob`)) return bin;
  if (existsSync(`${dir}/dist/main.js`)) return `${dir}/dist/main.js`;
  throw new BenchError(
    "TETHER_ERR_BENCH_SIDECAR_NOT_BUILT",
    `--variant: ${dir} has neither dist/bundle/sidecar.blob nor dist/main.js: run \`npm run build\``,
  );
}

interface Round {
  readonly idleRssMb: number;
  readonly rps: number;
  readonly cores: number;
  readonly perCpuSecond: number;
  readonly loadRssMb: number;
  readonly hwmMb: number;
  readonly afterRssMb: number;
  readonly serviceP50Ms: number;
  readonly serviceP99Ms: number;
  readonly rateCores: number;
  /** Instructions retired by the proxy per request during the saturation run (perf stat), or NaN. */
  readonly instrPerRequest: number;
}

/** Counts the instructions `pid` retires until the returned stop function is called (perf stat). */
function countInstructions(pid: number): () => Promise<number> {
  const perf = spawn("perf", ["stat", "-x", ",", "-e", "instructions:u,instructions:k", "-p", String(pid)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let text = "";
  perf.stderr.setEncoding("utf8");
  perf.stderr.on("data", (t: string) => (text += t));
  const exited = new Promise<void>((resolve) => {
    perf.once("exit", () => {
      resolve();
    });
    perf.once("error", () => {
      resolve();
    });
  });
  return async () => {
    perf.kill("SIGINT");
    await exited;
    let total = 0;
    for (const line of text.split("\n")) {
      const n = Number(line.split(",")[0]);
      if (Number.isFinite(n) && line.includes("instructions")) total += n;
    }
    return total > 0 ? total : Number.NaN;
  };
}

/** Thousands, or "—" where perf could not count (no hardware counters, as in many VMs). */
function kilo(n: number): string {
  return Number.isNaN(n) ? "—" : `${(n / 1000).toFixed(0)}k`;
}

function parseVariant(text: string): Variant {
  const eq = text.indexOf("=");
  if (eq <= 0)
    throw new BenchError("TETHER_ERR_BENCH_ARGS", `--variant: expected NAME=DIR[|FLAGS], got ${text}`);
  const [dir = "", flags = ""] = text.slice(eq + 1).split("|");
  const resolved = path.resolve(REPO_ROOT, dir);
  return {
    name: text.slice(0, eq),
    dir: resolved,
    flags: flags.split(" ").filter((f) => f !== ""),
    entry: entryOf(resolved),
  };
}

async function waitReady(url: string, proc: Proc): Promise<void> {
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    if (!proc.running)
      throw new BenchError("TETHER_ERR_BENCH_EXITED", `${proc.name} exited\n${proc.output()}`);
    try {
      const response = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
      await response.body.dump();
      if (response.statusCode === 200) return;
    } catch {
      // not yet
    }
    await pause(50);
  }
  throw new BenchError("TETHER_ERR_BENCH_NOT_READY", `${url} not ready\n${proc.output()}`);
}

async function fixedRate(url: string, rate: number): Promise<LoadSummary> {
  return fixedRateLoad(url, { rate, durationMs: 4000, cpus: LOAD_CPU });
}

async function measureVariant(
  variant: Variant,
  dir: string,
  upstreams: readonly { host: string; port: number }[],
  rate: number,
  seconds: number,
): Promise<Round> {
  const port = await freePort();
  const adminPort = await freePort();
  const config = `${dir}/${variant.name}-${port}.yaml`;
  writeFileSync(config, sidecarConfig({ listenPort: port, adminPort, upstreams }));
  const proc = new Proc({
    name: `tether-sidecar ${variant.name}`,
    command: process.execPath,
    args: [...variant.flags, variant.entry, "--config", config],
    cwd: REPO_ROOT,
    cpus: PROXY_CPU,
  });
  try {
    await waitReady(`http://127.0.0.1:${adminPort}/ready`, proc);
    const origin = `http://127.0.0.1:${port}`;
    await waitServing(origin, "/payload", 10_000);
    await pause(2000);
    const idleRssMb = memory(proc.pid).rssMb;
    const url = `${origin}/payload`;
    await runWrk({ url, threads: 1, connections: 32, durationS: 1, cpus: LOAD_CPU });
    const cpu0 = cpuSeconds(proc.pid);
    const stopCounting = countInstructions(proc.pid);
    const sat = await measureDuring(proc.pid, () =>
      runWrk({ url, threads: 1, connections: 32, durationS: seconds, cpus: LOAD_CPU }),
    );
    const used = cpuSeconds(proc.pid) - cpu0;
    const instructions = await stopCounting();
    const fixed = await measureDuring(proc.pid, () => fixedRate(url, rate));
    const hwmMb = memory(proc.pid).hwmMb;
    await pause(3000);
    const afterRssMb = memory(proc.pid).rssMb;
    const requests = sat.result.requestsPerSecond * seconds;
    return {
      idleRssMb,
      rps: sat.result.requestsPerSecond,
      cores: sat.cpuCores,
      perCpuSecond: used > 0 ? requests / used : 0,
      loadRssMb: sat.maxRssMb,
      hwmMb,
      afterRssMb,
      serviceP50Ms: fixed.result.serviceP50Ms,
      serviceP99Ms: fixed.result.serviceP99Ms,
      rateCores: fixed.cpuCores,
      instrPerRequest: instructions / requests,
    };
  } finally {
    proc.child.kill("SIGKILL");
    await proc.exited;
  }
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      variant: { type: "string", multiple: true },
      rounds: { type: "string", default: "3" },
      rate: { type: "string", default: "1000" },
      seconds: { type: "string", default: "5" },
    },
  });
  const variants = (values.variant ?? ["current=sidecar"]).map(parseVariant);
  for (const v of variants) {
    process.stderr.write(`${v.name}: node ${[...v.flags, path.relative(REPO_ROOT, v.entry)].join(" ")}\n`);
  }
  const rounds = Number(values.rounds);
  const dir = mkdtempSync(path.join(os.tmpdir(), "tether-sidecar-profile-"));
  const ports = [await freePort(), await freePort()];
  const upstream = await startUpstreamNginx(dir, ports, LOAD_CPU);
  const upstreams = ports.map((port) => ({ host: "127.0.0.1", port }));
  const results = new Map<string, Round[]>(variants.map((v) => [v.name, []]));
  process.stderr.write(
    `load average at start: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}\n`,
  );
  try {
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const round = await measureVariant(v, dir, upstreams, Number(values.rate), Number(values.seconds));
        results.get(v.name)?.push(round);
        process.stderr.write(
          `round ${r + 1} ${v.name}: ${round.rps.toFixed(0)} req/s, ${round.cores.toFixed(2)} cores, ` +
            `${(round.perCpuSecond / 1000).toFixed(2)}k/CPU-s, RSS idle ${round.idleRssMb.toFixed(1)} load ` +
            `${round.loadRssMb.toFixed(1)} hwm ${round.hwmMb.toFixed(1)} after ${round.afterRssMb.toFixed(1)} MB, ` +
            `@${values.rate}/s service p50 ${(round.serviceP50Ms * 1000).toFixed(0)} µs p99 ` +
            `${round.serviceP99Ms.toFixed(2)} ms, ${round.rateCores.toFixed(3)} cores, ` +
            `${kilo(round.instrPerRequest)} instr/req\n`,
        );
      }
    }
  } finally {
    upstream.child.kill("SIGKILL");
    await upstream.exited;
    rmSync(dir, { recursive: true, force: true });
  }
  process.stderr.write(
    `load average at end: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}\n`,
  );
  const lines = [
    "| variant | req/s | req per CPU-s | RSS idle | RSS under load | VmHWM | RSS 3 s after | service p50 @rate | cores @rate | instructions/req |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const v of variants) {
    const rs = results.get(v.name) ?? [];
    const m = (f: (r: Round) => number): number => median(rs.map(f));
    lines.push(
      `| ${v.name} | ${m((r) => r.rps).toFixed(0)} | ${(m((r) => r.perCpuSecond) / 1000).toFixed(2)}k | ` +
        `${m((r) => r.idleRssMb).toFixed(1)} MB | ${m((r) => r.loadRssMb).toFixed(1)} MB | ` +
        `${m((r) => r.hwmMb).toFixed(1)} MB | ${m((r) => r.afterRssMb).toFixed(1)} MB | ` +
        `${(m((r) => r.serviceP50Ms) * 1000).toFixed(0)} µs | ${m((r) => r.rateCores).toFixed(3)} | ` +
        `${kilo(m((r) => r.instrPerRequest))} |`,
    );
  }
  process.stdout.write(lines.join("\n") + "\n");
}

await main();
