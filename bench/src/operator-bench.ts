/**
 * Operator benchmark against a real control plane (etcd + kube-apiserver on loopback):
 *
 *  1. cold start: N Agents (each with a ProxyRoute) over M PolicyServerClusters exist before the
 *     operator starts; time from spawning the operator until every Agent and ProxyRoute has status
 *     for its generation and every Agent's sidecar ConfigMap exists;
 *  2. latency from an Agent spec change (PATCH accepted) to the updated sidecar ConfigMap, seen by
 *     a watch, p50/p99 over sequential samples; and a PolicyServerCluster change fanned out to its Agents;
 *  3. operator RSS and CPU (from /proc) over the cold start, and CPU while idle.
 *
 * Run: `node bench/src/operator-bench.ts [--agents 500] [--pscs 50] [--samples 100]`.
 * The control plane, the operator and this driver share the machine; the numbers include that.
 */
import { execFileSync, spawn } from "node:child_process";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { cpuSeconds, memory } from "./procstat.ts";

const REPO = join(import.meta.dirname, "..", "..");

interface KubectlResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}
interface ControlPlane {
  readonly kubeconfigPath: string;
  kubectl(args: readonly string[], options?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  stop(): Promise<void>;
}
interface KubeObject {
  metadata: { name: string; namespace?: string; generation?: number; resourceVersion?: string };
  status?: { observedGeneration?: number };
  data?: Record<string, string>;
}
interface KubeClient {
  request<T>(method: string, path: string, options?: { body?: unknown; contentType?: string }): Promise<T>;
  close(): Promise<void>;
}
interface Informer {
  on(handler: (type: string, object: KubeObject) => void): void;
  start(): void;
  stop(): Promise<void>;
  readonly synced: Promise<void>;
}
type InformerCtor = new (options: Record<string, unknown>) => Informer;

// Loaded at run time from the other workspaces (outside this package's rootDir).
async function load<T>(relative: string): Promise<T> {
  return (await import(pathToFileURL(join(REPO, relative)).href)) as T;
}

const quietLogger = {
  warn: (): void => undefined,
  error: (): void => undefined,
  debug: (): void => undefined,
  info: (): void => undefined,
};
const NS = "bench";

function manifests(agents: number, pscs: number): string[] {
  const docs: string[] = [];
  for (let p = 0; p < pscs; p++) {
    docs.push(`apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps-${p}, namespace: ${NS}}
spec: {port: 44443, external: {servers: [{host: 192.0.2.1}, {host: 192.0.2.2, priority: 1}]}}`);
  }
  for (let a = 0; a < agents; a++) {
    docs.push(`apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: a-${a}, namespace: ${NS}}
spec:
  policyServerClusterRef: {name: ps-${a % pscs}}
  listener: {port: 15001}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}`);
    docs.push(`apiVersion: tether.dev/v1alpha1
kind: ProxyRoute
metadata: {name: r-${a}, namespace: ${NS}}
spec:
  agentRef: {name: a-${a}}
  match: {pathPrefix: /app/}
  backend: {servers: [{host: 10.0.0.1, port: 7001}, {host: 10.0.0.2, port: 7001, priority: 1}]}`);
  }
  return docs;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const timer = setInterval(() => {
      if (check()) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(timer);
        reject(new Error(`timed out waiting for ${what}`));
      }
    }, 5);
  });
}

/** Totals from the operator's /metrics. */
async function operatorMetrics(
  address: string,
): Promise<{ reconciles: number; reconcileSeconds: number; writes: number }> {
  const text = await (
    await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(5_000) })
  ).text();
  const sum = (name: string): number =>
    text
      .split("\n")
      .filter((l) => l.startsWith(name))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
  return {
    reconciles: sum("tether_operator_reconcile_total"),
    reconcileSeconds: sum("tether_operator_reconcile_duration_seconds_sum"),
    writes: sum("tether_operator_api_writes_total"),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      agents: { type: "string", default: "500" },
      pscs: { type: "string", default: "50" },
      samples: { type: "string", default: "100" },
      concurrency: { type: "string", default: "" },
    },
  });
  const agents = Number(values.agents);
  const pscs = Number(values.pscs);
  const samples = Number(values.samples);
  const concurrency = values.concurrency === "" ? [] : ["--concurrency", values.concurrency];

  execFileSync(process.execPath, [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-b", "operator"], {
    cwd: REPO,
  });
  const { startControlPlane } = await load<{ startControlPlane: () => Promise<ControlPlane> }>(
    "e2e/src/controlplane/index.ts",
  );
  const { KubeClient: Client } = await load<{
    KubeClient: { create(o: object, path: string): Promise<KubeClient> };
  }>("operator/src/kube/client.ts");
  const { Informer: InformerClass } = await load<{ Informer: InformerCtor }>("operator/src/kube/informer.ts");
  const cp = await startControlPlane();
  let operatorPid: number | undefined;
  try {
    const kubectl = async (args: string[], input?: string): Promise<string> => {
      const r = await cp.kubectl(
        args,
        input === undefined ? { timeoutMs: 300_000 } : { input, timeoutMs: 300_000 },
      );
      if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    await kubectl(["apply", "--server-side", "-f", join(REPO, "crds")]);
    await kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/agents.tether.dev",
      "crd/proxyroutes.tether.dev",
      "crd/policyserverclusters.tether.dev",
    ]);
    await kubectl(["create", "namespace", NS]);
    const docs = manifests(agents, pscs);
    const createStart = performance.now();
    for (let i = 0; i < docs.length; i += 300)
      await kubectl(["create", "-f", "-"], docs.slice(i, i + 300).join("\n---\n"));
    const createMs = performance.now() - createStart;

    // Watches that tell when the operator's work is visible in the API.
    const client = await Client.create({}, cp.kubeconfigPath);
    const resources = {
      agents: { group: "tether.dev", version: "v1alpha1", plural: "agents", kind: "Agent" },
      routes: { group: "tether.dev", version: "v1alpha1", plural: "proxyroutes", kind: "ProxyRoute" },
      configMaps: { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" },
    };
    const informer = (resource: object): Informer =>
      new InformerClass({ resource, namespace: NS, client, logger: quietLogger, watchTimeoutSeconds: 600 });
    const agentInf = informer(resources.agents);
    const routeInf = informer(resources.routes);
    const cmInf = informer(resources.configMaps);
    const reconciledAgents = new Set<string>();
    const reconciledRoutes = new Set<string>();
    const sidecarConfigs = new Map<string, string>();
    const cmListeners = new Set<(name: string, yaml: string) => void>();
    let lastProgress = 0;
    const track = (set: Set<string>) => (_t: string, o: KubeObject) => {
      if (
        o.status?.observedGeneration !== undefined &&
        o.status.observedGeneration === o.metadata.generation
      ) {
        if (!set.has(o.metadata.name)) lastProgress = performance.now();
        set.add(o.metadata.name);
      }
    };
    agentInf.on(track(reconciledAgents));
    routeInf.on(track(reconciledRoutes));
    cmInf.on((type, o) => {
      if (type === "DELETED" || !o.metadata.name.endsWith("-sidecar")) return;
      const yaml = o.data?.["envoy.yaml"] ?? "";
      if (!sidecarConfigs.has(o.metadata.name)) lastProgress = performance.now();
      sidecarConfigs.set(o.metadata.name, yaml);
      for (const l of cmListeners) l(o.metadata.name, yaml);
    });
    for (const inf of [agentInf, routeInf, cmInf]) inf.start();
    await Promise.all([agentInf.synced, routeInf.synced, cmInf.synced]);

    // 1. Cold start.
    const spawnedAt = performance.now();
    const operator = spawn(
      process.execPath,
      [
        join(REPO, "operator", "bin", "tether-operator.js"),
        "--leader-elect",
        "false",
        "--resync-period",
        "0",
        "--namespaces",
        NS,
        "--admin-address",
        "127.0.0.1:0",
        "--log-level",
        "info",
        ...concurrency,
      ],
      {
        env: { PATH: process.env["PATH"] ?? "", KUBECONFIG: cp.kubeconfigPath },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    operatorPid = operator.pid;
    const milestones: string[] = [];
    let adminAddress = "";
    operator.stdout.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        adminAddress ||= /"admin":"([^"]+)"/.exec(line)?.[1] ?? "";
        const msg = /"msg":"([^"]+)"/.exec(line)?.[1];
        if (msg !== undefined && milestones.length < 5)
          milestones.push(`${msg} +${(performance.now() - spawnedAt).toFixed(0)}ms`);
      }
    });
    const pid = operator.pid ?? -1;
    let peakRss = 0;
    const sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, memory(pid).rssMb);
      } catch {
        // process gone
      }
    }, 100);
    await until(
      "cold reconcile",
      () =>
        reconciledAgents.size >= agents && reconciledRoutes.size >= agents && sidecarConfigs.size >= agents,
      600_000,
    );
    const coldMs = lastProgress - spawnedAt;
    process.stderr.write(`operator milestones: ${milestones.join(", ")}\n`);
    const coldCpu = cpuSeconds(pid);
    const coldMetrics = await operatorMetrics(adminAddress);
    const rssAfterCold = memory(pid).rssMb;

    // 2. Latency: Agent spec change → updated sidecar ConfigMap.
    const latencies: number[] = [];
    for (let i = 0; i < samples; i++) {
      const name = `a-${(i * 37) % agents}`;
      const connectMs = 1001 + i;
      const expected = `connect_timeout: ${String(Math.floor(connectMs / 1000))}.${String(connectMs % 1000).padStart(3, "0")}s`;
      const seen = new Promise<number>((resolve) => {
        const listener = (cm: string, yaml: string): void => {
          if (cm === `${name}-sidecar` && yaml.includes(expected)) {
            cmListeners.delete(listener);
            resolve(performance.now());
          }
        };
        cmListeners.add(listener);
      });
      const t0 = performance.now();
      await client.request("PATCH", `/apis/tether.dev/v1alpha1/namespaces/${NS}/agents/${name}`, {
        body: { spec: { reconnect: { connectTimeout: `${connectMs}ms` } } },
        contentType: "application/merge-patch+json",
      });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<number>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`no update of ${name}-sidecar within 30 s`));
        }, 30_000);
      });
      const t1 = await Promise.race([seen, timeout]).finally(() => {
        clearTimeout(timer);
      });
      latencies.push(t1 - t0);
    }
    latencies.sort((a, b) => a - b);

    // A PolicyServerCluster change fans out to every Agent using it.
    const fanout: number[] = [];
    const perPsc = Math.ceil(agents / pscs);
    for (let i = 0; i < 5; i++) {
      const port = 45000 + i;
      const users = new Set(
        Array.from({ length: agents }, (_, a) => a)
          .filter((a) => a % pscs === 0)
          .map((a) => `a-${a}-sidecar`),
      );
      const done = new Promise<number>((resolve) => {
        const listener = (cm: string, yaml: string): void => {
          if (users.has(cm) && yaml.includes(`port_value: ${port}`)) users.delete(cm);
          if (users.size === 0) {
            cmListeners.delete(listener);
            resolve(performance.now());
          }
        };
        cmListeners.add(listener);
      });
      const t0 = performance.now();
      await client.request("PATCH", `/apis/tether.dev/v1alpha1/namespaces/${NS}/policyserverclusters/ps-0`, {
        body: { spec: { port } },
        contentType: "application/merge-patch+json",
      });
      fanout.push((await done) - t0);
    }
    fanout.sort((a, b) => a - b);

    // 3. Idle CPU over 10 s.
    const idleStart = cpuSeconds(pid);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const idleCores = (cpuSeconds(pid) - idleStart) / 10;
    clearInterval(sampler);

    const cpu = cpus()[0]?.model ?? "unknown CPU";
    const lines = [
      `### Operator (${new Date().toISOString().slice(0, 10)})`,
      "",
      `Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; etcd, kube-apiserver, the operator and the driver on the same machine.`,
      `Command: \`node bench/src/operator-bench.ts --agents ${agents} --pscs ${pscs} --samples ${samples}${concurrency.length > 0 ? ` --concurrency ${values.concurrency}` : ""}\`` +
        ` (operator concurrency ${concurrency[1] ?? "default"}; load average at start ${loadavg()[0]?.toFixed(1) ?? "?"})`,
      `Objects: ${agents} Agents, ${agents} ProxyRoutes, ${pscs} PolicyServerClusters (external) → ${agents} Deployments + ${2 * agents} ConfigMaps (created with kubectl in ${(createMs / 1000).toFixed(1)} s, before the operator starts).`,
      "",
      "| measurement | value |",
      "|---|---|",
      `| cold start → all ${agents} Agents and ${agents} ProxyRoutes reconciled (status for their generation, sidecar ConfigMaps present) | ${(coldMs / 1000).toFixed(2)} s |`,
      `| operator CPU during the cold start | ${coldCpu.toFixed(2)} s (${(coldCpu / (coldMs / 1000)).toFixed(2)} cores avg) |`,
      `| operator RSS after the cold start / peak | ${rssAfterCold.toFixed(0)} MiB / ${peakRss.toFixed(0)} MiB |`,
      `| Agent spec change → updated sidecar ConfigMap (watch), ${samples} sequential samples | p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${(latencies.at(-1) ?? 0).toFixed(1)} ms |`,
      `| PolicyServerCluster change → all ${perPsc} of its Agents' ConfigMaps updated, 5 samples | p50 ${percentile(fanout, 50).toFixed(1)} ms, max ${(fanout.at(-1) ?? 0).toFixed(1)} ms |`,
      `| reconciles during the cold start / mean reconcile time / API writes | ${String(coldMetrics.reconciles)} / ${((coldMetrics.reconcileSeconds / Math.max(1, coldMetrics.reconciles)) * 1000).toFixed(1)} ms / ${String(coldMetrics.writes)} |`,
      `| operator CPU while idle (10 s, no changes, no resync) | ${(idleCores * 100).toFixed(2)} % of a core |`,
      "",
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    operator.kill("SIGTERM");
    await new Promise((resolve) => operator.once("exit", resolve));
    operatorPid = undefined;
    for (const inf of [agentInf, routeInf, cmInf]) await inf.stop();
    await client.close();
  } finally {
    if (operatorPid !== undefined) process.kill(operatorPid, "SIGKILL");
    await cp.stop();
  }
}

await main();
