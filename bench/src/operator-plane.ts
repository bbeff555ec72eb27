// What the operator benches (xds-fanout.ts, operator-scale.ts) share: a real kube-apiserver and etcd
// with Tether's CRDs established, the operator's metrics, and waiting for it to go quiet.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { until, type KubeClient } from "./fanout-cluster.ts";
import { BenchError } from "./proc.ts";
import { cpuSeconds } from "./procstat.ts";

export const REPO = join(import.meta.dirname, "..", "..");

interface ControlPlane {
  readonly kubeconfigPath: string;
  kubectl(
    args: readonly string[],
    options?: { input?: string; timeoutMs?: number },
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export interface OperatorPlane {
  readonly kubeconfigPath: string;
  /** kubectl against the plane; a non-zero exit throws TETHER_ERR_BENCH_KUBECTL. */
  readonly kubectl: (args: string[], input?: string) => Promise<void>;
  /** The operator's own API client on the plane. */
  connect(): Promise<KubeClient>;
  stop(): Promise<void>;
}

// Loaded at run time from the other workspaces (outside this package's rootDir).
async function load<T>(relative: string): Promise<T> {
  return (await import(pathToFileURL(join(REPO, relative)).href)) as T;
}

/**
 * Builds `workspaces` (tsc -b), starts a control plane and applies Tether's CRDs, waiting until
 * `crds` (plural resource names) are established.
 */
export async function startOperatorPlane(
  workspaces: readonly string[],
  crds: readonly string[],
): Promise<OperatorPlane> {
  const tsc = join(REPO, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-b", ...workspaces], { cwd: REPO });
  const { startControlPlane } = await load<{ startControlPlane: () => Promise<ControlPlane> }>(
    "e2e/src/controlplane/index.ts",
  );
  const { KubeClient: Client } = await load<{
    KubeClient: { create(o: object, path: string): Promise<KubeClient> };
  }>("operator/src/kube/client.ts");
  const cp = await startControlPlane();
  const kubectl = async (args: string[], input?: string): Promise<void> => {
    const r = await cp.kubectl(
      args,
      input === undefined ? { timeoutMs: 300_000 } : { input, timeoutMs: 300_000 },
    );
    if (r.code !== 0)
      throw new BenchError("TETHER_ERR_BENCH_KUBECTL", `kubectl ${args.join(" ")}: ${r.stderr}`);
  };
  try {
    await kubectl(["apply", "--server-side", "-f", join(REPO, "crds")]);
    await kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      ...crds.map((c) => `crd/${c}.tether.dev`),
    ]);
  } catch (error) {
    await cp.stop();
    throw error;
  }
  return {
    kubeconfigPath: cp.kubeconfigPath,
    kubectl,
    connect: () => Client.create({}, cp.kubeconfigPath),
    stop: () => cp.stop(),
  };
}

/** The sum of a metric's series (every label set) on an admin server's /metrics. */
export async function metricSum(adminAddress: string, name: string): Promise<number> {
  const text = await (
    await fetch(`http://${adminAddress}/metrics`, { signal: AbortSignal.timeout(5_000) })
  ).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

/** Waits until the operator used under 3 % of a core over one second (its cold work is done). */
export async function operatorQuiet(pid: number, timeoutMs: number): Promise<void> {
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

/** The xDS Service's name the operator's certificate carries (its --xds-service) and clients check. */
export const XDS_NAME = "tether-xds.tether-system.svc.cluster.local";

/** The operator's CA bundle (its Secret in the namespace it runs in: default here), as a file. */
export async function caBundleFile(client: KubeClient): Promise<string> {
  const secret = await client.request<{ data?: Record<string, string> }>(
    "GET",
    "/api/v1/namespaces/default/secrets/tether-ca",
  );
  const file = join(mkdtempSync(join(tmpdir(), "tether-xds-fanout-ca-")), "ca.crt");
  writeFileSync(file, Buffer.from(secret.data?.["ca.crt"] ?? "", "base64"));
  return file;
}
