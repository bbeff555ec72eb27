// Where a proxy's CPU goes per request at a fixed rate: `perf record` of the proxy process while the
// load generator sends a constant rate through it, each sample sorted into the kernel (by the
// system call it is in) or user space (by what kind of code it is in), and reported as µs of CPU
// per request. Beside the sidecar it measures the Node relay and HAProxy, so what the kernel costs
// every proxy on this machine and what is each one's own work are read from one run.
//
//   node bench/src/cpu-breakdown.ts [--targets tether-sidecar,node-relay,haproxy] [--rate 1000]
//                                   [--seconds 20] [--out FILE]
//
// Needs `perf` (Debian: linux-perf) and permission to record another process (root, or
// kernel.perf_event_paranoid ≤ 1). Node targets run with --perf-basic-prof so JIT-compiled
// JavaScript is named. CPU time per request comes from /proc (not from the sample counts), and the
// categories share it out in proportion to their samples.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fixedRateLoad } from "./fixed-rate.ts";
import { BenchError, Proc, freePort, missingTools, pause, runBench } from "./proc.ts";
import { cpuSeconds } from "./procstat.ts";
import {
  NODE_RELAY_SCRIPT,
  startAnchor,
  startProxy,
  startUpstreamNginx,
  waitServing,
  type Target,
} from "./targets.ts";
import { runWrk } from "./wrk.ts";

const PROXY_CPU = "0";
const LOAD_CPU = "1";
const PAYLOAD_PATH = "/payload";
const TARGETS = ["tether-sidecar", "node-relay", "haproxy"] as const;
type BreakdownTarget = (typeof TARGETS)[number];

/** Where a sample was: kernel categories first, then user space. */
export const CATEGORIES = [
  "kernel: send (write, writev, sendto)",
  "kernel: receive (read, recvfrom)",
  "kernel: wait (epoll)",
  "kernel: other",
  "JavaScript (JIT-compiled)",
  "V8 built-ins (ICs, strings, arrays)",
  "V8 runtime (slow paths, GC, compiler)",
  "V8 embedder API",
  "Node C++",
  "llhttp",
  "libuv",
  "other user space (libc; binaries without symbols)",
] as const;
export type Category = (typeof CATEGORIES)[number];

/** One stack frame of `perf script -F comm,tid,ip,sym` output. */
interface Frame {
  readonly ip: string;
  readonly sym: string;
}

function isKernel(frame: Frame): boolean {
  return frame.ip.startsWith("ffff");
}

/** The category of one sample, from its frames (leaf first). */
export function categorize(frames: readonly Frame[]): Category {
  const leaf = frames[0];
  if (leaf === undefined) return "kernel: other";
  if (isKernel(leaf)) {
    for (const f of frames) {
      const s = f.sym;
      if (/^(ksys_write|__sys_sendto|__sys_sendmsg|do_writev|__x64_sys_write|__x64_sys_writev)/.test(s))
        return "kernel: send (write, writev, sendto)";
      if (/^(ksys_read|__sys_recvfrom|__sys_recvmsg|__x64_sys_read)/.test(s))
        return "kernel: receive (read, recvfrom)";
      if (/^(do_epoll_wait|__x64_sys_epoll_p?wait)/.test(s)) return "kernel: wait (epoll)";
    }
    return "kernel: other";
  }
  const s = leaf.sym;
  if (s.startsWith("JS:") || s.startsWith("RegExp")) return "JavaScript (JIT-compiled)";
  if (s.startsWith("Builtins_")) return "V8 built-ins (ICs, strings, arrays)";
  if (s.startsWith("v8::internal::")) return "V8 runtime (slow paths, GC, compiler)";
  if (s.startsWith("v8::")) return "V8 embedder API";
  if (s.includes("node::")) return "Node C++";
  if (s.startsWith("llhttp")) return "llhttp";
  if (s.startsWith("uv_") || s.startsWith("uv__")) return "libuv";
  return "other user space (libc; binaries without symbols)";
}

/** Samples per category in `perf script -F comm,tid,ip,sym` output (recorded with -g). */
export function countSamples(script: string): Map<Category, number> {
  const counts = new Map<Category, number>(CATEGORIES.map((c) => [c, 0]));
  for (const block of script.split(/\n\s*\n/)) {
    const frames: Frame[] = [];
    for (const line of block.split("\n")) {
      const m = /^\s+([0-9a-f]+)\s+(.*)$/.exec(line);
      if (m !== null) frames.push({ ip: m[1] as string, sym: m[2] as string });
    }
    if (frames.length === 0) continue;
    const c = categorize(frames);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  return counts;
}

export interface Breakdown {
  readonly target: string;
  readonly requests: number;
  readonly failures: number;
  readonly cores: number;
  readonly samples: number;
  /** µs of CPU per request, per category (shares of the measured CPU time by sample count). */
  readonly perRequestUs: ReadonlyMap<Category, number>;
}

/** Shares `cpuSeconds` out to the categories by their samples, per request. */
export function breakdown(
  target: string,
  counts: ReadonlyMap<Category, number>,
  cpuSecondsUsed: number,
  requests: number,
  failures: number,
  seconds: number,
): Breakdown {
  let samples = 0;
  for (const n of counts.values()) samples += n;
  const perRequestUs = new Map<Category, number>();
  for (const c of CATEGORIES) {
    const share = samples === 0 ? 0 : (counts.get(c) ?? 0) / samples;
    perRequestUs.set(c, requests === 0 ? Number.NaN : (share * cpuSecondsUsed * 1e6) / requests);
  }
  return { target, requests, failures, cores: cpuSecondsUsed / seconds, samples, perRequestUs };
}

function sum(b: Breakdown, kernel: boolean): number {
  let total = 0;
  for (const [c, us] of b.perRequestUs) if (c.startsWith("kernel") === kernel) total += us;
  return total;
}

export function breakdownTable(rows: readonly Breakdown[]): string {
  const head = `| | ${rows.map((r) => r.target).join(" | ")} |`;
  const rule = `|---|${rows.map(() => "---").join("|")}|`;
  const line = (label: string, cell: (r: Breakdown) => string): string =>
    `| ${label} | ${rows.map(cell).join(" | ")} |`;
  const us = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : "—");
  const categoryLines = (kernel: boolean): string[] =>
    CATEGORIES.filter((c) => c.startsWith("kernel") === kernel).map((c) =>
      line(`&nbsp;&nbsp;${c}`, (r) => us(r.perRequestUs.get(c) ?? Number.NaN)),
    );
  return [
    head,
    rule,
    line("CPU (cores) / requests / failures", (r) => `${r.cores.toFixed(3)} / ${r.requests} / ${r.failures}`),
    line("**µs of CPU per request**", (r) => `**${us(sum(r, true) + sum(r, false))}**`),
    line("kernel, all", (r) => us(sum(r, true))),
    ...categoryLines(true),
    line("user space, all", (r) => us(sum(r, false))),
    ...categoryLines(false),
    line("perf samples", (r) => String(r.samples)),
  ].join("\n");
}

function preflight(targets: readonly BreakdownTarget[]): void {
  const missing = missingTools(["perf", "nginx", "wrk", "taskset"]);
  if (missing.length > 0)
    throw new BenchError(
      "TETHER_ERR_BENCH_TOOL_MISSING",
      `${missing.join(", ")} not installed (perf: Debian's linux-perf)`,
    );
  if (targets.includes("node-relay") && !existsSync(NODE_RELAY_SCRIPT))
    throw new BenchError(
      "TETHER_ERR_BENCH_RELAY_NOT_BUILT",
      `${NODE_RELAY_SCRIPT} is missing: run \`npm run build\``,
    );
}

async function measure(target: Target, rate: number, seconds: number, dir: string): Promise<Breakdown> {
  const proc = target.proc as Proc;
  const url = `${target.origin}${PAYLOAD_PATH}`;
  // Warm: JIT-compiled hot paths and grown pools, as the fixed-rate rows of `npm run bench` are.
  await runWrk({ url, threads: 1, connections: 32, durationS: 3, cpus: LOAD_CPU });
  await fixedRateLoad(url, { rate, durationMs: 1000, cpus: LOAD_CPU });
  const data = join(dir, `${target.name}.perf.data`);
  const perf = new Proc({
    name: "perf record",
    command: "perf",
    args: ["record", "-g", "-F", "4999", "-o", data, "-p", String(proc.pid), "--", "sleep", String(seconds)],
  });
  await pause(300);
  const before = cpuSeconds(proc.pid);
  const start = performance.now();
  const load = await fixedRateLoad(url, { rate, durationMs: seconds * 1000, cpus: LOAD_CPU });
  const cpu = cpuSeconds(proc.pid) - before;
  const elapsed = (performance.now() - start) / 1000;
  const status = await perf.exited;
  if (status.code !== 0)
    throw new BenchError(
      "TETHER_ERR_BENCH_PERF",
      `perf record failed (${status.code ?? status.signal}):\n${perf.output()}`,
    );
  const script = execFileSync("perf", ["script", "-i", data, "-F", "comm,tid,ip,sym"], {
    maxBuffer: 1 << 30,
    stdio: ["ignore", "pipe", "ignore"],
  }).toString();
  // The JIT symbol map --perf-basic-prof wrote for perf (Node targets only).
  rmSync(`/tmp/perf-${proc.pid}.map`, { force: true });
  return breakdown(target.name, countSamples(script), cpu, load.requests, load.failures, elapsed);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      targets: { type: "string", default: TARGETS.join(",") },
      rate: { type: "string", default: "1000" },
      seconds: { type: "string", default: "20" },
      out: { type: "string" },
    },
  });
  const targets = values.targets.split(",").map((t) => t.trim());
  for (const t of targets)
    if (!(TARGETS as readonly string[]).includes(t))
      throw new BenchError(
        "TETHER_ERR_BENCH_ARGS",
        `--targets: unknown target ${JSON.stringify(t)} (known: ${TARGETS.join(", ")})`,
      );
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  if (!(rate > 0))
    throw new BenchError("TETHER_ERR_BENCH_ARGS", `--rate: not a positive number: ${values.rate}`);
  if (!(seconds >= 2))
    throw new BenchError("TETHER_ERR_BENCH_ARGS", `--seconds: at least 2: ${values.seconds}`);
  preflight(targets as BreakdownTarget[]);
  const dir = mkdtempSync(join(os.tmpdir(), "tether-cpu-breakdown-"));
  const upstreamPorts = [await freePort(), await freePort()];
  const upstream = await startUpstreamNginx(dir, upstreamPorts, LOAD_CPU);
  const upstreams = upstreamPorts.map((port) => ({ host: "127.0.0.1", port }));
  const rows: Breakdown[] = [];
  try {
    for (const kind of targets as BreakdownTarget[]) {
      const options = {
        dir,
        port: await freePort(),
        adminPort: await freePort(),
        upstreams,
        cpus: PROXY_CPU,
        // --perf-basic-prof also writes V8's code-event log: into the run's directory, not the cwd.
        nodeFlags: [
          "--perf-basic-prof",
          `--logfile=${join(dir, `${kind}-v8.log`)}`,
          "--no-logfile-per-isolate",
        ],
      };
      const target =
        kind === "node-relay" ? await startAnchor(kind, options) : await startProxy(kind, options);
      try {
        await waitServing(target.origin, PAYLOAD_PATH, 10_000);
        process.stderr.write(`[cpu-breakdown] ${kind}: ${seconds} s at ${rate} req/s under perf record\n`);
        rows.push(await measure(target, rate, seconds, dir));
      } finally {
        await target.proc?.kill();
      }
    }
  } finally {
    await upstream.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  const report = [
    `# CPU per request at ${rate} req/s (${seconds} s, perf record -g -F 4999)`,
    "",
    `Command: \`node bench/src/cpu-breakdown.ts ${process.argv.slice(2).join(" ")}\`; proxy on CPU ${PROXY_CPU}, loadgen and upstream nginx on CPU ${LOAD_CPU}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}.`,
    "",
    breakdownTable(rows),
    "",
  ].join("\n");
  process.stdout.write(report);
  if (values.out !== undefined) writeFileSync(values.out, report);
}

if (import.meta.main) runBench(main);
