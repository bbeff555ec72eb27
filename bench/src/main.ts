// `npm run bench`: direct vs tether-sidecar vs HAProxy vs nginx in front of the same nginx
// upstream, then the restart scenarios. See bench/README.md for what each number means.
//
//   node bench/src/main.ts [--rounds 3] [--targets direct,tether-sidecar,haproxy,nginx,node-relay]
//                          [--scenarios all|none|<proxy,…>] [--out FILE]
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { LoadSummary } from "./loadgen.ts";
import { footprintTable, measureFootprint } from "./footprint.ts";
import type { Footprint } from "./footprint.ts";
import { measureDuring, memory } from "./procstat.ts";
import { BenchError, Proc, freePort, missingTools, pause, runBench } from "./proc.ts";
import { fixedRateTable, memoryTable, saturationTable, scenarioErrors, scenarioTable } from "./report.ts";
import type { MemoryMeasurement, RoundMeasurement } from "./report.ts";
import { SCENARIOS, runScenario } from "./scenarios.ts";
import type { ScenarioResult } from "./scenarios.ts";
import {
  NODE_RELAY_SCRIPT,
  REPO_ROOT,
  startAnchor,
  startProxy,
  startUpstreamNginx,
  waitServing,
} from "./targets.ts";
import type { AnchorKind, ProxyKind, Target } from "./targets.ts";
import { runWrk } from "./wrk.ts";
import { fixedRateLoad } from "./fixed-rate.ts";

const PROXY_CPU = "0";
const LOAD_CPU = "1";
const PAYLOAD_PATH = "/payload";
const FIXED_RATE = 1000;
/** Idle keep-alive downstream connections held open to measure RSS per connection. */
const IDLE_CONNECTIONS = 1000;
const PROXIES: readonly ProxyKind[] = ["tether-sidecar", "haproxy", "nginx"];
/**
 * The idle window: after start-up work has settled, long enough that the kernel's 10 ms CPU ticks
 * resolve a few thousandths of a core (over 3 s one tick is 0.0033 cores).
 */
const IDLE_SETTLE_MS = 2000;
const IDLE_MS = 10_000;

/** Measured in the rounds only: no footprint, no restart scenarios (it has no failover). */
const ANCHORS: readonly AnchorKind[] = ["node-relay"];

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function preflight(): void {
  const missing = missingTools(["wrk", "haproxy", "nginx", "taskset"]);
  if (missing.length > 0) {
    throw new BenchError(
      "TETHER_ERR_BENCH_TOOLS",
      `missing ${missing.join(", ")}: apt-get install -y wrk haproxy nginx util-linux`,
    );
  }
  if (os.availableParallelism() < 2) log("warning: fewer than 2 CPUs; proxy and load share a core");
}

async function fixedRate(url: string): Promise<LoadSummary> {
  return fixedRateLoad(url, { rate: FIXED_RATE, durationMs: 5000, cpus: LOAD_CPU });
}

async function measureRound(target: Target, round: number): Promise<RoundMeasurement> {
  const url = `${target.origin}${PAYLOAD_PATH}`;
  const pid = target.proc?.pid ?? null;
  await runWrk({ url, threads: 1, connections: 32, durationS: 1, cpus: LOAD_CPU }); // warm-up, discarded
  const saturation = await measureDuring(pid, () =>
    runWrk({ url, threads: 1, connections: 32, durationS: 5, cpus: LOAD_CPU }),
  );
  const rate = await measureDuring(pid, () => fixedRate(url));
  log(
    `  ${target.name}: ${saturation.result.requestsPerSecond.toFixed(0)} req/s; @${FIXED_RATE}/s p50 ` +
      `${rate.result.p50Ms.toFixed(3)} ms p99 ${rate.result.p99Ms.toFixed(3)} ms, ${rate.result.failures} failures`,
  );
  return {
    target: target.name,
    round,
    saturation: saturation.result,
    saturationCpu: saturation.cpuCores,
    saturationRssMb: saturation.maxRssMb,
    fixedRate: rate.result,
    fixedRateCpu: rate.cpuCores,
  };
}

function machine(): string {
  const run = (cmd: string): string => {
    try {
      return execFileSync("sh", ["-c", cmd], { encoding: "utf8" }).trim();
    } catch {
      return "(unavailable)";
    }
  };
  return [
    `nproc: ${run("nproc")}`,
    run("lscpu | head -n 20 | grep -E 'Model name|^CPU\\(s\\)|Thread|Hypervisor'"),
    `kernel: ${run("uname -r")}; load average at report time: ${run("cat /proc/loadavg")}`,
    `node: ${process.version}; ${run("haproxy -v | head -n 1")}; ${run("nginx -v 2>&1")}; ${run("wrk --version 2>&1 | head -n 1")}`,
  ].join("\n");
}

/** The proxies and references asked for (an unknown name is an error); one not built is left out. */
function runnableTargets(wanted: readonly string[]): { proxies: ProxyKind[]; anchors: AnchorKind[] } {
  const known: readonly string[] = ["direct", ...PROXIES, ...ANCHORS];
  const unknown = wanted.filter((t) => !known.includes(t));
  if (unknown.length > 0) {
    throw new BenchError(
      "TETHER_ERR_BENCH_ARGS",
      `--targets: unknown ${unknown.join(", ")} (known: ${known.join(", ")})`,
    );
  }
  let proxies = PROXIES.filter((p) => wanted.includes(p));
  if (proxies.includes("tether-sidecar") && !existsSync(`${REPO_ROOT}sidecar/dist/bundle/sidecar.blob`)) {
    log("sidecar/dist/bundle/sidecar.blob missing (run `npm run build`): tether-sidecar is left out");
    proxies = proxies.filter((p) => p !== "tether-sidecar");
  }
  let anchors = ANCHORS.filter((a) => wanted.includes(a));
  if (anchors.length > 0 && !existsSync(NODE_RELAY_SCRIPT)) {
    log("bench/dist/node-relay.js missing (run `npm run build`): node-relay is left out");
    anchors = [];
  }
  return { proxies, anchors };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "3" },
      targets: { type: "string", default: "direct,tether-sidecar,haproxy,nginx,node-relay" },
      scenarios: { type: "string", default: "all" },
      out: { type: "string" },
    },
  });
  preflight();
  const rounds = Number(values.rounds);
  const wanted = values.targets.split(",").map((t) => t.trim());
  const { proxies, anchors } = runnableTargets(wanted);
  const dir = mkdtempSync(join(os.tmpdir(), "tether-bench-"));
  const started: Proc[] = [];
  const measurements: RoundMeasurement[] = [];
  const memoryRows: MemoryMeasurement[] = [];
  const scenarioResults: ScenarioResult[] = [];
  const footprints: Footprint[] = [];
  const startedAt = Date.now();
  const loadAtStart = readFileSync("/proc/loadavg", "utf8").trim();
  try {
    const upstreamPorts = [await freePort(), await freePort()];
    const upstream = await startUpstreamNginx(dir, upstreamPorts, LOAD_CPU);
    started.push(upstream);
    const upstreams = upstreamPorts.map((port) => ({ host: "127.0.0.1", port }));
    const targets: Target[] = wanted.includes("direct")
      ? [{ name: "direct", origin: `http://127.0.0.1:${upstreamPorts[0] ?? 0}`, proc: null }]
      : [];
    for (const kind of proxies) {
      const target = await startProxy(kind, {
        dir,
        port: await freePort(),
        adminPort: await freePort(),
        upstreams,
        cpus: PROXY_CPU,
      });
      if (target.proc) started.push(target.proc);
      targets.push(target);
    }
    for (const kind of anchors) {
      const target = await startAnchor(kind, {
        dir,
        port: await freePort(),
        adminPort: 0,
        upstreams,
        cpus: PROXY_CPU,
      });
      if (target.proc) started.push(target.proc);
      targets.push(target);
    }
    for (const target of targets) await waitServing(target.origin, PAYLOAD_PATH, 10_000);

    log(`idle: ${IDLE_SETTLE_MS / 1000} s to settle, then ${IDLE_MS / 1000} s measured`);
    await pause(IDLE_SETTLE_MS);
    const idle = await Promise.all(
      targets.map(async (t) =>
        t.proc ? { target: t, ...(await measureDuring(t.proc.pid, () => pause(IDLE_MS))) } : null,
      ),
    );
    for (let round = 1; round <= rounds; round++) {
      log(`round ${round}/${rounds}`);
      for (const target of targets) measurements.push(await measureRound(target, round));
    }
    await pause(3000);
    for (const entry of idle) {
      if (!entry?.target.proc) continue;
      const now = memory(entry.target.proc.pid);
      const loads = measurements.filter((m) => m.target === entry.target.name).map((m) => m.saturationRssMb);
      const loadRss = loads.length === 0 ? Number.NaN : Math.max(...loads);
      memoryRows.push({
        target: entry.target.name,
        idleCpu: entry.cpuCores,
        idleRssMb: entry.maxRssMb,
        loadRssMb: loadRss,
        peakRssMb: now.hwmMb,
        settledRssMb: now.rssMb,
      });
    }
    for (const target of targets) await target.proc?.kill();
    for (const kind of proxies) {
      log(`footprint of ${kind}: start-up, idle, ${IDLE_CONNECTIONS} idle connections, peak`);
      footprints.push(await measureFootprint({ name: kind, kind }, dir, upstreams, IDLE_CONNECTIONS));
      if (kind === "tether-sidecar") {
        log(`footprint of ${kind} configured over ADS, as the operator configures agent sidecars`);
        for (const [suffix, xds] of [
          ["xDS", "plaintext"],
          ["xDS, TLS", "tls"],
        ] as const) {
          const target = { name: `${kind} (${suffix})`, kind, xds };
          footprints.push(await measureFootprint(target, dir, upstreams, IDLE_CONNECTIONS));
        }
      }
    }

    const scenarioProxies =
      values.scenarios === "all" ? proxies : proxies.filter((p) => values.scenarios.split(",").includes(p));
    for (const plan of SCENARIOS) {
      for (const proxy of scenarioProxies) {
        log(`scenario "${plan.name}" through ${proxy}`);
        scenarioResults.push(await runScenario(plan, proxy, dir));
      }
    }
  } finally {
    await Promise.all(started.map((proc) => proc.kill()));
  }

  const report = [
    `# bench run ${new Date().toISOString()}`,
    "",
    "```",
    machine(),
    `load average at start: ${loadAtStart}`,
    "```",
    "",
    `Command: \`npm run bench\` (node bench/src/main.ts ${process.argv.slice(2).join(" ")}); ${rounds} rounds, ` +
      `${((Date.now() - startedAt) / 1000).toFixed(0)} s. Proxy on CPU ${PROXY_CPU}; wrk, loadgen and upstream nginx on CPU ${LOAD_CPU}.`,
    "",
    "## Saturation: wrk -t1 -c32 -d5s, 1 KB body",
    "",
    saturationTable(measurements),
    "",
    `## Latency at a fixed ${FIXED_RATE} req/s (open loop, from intended send time, 5 s after 1 s warm-up)`,
    "",
    fixedRateTable(measurements, FIXED_RATE),
    "",
    "## CPU and memory of the proxy process",
    "",
    memoryTable(memoryRows),
    "",
    `## Footprint: each proxy fresh — start-up, idle, ${IDLE_CONNECTIONS} idle keep-alive connections, peak through wrk -c32 -d5s`,
    "",
    footprintTable(footprints),
    "",
    "## Restart scenarios (demo policy servers as upstreams, SIGKILL and restart)",
    "",
    scenarioTable(scenarioResults),
    "",
    scenarioErrors(scenarioResults),
    "",
  ].join("\n");
  process.stdout.write(report);
  const out = values.out ?? join(dir, "results.md");
  writeFileSync(out, report);
  writeFileSync(
    out.replace(/\.md$/, "") + ".json",
    JSON.stringify({ measurements, memoryRows, footprints, scenarioResults }, null, 2),
  );
  log(`report written to ${out}`);
  if (values.out === undefined) return;
  rmSync(dir, { recursive: true, force: true });
}

runBench(main);
