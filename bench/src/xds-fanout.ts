/**
 * xDS fan-out: how fast one EndpointSlice change of a managed policy-server Service reaches N
 * connected sidecars. Against the test control plane (etcd + kube-apiserver on loopback), the built
 * operator (`operator/bin/tether-operator.js`) serves ADS on a free loopback port; one managed
 * PolicyServerCluster and N / podsPerAgent Agents use it; N light ADS clients in this process (one
 * per sidecar pod, node id `<ns>/<agent>-<pod>`, group `<ns>/agent/<agent>`) subscribe like a
 * sidecar. Each change is a rolling-restart step written by hand (there is no kubelet): the slice's
 * newest pod turns terminating and a new one is ready. Latency per client runs from the PUT
 * returning to the client receiving the ClusterLoadAssignment with the new pod.
 *
 * Run: `node bench/src/xds-fanout.ts [--sizes 100,1000] [--pods-per-agent 10] [--changes 20]`.
 * The control plane, the operator and this driver (with every client) share the machine.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { AdsFleet, type FleetMember } from "./fanout-fleet.ts";
import { BenchError, freePort, Proc, runBench } from "./proc.ts";
import { cpuSeconds, memory } from "./procstat.ts";

const REPO = join(import.meta.dirname, "..", "..");
const NS = "fanout";
const PSC = "ps";
/** The cluster (and EDS service_name) of an Agent's managed policy servers. */
const EDS_CLUSTER = "policy-server";

interface ControlPlane {
  readonly kubeconfigPath: string;
  kubectl(
    args: readonly string[],
    options?: { input?: string; timeoutMs?: number },
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}
interface KubeClient {
  request<T>(method: string, path: string, options?: { body?: unknown; contentType?: string }): Promise<T>;
  close(): Promise<void>;
}
interface AgentList {
  items: { metadata: { generation?: number }; status?: { observedGeneration?: number } }[];
}

// Loaded at run time from the other workspaces (outside this package's rootDir).
async function load<T>(relative: string): Promise<T> {
  return (await import(pathToFileURL(join(REPO, relative)).href)) as T;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function pause(ms: number): Promise<void> {
  await new Promise<void>((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `intervalMs` until it returns true; throws at the deadline. */
async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 500,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline)
      throw new BenchError(
        "TETHER_ERR_BENCH_TIMEOUT",
        `timed out after ${String(timeoutMs)} ms waiting for ${what}`,
      );
    await pause(intervalMs);
  }
}

function agentsManifest(from: number, to: number): string {
  const docs: string[] = [];
  for (let a = from; a < to; a++) {
    docs.push(`apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: a-${String(a)}, namespace: ${NS}}
spec:
  policyServerClusterRef: {name: ${PSC}}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}`);
  }
  return docs.join("\n---\n");
}

/** Step `k` of a rolling restart of three policy-server pods: the previous new pod drains. */
function sliceAt(k: number): { body: object; newest: string } {
  const ip = (n: number): string => `10.2.${String(Math.floor(n / 250))}.${String((n % 250) + 1)}`;
  const endpoint = (address: string, ready: boolean): object => ({
    addresses: [address],
    conditions: { ready, serving: true, terminating: !ready },
  });
  const endpoints = [endpoint("10.1.0.1", true), endpoint("10.1.0.2", true)];
  if (k > 0) endpoints.push(endpoint(ip(k - 1), false));
  endpoints.push(endpoint(ip(k), true));
  return {
    newest: ip(k),
    body: {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: `${PSC}-fanout`, namespace: NS, labels: { "kubernetes.io/service-name": PSC } },
      addressType: "IPv4",
      ports: [{ name: EDS_CLUSTER, port: 44443, protocol: "TCP" }],
      endpoints,
    },
  };
}

interface SizeResult {
  readonly clients: number;
  readonly agents: number;
  readonly changes: number;
  readonly latencies: number[];
  readonly lastPerChange: number[];
  readonly connectMs: number;
  readonly operatorCpuDuringChanges: number;
  readonly changesWallSeconds: number;
  readonly driverCpuDuringChanges: number;
  readonly rssConnectedMb: number;
  readonly rssMaxMb: number;
  readonly hwmMb: number;
  readonly pushes: number;
}

async function metricSum(adminAddress: string, name: string): Promise<number> {
  const text = await (
    await fetch(`http://${adminAddress}/metrics`, { signal: AbortSignal.timeout(5_000) })
  ).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

/** Waits until the operator used under 3 % of a core over one second (its cold work is done). */
async function operatorQuiet(pid: number, timeoutMs: number): Promise<void> {
  let before = cpuSeconds(pid);
  await until(
    "the operator to go quiet",
    () => {
      const now = cpuSeconds(pid);
      const quiet = now - before < 0.03;
      before = now;
      return Promise.resolve(quiet);
    },
    timeoutMs,
    1000,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string", default: "100,1000" },
      "pods-per-agent": { type: "string", default: "10" },
      changes: { type: "string", default: "20" },
    },
  });
  const sizes = values.sizes
    .split(",")
    .map(Number)
    .sort((a, b) => a - b);
  const podsPerAgent = Number(values["pods-per-agent"]);
  const changes = Number(values.changes);
  if (
    sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 5000) ||
    !(podsPerAgent >= 1) ||
    !(changes >= 1 && changes <= 200)
  )
    throw new BenchError(
      "TETHER_ERR_BENCH_ARGS",
      "--sizes 1..5000 each, --pods-per-agent ≥ 1, --changes 1..200",
    );
  const loadAtStart = readFileSync("/proc/loadavg", "utf8").trim();
  const startedAt = new Date();

  execFileSync(
    process.execPath,
    [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-b", "xds", "operator"],
    {
      cwd: REPO,
    },
  );
  const { startControlPlane } = await load<{ startControlPlane: () => Promise<ControlPlane> }>(
    "e2e/src/controlplane/index.ts",
  );
  const { KubeClient: Client } = await load<{
    KubeClient: { create(o: object, path: string): Promise<KubeClient> };
  }>("operator/src/kube/client.ts");
  const cp = await startControlPlane();
  let operator: Proc | undefined;
  let fleet: AdsFleet | undefined;
  try {
    const kubectl = async (args: string[], input?: string): Promise<void> => {
      const r = await cp.kubectl(
        args,
        input === undefined ? { timeoutMs: 300_000 } : { input, timeoutMs: 300_000 },
      );
      if (r.code !== 0)
        throw new BenchError("TETHER_ERR_BENCH_KUBECTL", `kubectl ${args.join(" ")}: ${r.stderr}`);
    };
    await kubectl(["apply", "--server-side", "-f", join(REPO, "crds")]);
    await kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/agents.tether.dev",
      "crd/policyserverclusters.tether.dev",
    ]);
    await kubectl(["create", "namespace", NS]);
    await kubectl(
      ["create", "-f", "-"],
      `apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ${PSC}, namespace: ${NS}}
spec:
  port: 44443
  managed:
    replicas: 3
    template: {spec: {containers: [{name: ps, image: "ps:1"}]}}`,
    );
    const client = await Client.create({}, cp.kubeconfigPath);
    const slicePath = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;
    let step = 0;
    await client.request("POST", slicePath, { body: sliceAt(step).body });

    const xdsPort = await freePort();
    operator = new Proc({
      name: "tether-operator",
      command: process.execPath,
      args: [
        join(REPO, "operator", "bin", "tether-operator.js"),
        "--leader-elect",
        "false",
        "--resync-period",
        "0",
        "--namespaces",
        NS,
        "--admin-address",
        "127.0.0.1:0",
        "--xds-address",
        `127.0.0.1:${String(xdsPort)}`,
        "--xds-service",
        "tether-xds.tether-system",
        "--log-level",
        "info",
      ],
      cwd: REPO,
      env: { PATH: process.env["PATH"] ?? "", KUBECONFIG: cp.kubeconfigPath },
    });
    const adminAddress = await operator.waitForStdoutLine((l) => /"admin":"([^"]+)"/.exec(l)?.[1], 30_000);
    const pid = operator.pid;
    fleet = new AdsFleet({ host: "127.0.0.1", port: xdsPort }, EDS_CLUSTER);

    const results: SizeResult[] = [];
    let agents = 0;
    for (const size of sizes) {
      // More Agents for this size, reconciled, and the operator idle again before clients connect.
      const wantAgents = Math.ceil(size / podsPerAgent);
      for (let a = agents; a < wantAgents; a += 300)
        await kubectl(["create", "-f", "-"], agentsManifest(a, Math.min(wantAgents, a + 300)));
      agents = Math.max(agents, wantAgents);
      await until(
        `${String(agents)} Agents reconciled`,
        async () => {
          const list = await client.request<AgentList>(
            "GET",
            `/apis/tether.dev/v1alpha1/namespaces/${NS}/agents`,
          );
          return (
            list.items.filter((o) => o.status?.observedGeneration === o.metadata.generation).length >= agents
          );
        },
        300_000,
        1000,
      );
      await operatorQuiet(pid, 120_000);

      // Sidecar i is pod i of Agent i mod agents: every Agent gets ~size/agents sidecars.
      const members: FleetMember[] = [];
      for (let i = fleet.size; i < size; i++) {
        const agent = `a-${String(i % agents)}`;
        members.push({ nodeId: `${NS}/${agent}-${String(i)}`, group: `${NS}/agent/${agent}` });
      }
      const connectStart = performance.now();
      await fleet.connect(members);
      const current = sliceAt(step).newest;
      await until(
        `${String(size)} clients with EDS`,
        () => Promise.resolve(fleet?.holding(current) === size),
        120_000,
        50,
      );
      const connectMs = performance.now() - connectStart;
      await operatorQuiet(pid, 60_000);
      const rssConnectedMb = memory(pid).rssMb;

      const pushesBefore = await metricSum(adminAddress, "tether_operator_xds_pushes_total");
      const latencies: number[] = [];
      const lastPerChange: number[] = [];
      let rssMaxMb = rssConnectedMb;
      const cpuBefore = cpuSeconds(pid);
      const driverBefore = process.cpuUsage();
      const wallBefore = performance.now();
      for (let c = 0; c < changes; c++) {
        step++;
        const { body, newest } = sliceAt(step);
        const arrived = fleet.expect(newest, 60_000);
        await client.request("PUT", `${slicePath}/${PSC}-fanout`, { body });
        const written = performance.now();
        const seen = await arrived;
        let last = 0;
        for (const at of seen.values()) {
          latencies.push(at - written);
          last = Math.max(last, at - written);
        }
        lastPerChange.push(last);
        rssMaxMb = Math.max(rssMaxMb, memory(pid).rssMb);
        // Let the ACKs of this change land before the next one (a rollout's steps are seconds apart).
        await pause(300);
      }
      const changesWallSeconds = (performance.now() - wallBefore) / 1000;
      const driverCpu = process.cpuUsage(driverBefore);
      const operatorCpuDuringChanges = cpuSeconds(pid) - cpuBefore;
      latencies.sort((a, b) => a - b);
      lastPerChange.sort((a, b) => a - b);
      results.push({
        clients: size,
        agents,
        changes,
        latencies,
        lastPerChange,
        connectMs,
        operatorCpuDuringChanges,
        changesWallSeconds,
        driverCpuDuringChanges: (driverCpu.user + driverCpu.system) / 1e6,
        rssConnectedMb,
        rssMaxMb,
        hwmMb: memory(pid).hwmMb,
        pushes: (await metricSum(adminAddress, "tether_operator_xds_pushes_total")) - pushesBefore,
      });
      process.stderr.write(`xds-fanout: ${String(size)} clients done\n`);
    }
    process.stdout.write(report(results, { podsPerAgent, changes, sizes, loadAtStart, startedAt }));
    await fleet.stop();
    fleet = undefined;
    await client.close();
  } finally {
    await fleet?.stop();
    await operator?.stop();
    await cp.stop();
  }
}

function report(
  results: readonly SizeResult[],
  run: {
    podsPerAgent: number;
    changes: number;
    sizes: readonly number[];
    loadAtStart: string;
    startedAt: Date;
  },
): string {
  const ms = (v: number): string => `${v.toFixed(1)} ms`;
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const lines = [
    `### xDS fan-out (${run.startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC)`,
    "",
    `Machine: ${String(cpus().length)} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}; etcd, kube-apiserver, the operator and the driver (every ADS client) on the same machine.`,
    `Command: \`node bench/src/xds-fanout.ts --sizes ${run.sizes.join(",")} --pods-per-agent ${String(run.podsPerAgent)} --changes ${String(run.changes)}\``,
    `Load average (/proc/loadavg) at start: ${run.loadAtStart}; at end: ${readFileSync("/proc/loadavg", "utf8").trim()} (1-min load ${loadavg()[0]?.toFixed(2) ?? "?"}).`,
    "",
    "| sidecars (ADS clients) | Agents (groups) | connect → all have EDS | change → client: p50 | p99 | max | change → last client: median | operator CPU per change | pushes per change |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    lines.push(
      `| ${String(r.clients)} | ${String(r.agents)} | ${(r.connectMs / 1000).toFixed(2)} s | ${ms(percentile(r.latencies, 50))} | ${ms(percentile(r.latencies, 99))} | ${ms(r.latencies.at(-1) ?? Number.NaN)} | ${ms(percentile(r.lastPerChange, 50))} | ${((r.operatorCpuDuringChanges / r.changes) * 1000).toFixed(0)} ms | ${(r.pushes / r.changes).toFixed(0)} |`,
    );
  }
  lines.push(
    "",
    "| operator process (/proc) | " + results.map((r) => `${String(r.clients)} sidecars`).join(" | ") + " |",
    "|---|" + results.map(() => "---|").join(""),
    "| VmRSS, all clients connected, idle | " +
      results.map((r) => `${r.rssConnectedMb.toFixed(0)} MiB`).join(" | ") +
      " |",
    "| VmRSS, largest after a change | " +
      results.map((r) => `${r.rssMaxMb.toFixed(0)} MiB`).join(" | ") +
      " |",
    "| VmHWM (peak since start) | " + results.map((r) => `${r.hwmMb.toFixed(0)} MiB`).join(" | ") + " |",
    `| CPU during the ${String(run.changes)} changes (utime+stime) | ` +
      results
        .map(
          (r) => `${r.operatorCpuDuringChanges.toFixed(2)} s over ${r.changesWallSeconds.toFixed(1)} s wall`,
        )
        .join(" | ") +
      " |",
    "| driver CPU (all ADS clients) during the changes | " +
      results.map((r) => `${r.driverCpuDuringChanges.toFixed(2)} s`).join(" | ") +
      " |",
    "",
  );
  return `${lines.join("\n")}\n`;
}

runBench(main);
