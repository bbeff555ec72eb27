/**
 * The operator at fleet size, in one run: N Agents, each with one ProxyRoute to a shared in-cluster
 * backend Service, over M external PolicyServerClusters, all created before the operator starts.
 * Measures (1) the cold reconcile, from spawning the built operator until every Agent and
 * ProxyRoute has status for its generation; (2) N light ADS clients (`AdsClient` from
 * `@tether/xds`, one per Agent, ACKing like a sidecar) connected, and the operator's RSS then;
 * (3) one EndpointSlice change of the shared backend reaching all N clients (its route cluster is
 * EDS for every Agent), p50/p99 over `--changes` changes; (4) the operator's CPU while idle over
 * `--idle-seconds` with every stream open; its VmRSS and VmHWM throughout.
 *
 * Run: `node bench/src/operator-scale.ts [--agents 1000] [--pscs 100] [--changes 20] [--idle-seconds 60]
 * [--node-options="--max-semi-space-size=1 --optimize-for-size"] [--env "KEY=value ..."]`. Control plane,
 * operator and this driver share the machine.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AdsFleet } from "./fanout-fleet.ts";
import { percentile } from "./fanout-report.ts";
import { rollingSlice, until, type KubeClient } from "./fanout-cluster.ts";
import {
  caBundleFile,
  metricSum,
  operatorQuiet,
  REPO,
  startOperatorPlane,
  XDS_NAME,
} from "./operator-plane.ts";
import { BenchError, freePort, pause, Proc, runBench } from "./proc.ts";
import { cpuSeconds, memory } from "./procstat.ts";

const NS = "scale";
const BACKEND = "backend";
const BACKEND_PORT = 8080;

interface StatusList {
  items: { metadata: { generation?: number }; status?: { observedGeneration?: number } }[];
}

function manifests(agents: number, pscs: number): string[] {
  const docs: string[] = [
    `apiVersion: v1
kind: Service
metadata: {name: ${BACKEND}, namespace: ${NS}}
spec: {ports: [{name: http, port: ${String(BACKEND_PORT)}}]}`,
  ];
  for (let p = 0; p < pscs; p++) {
    docs.push(`apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps-${String(p)}, namespace: ${NS}}
spec: {port: 44443, external: {servers: [{host: 192.0.2.1}, {host: 192.0.2.2, priority: 1}]}}`);
  }
  for (let a = 0; a < agents; a++) {
    docs.push(`apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: a-${String(a)}, namespace: ${NS}}
spec:
  policyServerClusterRef: {name: ps-${String(a % pscs)}}
  listener: {port: 15001}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}`);
    docs.push(`apiVersion: tether.dev/v1alpha1
kind: ProxyRoute
metadata: {name: r-${String(a)}, namespace: ${NS}}
spec:
  agentRef: {name: a-${String(a)}}
  match: {pathPrefix: /app/}
  backend: {serviceRef: {name: ${BACKEND}, port: ${String(BACKEND_PORT)}}}`);
  }
  return docs;
}

/** Step `k` of a rolling restart of the backend: the previous new pod drains, a new one is ready. */
function backendSlice(k: number): { body: object; newest: string } {
  return rollingSlice(
    {
      namespace: NS,
      service: BACKEND,
      sliceName: `${BACKEND}-1`,
      port: { name: "http", port: BACKEND_PORT },
      subnet: "10.3",
    },
    k,
  );
}

const SLICES = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;

/** How many Agents and ProxyRoutes have status for their generation, of how many. */
async function reconciled(client: KubeClient): Promise<{ done: number; of: number }> {
  let done = 0;
  let of = 0;
  for (const plural of ["agents", "proxyroutes"]) {
    const list = await client.request<StatusList>(
      "GET",
      `/apis/tether.dev/v1alpha1/namespaces/${NS}/${plural}`,
    );
    of += list.items.length;
    done += list.items.filter((o) => o.status?.observedGeneration === o.metadata.generation).length;
  }
  return { done, of };
}

/** The operator's V8 heap spaces, used / committed MiB each, from its /metrics (for stderr). */
async function heapSpaces(adminAddress: string): Promise<string> {
  const text = await (
    await fetch(`http://${adminAddress}/metrics`, { signal: AbortSignal.timeout(5_000) })
  ).text();
  const spaces = new Map<string, [number, number]>();
  for (const line of text.split("\n")) {
    const m = /^nodejs_heap_space_size_(used|total)_bytes\{space="(\w+)"\} (\S+)/.exec(line);
    if (m === null) continue;
    const [, kind, space = "", value] = m;
    const entry = spaces.get(space) ?? [0, 0];
    entry[kind === "used" ? 0 : 1] = Number(value) / 2 ** 20;
    spaces.set(space, entry);
  }
  return [...spaces]
    .filter(([, [, total]]) => total >= 1)
    .map(([space, [used, total]]) => `${space} ${used.toFixed(0)}/${total.toFixed(0)}`)
    .join(", ");
}

/** The operator's V8 heap, used / total, from its /metrics. */
async function heapMb(adminAddress: string): Promise<string> {
  const used = await metricSum(adminAddress, "nodejs_heap_size_used_bytes");
  const total = await metricSum(adminAddress, "nodejs_heap_size_total_bytes");
  return `${(used / 2 ** 20).toFixed(0)} of ${(total / 2 ** 20).toFixed(0)} MiB`;
}

function options(): {
  agents: number;
  pscs: number;
  changes: number;
  idleSeconds: number;
  coldDeadlineSeconds: number;
  nodeOptions: string[];
  /** The operator's --concurrency; empty: its default. */
  concurrency: string;
  /** Extra environment of the operator (`KEY=value`), as an image's ENV. */
  env: Record<string, string>;
} {
  const { values } = parseArgs({
    options: {
      agents: { type: "string", default: "1000" },
      pscs: { type: "string", default: "100" },
      changes: { type: "string", default: "20" },
      "idle-seconds": { type: "string", default: "60" },
      "node-options": { type: "string", default: "" },
      "cold-deadline": { type: "string", default: "300" },
      concurrency: { type: "string", default: "" },
      env: { type: "string", default: "" },
    },
  });
  const agents = Number(values.agents);
  const pscs = Number(values.pscs);
  const changes = Number(values.changes);
  const idleSeconds = Number(values["idle-seconds"]);
  const ok =
    [agents, pscs, changes, idleSeconds].every((n) => Number.isInteger(n)) &&
    agents >= 1 &&
    agents <= 5000 &&
    pscs >= 1 &&
    changes >= 1 &&
    changes <= 200 &&
    idleSeconds >= 1;
  if (!ok)
    throw new BenchError(
      "TETHER_ERR_BENCH_ARGS",
      "--agents 1..5000; --pscs ≥ 1; --changes 1..200; --idle-seconds ≥ 1",
    );
  const nodeOptions = values["node-options"].split(" ").filter((o) => o !== "");
  const coldDeadlineSeconds = Number(values["cold-deadline"]);
  const env: Record<string, string> = {};
  for (const pair of values.env.split(" ").filter((p) => p !== "")) {
    const eq = pair.indexOf("=");
    if (eq < 1)
      throw new BenchError("TETHER_ERR_BENCH_ARGS", `--env: ${JSON.stringify(pair)} is not KEY=value`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    agents,
    pscs,
    changes,
    idleSeconds,
    coldDeadlineSeconds,
    nodeOptions,
    concurrency: values.concurrency,
    env,
  };
}

async function main(): Promise<void> {
  const opts = options();
  const loadAtStart = readFileSync("/proc/loadavg", "utf8").trim();
  const startedAt = new Date();
  const plane = await startOperatorPlane(
    ["envoy", "xds", "operator"],
    ["agents", "proxyroutes", "policyserverclusters"],
  );
  const kubectl = plane.kubectl;
  let operator: Proc | undefined;
  let fleet: AdsFleet | undefined;
  try {
    await kubectl(["create", "namespace", NS]);
    const client = await plane.connect();
    const docs = manifests(opts.agents, opts.pscs);
    for (let i = 0; i < docs.length; i += 300)
      await kubectl(["create", "-f", "-"], docs.slice(i, i + 300).join("\n---\n"));
    let step = 0;
    await client.request("POST", SLICES, { body: backendSlice(0).body });

    const xdsPort = await freePort();
    const spawnedAt = performance.now();
    operator = new Proc({
      name: "tether-operator",
      command: process.execPath,
      args: [
        ...opts.nodeOptions,
        join(REPO, "operator", "bin", "tether-operator.js"),
        ...["--leader-elect", "false", "--resync-period", "0", "--namespaces", NS],
        ...["--admin-address", "127.0.0.1:0", "--xds-address", `127.0.0.1:${String(xdsPort)}`],
        ...["--xds-service", "tether-xds.tether-system", "--log-level", "info"],
        // The fleet's clients are not pods and present no ServiceAccount tokens.
        ...["--xds-auth", "false"],
        ...(opts.concurrency === "" ? [] : ["--concurrency", opts.concurrency]),
      ],
      cwd: REPO,
      env: { ...opts.env, PATH: process.env["PATH"] ?? "", KUBECONFIG: plane.kubeconfigPath },
    });
    const pid = operator.pid;
    const admin = await operator.waitForStdoutLine((l) => /"admin":"([^"]+)"/.exec(l)?.[1], 60_000);
    // Past the deadline the run goes on (the rest is still worth measuring) and says how far it got.
    let progress = { done: 0, of: 1 };
    while (performance.now() - spawnedAt < opts.coldDeadlineSeconds * 1000) {
      progress = await reconciled(client);
      if (progress.done === progress.of) break;
      await pause(500);
    }
    const coldMs = performance.now() - spawnedAt;
    const coldDone = progress.done === progress.of;
    const coldCpu = cpuSeconds(pid);
    const coldWrites = await metricSum(admin, "tether_operator_api_writes_total");
    const rssAfterColdMb = memory(pid).rssMb;
    const heapAfterCold = await heapMb(admin);
    process.stderr.write(
      `operator-scale: cold reconcile ${(coldMs / 1000).toFixed(1)} s (${String(progress.done)}/${String(progress.of)}), VmRSS ${rssAfterColdMb.toFixed(0)} MiB (V8 heap used ${heapAfterCold})\n`,
    );
    await operatorQuiet(pid, 120_000);
    process.stderr.write(
      `operator-scale: quiet after the cold reconcile: VmRSS ${memory(pid).rssMb.toFixed(0)} MiB, V8 heap used ${await heapMb(admin)} (${await heapSpaces(admin)})\n`,
    );

    // Over TLS, as deployed: every client verifies the operator's certificate with its CA.
    fleet = new AdsFleet({ host: "127.0.0.1", port: xdsPort }, "*", {
      caFile: await caBundleFile(client),
      sni: XDS_NAME,
      verifyName: XDS_NAME,
    });
    const connectStart = performance.now();
    await fleet.connect(
      Array.from({ length: opts.agents }, (_, a) => ({
        nodeId: `${NS}/a-${String(a)}-0`,
        group: `${NS}/agent/a-${String(a)}`,
      })),
    );
    const first = backendSlice(0).newest;
    await until(
      `${String(opts.agents)} clients with EDS`,
      () => Promise.resolve(fleet?.holding(first) === opts.agents),
      opts.coldDeadlineSeconds * 1000,
      50,
    );
    const connectMs = performance.now() - connectStart;
    process.stderr.write(
      `operator-scale: ${String(opts.agents)} clients hold EDS after ${connectMs.toFixed(0)} ms, VmRSS ${memory(pid).rssMb.toFixed(0)} MiB\n`,
    );
    await operatorQuiet(pid, 60_000);
    const rssConnectedMb = memory(pid).rssMb;
    const heapConnected = await heapMb(admin);
    process.stderr.write(
      `operator-scale: quiet with the streams: VmRSS ${rssConnectedMb.toFixed(0)} MiB, V8 heap used ${heapConnected} (${await heapSpaces(admin)})\n`,
    );

    const latencies: number[] = [];
    let rssMaxMb = rssConnectedMb;
    const cpuBefore = cpuSeconds(pid);
    const wallBefore = performance.now();
    for (let c = 0; c < opts.changes; c++) {
      step++;
      const { body, newest } = backendSlice(step);
      const arrived = fleet.expect(newest, 60_000);
      await client.request("PUT", `${SLICES}/${BACKEND}-1`, { body });
      const written = performance.now();
      for (const at of (await arrived).values()) latencies.push(at - written);
      rssMaxMb = Math.max(rssMaxMb, memory(pid).rssMb);
      await pause(300);
    }
    const changeCpu = cpuSeconds(pid) - cpuBefore;
    const changeWall = (performance.now() - wallBefore) / 1000;
    latencies.sort((a, b) => a - b);

    await operatorQuiet(pid, 60_000);
    const idleBefore = cpuSeconds(pid);
    const idleStart = performance.now();
    let rssIdleMaxMb = 0;
    while (performance.now() - idleStart < opts.idleSeconds * 1000) {
      await pause(1000);
      rssIdleMaxMb = Math.max(rssIdleMaxMb, memory(pid).rssMb);
    }
    const idleCpu = (cpuSeconds(pid) - idleBefore) / ((performance.now() - idleStart) / 1000);
    const end = memory(pid);
    const heapEnd = await heapMb(admin);
    const loadAtEnd = readFileSync("/proc/loadavg", "utf8").trim();
    const ms = (v: number): string => `${v.toFixed(0)} ms`;
    const mib = (v: number): string => `${v.toFixed(0)} MiB`;
    const command = `node bench/src/operator-scale.ts --agents ${String(opts.agents)} --pscs ${String(opts.pscs)} --changes ${String(opts.changes)} --idle-seconds ${String(opts.idleSeconds)}${opts.concurrency === "" ? "" : ` --concurrency ${opts.concurrency}`}${opts.nodeOptions.length === 0 ? "" : ` --node-options "${opts.nodeOptions.join(" ")}"`}${
      Object.keys(opts.env).length === 0
        ? ""
        : ` --env "${Object.entries(opts.env)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")}"`
    }`;
    const rows: [string, string][] = [
      [
        "cold reconcile (spawn → every Agent and ProxyRoute has status for its generation)",
        `${coldDone ? "" : "not done: "}${(coldMs / 1000).toFixed(1)} s${coldDone ? "" : ` (${String(progress.done)} of ${String(progress.of)} reconciled)`} (operator CPU ${coldCpu.toFixed(1)} s, ${String(coldWrites)} API writes)`,
      ],
      ["VmRSS after the cold reconcile", `${mib(rssAfterColdMb)} (V8 heap used ${heapAfterCold})`],
      [`connect ${String(opts.agents)} ADS clients → all hold EDS`, ms(connectMs)],
      ["VmRSS, all streams connected, quiet", `${mib(rssConnectedMb)} (V8 heap used ${heapConnected})`],
      [
        `EndpointSlice change → client, ${String(latencies.length)} receipts`,
        `p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}, max ${ms(latencies.at(-1) ?? Number.NaN)}`,
      ],
      [
        "operator CPU per change",
        ms((changeCpu / opts.changes) * 1000) +
          ` (${changeCpu.toFixed(2)} s over ${changeWall.toFixed(1)} s)`,
      ],
      ["VmRSS, largest during the changes", mib(rssMaxMb)],
      [
        `idle CPU over ${String(opts.idleSeconds)} s, streams open`,
        `${(idleCpu * 100).toFixed(2)} % of a core`,
      ],
      [
        "VmRSS idle (largest) / VmHWM at the end",
        `${mib(rssIdleMaxMb)} / ${mib(end.hwmMb)} (V8 heap used ${heapEnd})`,
      ],
    ];
    process.stdout.write(
      [
        `### Operator at scale (${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC)`,
        "",
        `\`${command}\` — ${String(opts.agents)} Agents, ${String(opts.agents)} ProxyRoutes (serviceRef to one shared Service), ${String(opts.pscs)} external PolicyServerClusters, ${String(opts.agents)} ADS streams (light clients in the driver).`,
        `/proc/loadavg at start \`${loadAtStart}\`, at end \`${loadAtEnd}\`.`,
        "",
        "| measurement | value |",
        "|---|---|",
        ...rows.map(([k, v]) => `| ${k} | ${v} |`),
        "",
      ].join("\n"),
    );
    await client.close();
  } finally {
    await fleet?.stop();
    await operator?.stop();
    await plane.stop();
  }
}

runBench(main);
