/** A real control plane with Tether's CRDs installed, and small kubectl helpers for tests. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "../../../e2e/src/controlplane/index.ts";
import { signalGroup, startComponent } from "../../../e2e/src/controlplane/supervise.ts";
import { REPO_ROOT } from "./operator-process.ts";
import { waitFor } from "./wait.ts";

export interface KubeJson {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Record<string, unknown>[];
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  data?: Record<string, string>;
}

export class TestCluster {
  readonly cp: ControlPlane;
  private restartedApiServers: number[] = [];

  private constructor(cp: ControlPlane) {
    this.cp = cp;
  }

  static async start(
    options: { controllers?: boolean | readonly string[]; apiServerArgs?: string[] } = {},
  ): Promise<TestCluster> {
    const cp = await startControlPlane({
      controllers: options.controllers ?? false,
      apiServerArgs: options.apiServerArgs ?? [],
    });
    const cluster = new TestCluster(cp);
    await cluster.ok(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
    await cluster.ok([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/policyserverclusters.tether.dev",
      "crd/agents.tether.dev",
      "crd/brokers.tether.dev",
      "crd/proxyroutes.tether.dev",
    ]);
    return cluster;
  }

  get kubeconfig(): string {
    return this.cp.kubeconfigPath;
  }

  async ok(args: readonly string[], input?: string): Promise<string> {
    const r = await this.cp.kubectl(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${String(r.code)}): ${r.stderr}`);
    return r.stdout;
  }

  async apply(manifest: string, namespace = "default"): Promise<void> {
    await this.ok(["apply", "-n", namespace, "-f", "-"], manifest);
  }

  async get(kind: string, name: string, namespace = "default"): Promise<KubeJson | undefined> {
    const r = await this.cp.kubectl(["get", kind, name, "-n", namespace, "-o", "json"]);
    if (r.code !== 0) {
      if (r.stderr.includes("NotFound")) return undefined;
      throw new Error(`kubectl get ${kind} ${name}: ${r.stderr}`);
    }
    return JSON.parse(r.stdout) as KubeJson;
  }

  async list(kinds: string, namespace = "default"): Promise<KubeJson[]> {
    const out = await this.ok(["get", kinds, "-n", namespace, "-o", "json"]);
    return (JSON.parse(out) as { items: KubeJson[] }).items;
  }

  /** Waits until `kind/name` exists and `test` holds for it. */
  waitFor(
    kind: string,
    name: string,
    test: (o: KubeJson) => boolean,
    namespace = "default",
    timeoutMs = 30_000,
  ): Promise<KubeJson> {
    return waitFor(
      `${kind} ${namespace}/${name}`,
      async () => {
        const o = await this.get(kind, name, namespace);
        return o !== undefined && test(o) ? o : undefined;
      },
      { timeoutMs, intervalMs: 250 },
    );
  }

  async condition(
    kind: string,
    name: string,
    type: string,
    namespace = "default",
  ): Promise<Record<string, unknown> | undefined> {
    const o = await this.get(kind, name, namespace);
    const conditions = (o?.status?.["conditions"] ?? []) as Record<string, unknown>[];
    return conditions.find((c) => c["type"] === type);
  }

  /** Kills kube-apiserver and starts it again with the same flags (same port, same etcd). */
  async restartApiServer(onDown?: () => Promise<void>): Promise<void> {
    const pid = this.restartedApiServers.at(-1) ?? this.cp.pids.apiserver;
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .split("\0")
      .filter((a) => a !== "");
    const binary = args.shift() ?? join(this.cp.binDir, "kube-apiserver");
    signalGroup(pid, "SIGKILL");
    await waitFor("kube-apiserver to exit", () => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.split(" ")[2] === "Z" ? true : undefined;
      } catch {
        return true;
      }
    });
    if (onDown !== undefined) await onDown();
    const component = startComponent(
      "kube-apiserver",
      binary,
      args,
      join(this.cp.dir, "logs", "kube-apiserver.log"),
    );
    this.restartedApiServers.push(component.pid);
    await waitFor(
      "kube-apiserver to serve again",
      async () => (await this.cp.kubectl(["get", "--raw", "/readyz"])).code === 0,
      {
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );
  }

  async stop(): Promise<void> {
    for (const pid of this.restartedApiServers) signalGroup(pid, "SIGKILL");
    await this.cp.stop();
  }
}
