/**
 * xDS fan-out: how fast one EndpointSlice change of a managed policy-server Service reaches N
 * connected sidecars. Against the test control plane (etcd + kube-apiserver on loopback), the built
 * operator (`operator/bin/tether-operator.js`) serves ADS on a free loopback port; one managed
 * PolicyServerCluster and N / podsPerAgent Agents use it; N light ADS clients in this process (one
 * per sidecar pod, node id `<ns>/<agent>-<pod>`, group `<ns>/agent/<agent>`) subscribe like a
 * sidecar. Each change is a rolling-restart step written by hand (there is no kubelet): the slice's
 * newest pod turns terminating and a new one is ready. Latency per client runs from the PUT
 * returning to the client receiving the ClusterLoadAssignment with the new pod. A few real sidecar
 * processes in a namespace of their own cross-check the light client.
 *
 * Run: `node bench/src/xds-fanout.ts [--sizes 100,1000] [--pods-per-agent 10] [--changes 20] [--sidecars 5]`.
 * The control plane, the operator and this driver (with every client) share the machine.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AdsFleet, type FleetMember } from "./fanout-fleet.ts";
import { fanoutReport, type CrossCheck, type SizeResult } from "./fanout-report.ts";
import { SidecarFleet } from "./fanout-sidecars.ts";
import { agentManifest, Bench, EDS_CLUSTER, PS_PORT, pscManifest, until } from "./fanout-cluster.ts";
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

const NS = "fanout";
/** The cross-check's namespace: the operator rebuilds snapshots per namespace. */
const NS_REAL = "fanout-real";

async function measureSize(
  bench: Bench,
  fleet: AdsFleet,
  operator: { pid: number; admin: string },
  size: { clients: number; agents: number; changes: number },
): Promise<SizeResult> {
  const { pid } = operator;
  await operatorQuiet(pid, 120_000);
  // Sidecar i is a pod of Agent i mod agents: every Agent gets ~clients/agents sidecars.
  const members: FleetMember[] = [];
  for (let i = fleet.size; i < size.clients; i++) {
    const agent = `a-${String(i % size.agents)}`;
    members.push({ nodeId: `${NS}/${agent}-${String(i)}`, group: `${NS}/agent/${agent}` });
  }
  const connectStart = performance.now();
  await fleet.connect(members);
  const current = bench.newest(NS);
  await until(
    `${String(size.clients)} clients with EDS`,
    () => Promise.resolve(fleet.holding(current) === size.clients),
    120_000,
    50,
  );
  const connectMs = performance.now() - connectStart;
  await operatorQuiet(pid, 60_000);
  const rssConnectedMb = memory(pid).rssMb;

  const pushesBefore = await metricSum(operator.admin, "tether_operator_xds_pushes_total");
  const latencies: number[] = [];
  const lastPerChange: number[] = [];
  let rssMaxMb = rssConnectedMb;
  const cpuBefore = cpuSeconds(pid);
  const driverBefore = process.cpuUsage();
  const wallBefore = performance.now();
  for (let c = 0; c < size.changes; c++) {
    // Armed before the write: the operator may push before the PUT's answer reaches this process.
    const { newest, write } = bench.nextChange(NS);
    const arrived = fleet.expect(newest, 60_000);
    const written = await write();
    const seen = await arrived;
    let last = 0;
    for (const at of seen.values()) {
      latencies.push(at - written);
      last = Math.max(last, at - written);
    }
    lastPerChange.push(last);
    rssMaxMb = Math.max(rssMaxMb, memory(pid).rssMb);
    // Let this change's ACKs land before the next (a rollout's steps are seconds apart).
    await pause(300);
  }
  const driverCpu = process.cpuUsage(driverBefore);
  return {
    ...size,
    latencies: latencies.sort((a, b) => a - b),
    lastPerChange: lastPerChange.sort((a, b) => a - b),
    connectMs,
    operatorCpuDuringChanges: cpuSeconds(pid) - cpuBefore,
    changesWallSeconds: (performance.now() - wallBefore) / 1000,
    driverCpuDuringChanges: (driverCpu.user + driverCpu.system) / 1e6,
    rssConnectedMb,
    rssMaxMb,
    hwmMb: memory(pid).hwmMb,
    pushes: (await metricSum(operator.admin, "tether_operator_xds_pushes_total")) - pushesBefore,
  };
}

/** K real sidecars (one Agent each: their listeners need distinct ports) and K light clients. */
async function crossCheck(
  bench: Bench,
  xdsPort: number,
  sidecars: number,
  changes: number,
  caFile: string,
): Promise<CrossCheck> {
  const manifests: string[] = [];
  for (let i = 0; i < sidecars; i++)
    manifests.push(agentManifest(NS_REAL, `sc-${String(i)}`, await freePort()));
  await bench.createAgents(NS_REAL, manifests);
  const groups = Array.from({ length: sidecars }, (_, i) => `${NS_REAL}/agent/sc-${String(i)}`);
  const dir = mkdtempSync(join(tmpdir(), "tether-xds-fanout-"));
  const real = new SidecarFleet(EDS_CLUSTER);
  const light = new AdsFleet({ host: "127.0.0.1", port: xdsPort }, EDS_CLUSTER, {
    caFile,
    sni: XDS_NAME,
    verifyName: XDS_NAME,
  });
  try {
    await real.start(
      REPO,
      dir,
      groups.map((group, i) => ({ nodeId: `${NS_REAL}/sc-${String(i)}-0`, group })),
      xdsPort,
      { caFile, name: XDS_NAME },
    );
    await light.connect(groups.map((group, i) => ({ nodeId: `${NS_REAL}/sc-${String(i)}-1`, group })));
    const current = bench.newest(NS_REAL);
    await real.expect(`${current}:${String(PS_PORT)}`, 60_000);
    await until(
      "light clients with EDS",
      () => Promise.resolve(light.holding(current) === sidecars),
      60_000,
      50,
    );
    const realMs: number[] = [];
    const lightMs: number[] = [];
    for (let c = 0; c < changes; c++) {
      const { newest, write } = bench.nextChange(NS_REAL);
      const lightArrived = light.expect(newest, 60_000);
      const realArrived = real.expect(`${newest}:${String(PS_PORT)}`, 60_000);
      const written = await write();
      for (const at of (await lightArrived).values()) lightMs.push(at - written);
      for (const at of await realArrived) realMs.push(at - written);
      await pause(300);
    }
    return {
      sidecars,
      changes,
      real: realMs.sort((a, b) => a - b),
      light: lightMs.sort((a, b) => a - b),
      sidecarRssMb: real.pids.map((pid) => memory(pid).rssMb),
    };
  } finally {
    await light.stop();
    await real.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function options(): {
  sizes: number[];
  podsPerAgent: number;
  changes: number;
  sidecars: number;
  command: string;
} {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string", default: "100,1000" },
      "pods-per-agent": { type: "string", default: "10" },
      changes: { type: "string", default: "20" },
      sidecars: { type: "string", default: "5" },
    },
  });
  const sizes = values.sizes
    .split(",")
    .map(Number)
    .sort((a, b) => a - b);
  const podsPerAgent = Number(values["pods-per-agent"]);
  const changes = Number(values.changes);
  const sidecars = Number(values.sidecars);
  const ok =
    sizes.every((n) => Number.isInteger(n) && n >= 1 && n <= 5000) &&
    Number.isInteger(podsPerAgent) &&
    podsPerAgent >= 1 &&
    Number.isInteger(changes) &&
    changes >= 1 &&
    changes <= 200 &&
    Number.isInteger(sidecars) &&
    sidecars >= 0 &&
    sidecars <= 20;
  if (!ok)
    throw new BenchError(
      "TETHER_ERR_BENCH_ARGS",
      "--sizes: 1..5000 each; --pods-per-agent ≥ 1; --changes 1..200; --sidecars 0..20",
    );
  const command = `node bench/src/xds-fanout.ts --sizes ${sizes.join(",")} --pods-per-agent ${String(podsPerAgent)} --changes ${String(changes)} --sidecars ${String(sidecars)}`;
  return { sizes, podsPerAgent, changes, sidecars, command };
}

async function main(): Promise<void> {
  const opts = options();
  const loadAtStart = readFileSync("/proc/loadavg", "utf8").trim();
  const startedAt = new Date();
  const plane = await startOperatorPlane(
    ["envoy", "xds", "operator", "sidecar"],
    ["agents", "policyserverclusters"],
  );
  const kubectl = plane.kubectl;
  let operator: Proc | undefined;
  let fleet: AdsFleet | undefined;
  try {
    const client = await plane.connect();
    const bench = new Bench(client, kubectl);
    for (const ns of [NS, NS_REAL]) {
      await kubectl(["create", "-f", "-"], pscManifest(ns));
      await bench.createSlice(ns);
    }

    const xdsPort = await freePort();
    operator = new Proc({
      name: "tether-operator",
      command: process.execPath,
      args: [
        join(REPO, "operator", "bin", "tether-operator.js"),
        ...["--leader-elect", "false", "--resync-period", "0", "--namespaces", `${NS},${NS_REAL}`],
        ...["--admin-address", "127.0.0.1:0", "--xds-address", `127.0.0.1:${String(xdsPort)}`],
        ...["--xds-service", "tether-xds.tether-system", "--log-level", "info"],
        // The fleet's clients are not pods and present no ServiceAccount tokens.
        ...["--xds-auth", "false"],
      ],
      cwd: REPO,
      env: { PATH: process.env["PATH"] ?? "", KUBECONFIG: plane.kubeconfigPath },
    });
    const admin = await operator.waitForStdoutLine((l) => /"admin":"([^"]+)"/.exec(l)?.[1], 30_000);
    const pid = operator.pid;
    // Over TLS, as deployed: every client verifies the operator's certificate with its CA.
    const caFile = await caBundleFile(client);
    fleet = new AdsFleet({ host: "127.0.0.1", port: xdsPort }, EDS_CLUSTER, {
      caFile,
      sni: XDS_NAME,
      verifyName: XDS_NAME,
    });

    const results: SizeResult[] = [];
    let agents = 0;
    for (const clients of opts.sizes) {
      const want = Math.ceil(clients / opts.podsPerAgent);
      const manifests: string[] = [];
      for (let a = agents; a < want; a++) manifests.push(agentManifest(NS, `a-${String(a)}`));
      await bench.createAgents(NS, manifests);
      agents = Math.max(agents, want);
      results.push(
        await measureSize(bench, fleet, { pid, admin }, { clients, agents, changes: opts.changes }),
      );
      process.stderr.write(`xds-fanout: ${String(clients)} clients done\n`);
    }
    await fleet.stop();
    fleet = undefined;
    const cross =
      opts.sidecars === 0 ? undefined : await crossCheck(bench, xdsPort, opts.sidecars, opts.changes, caFile);
    process.stdout.write(fanoutReport(results, cross, { command: opts.command, loadAtStart, startedAt }));
    await client.close();
  } finally {
    await fleet?.stop();
    await operator?.stop();
    await plane.stop();
  }
}

runBench(main);
