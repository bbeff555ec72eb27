/**
 * Helpers for testing the Helm chart against a real API server: the pinned helm binary, the
 * Prometheus Operator's and cert-manager's CRDs (from their Go modules, at the versions pinned in
 * e2e/k8s/versions.env), and `helm template` with values.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "../controlplane/binaries.ts";

const run = promisify(execFile);

export const CHART_DIR = join(REPO_ROOT, "charts", "tether");

/** The pinned versions of e2e/k8s/versions.env, by name. */
export function pinnedVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(REPO_ROOT, "e2e/k8s/versions.env"), "utf8").split("\n")) {
    const m = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

/** A Go module pinned in e2e/k8s/versions.env (by `versionKey`), downloaded through the Go module proxy. */
async function pinnedModuleDir(versionKey: string, module: string): Promise<string> {
  const version = pinnedVersions()[versionKey];
  if (version === undefined) throw new Error(`${versionKey} missing from e2e/k8s/versions.env`);
  const { stdout } = await run("go", ["mod", "download", "-json", `${module}@${version}`], {
    timeout: 300_000,
    maxBuffer: 1 << 20,
  });
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (dir === undefined) throw new Error(`go mod download gave no directory for ${module} ${version}`);
  return dir;
}

/** Directory of the Prometheus Operator's CRD files, downloaded through the Go module proxy. */
export async function monitoringCrdDir(): Promise<string> {
  const dir = await pinnedModuleDir(
    "PROMETHEUS_OPERATOR_VERSION",
    "github.com/prometheus-operator/prometheus-operator",
  );
  return join(dir, "example", "prometheus-operator-crd");
}

/** Directory of cert-manager's CRD files (deploy/crds/), downloaded through the Go module proxy. */
export async function certManagerCrdDir(): Promise<string> {
  return join(
    await pinnedModuleDir("CERT_MANAGER_VERSION", "github.com/cert-manager/cert-manager"),
    "deploy",
    "crds",
  );
}

export interface HelmResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the pinned helm; resolves for any exit code. */
export async function helm(binDir: string, args: readonly string[]): Promise<HelmResult> {
  try {
    const { stdout, stderr } = await run(join(binDir, "helm"), [...args], {
      timeout: 120_000,
      maxBuffer: 32 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === "number" ? e.code : 1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? String(error),
    };
  }
}

/** `--set` arguments that turn every optional feature of the chart on, and set every override. */
export const EVERY_OPTION = [
  "--set",
  "networkPolicy.enabled=true",
  "--set-json",
  'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
  "--set-json",
  'networkPolicy.apiServerTo=[{"ipBlock":{"cidr":"10.0.0.1/32"}}]',
  "--set",
  "imagePullSecrets={regcred}",
  "--set",
  "operator.image.registry=registry.example.com",
  "--set",
  "operator.image.repository=tether/operator",
  "--set",
  "operator.image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  "--set",
  "sidecar.image.registry=registry.example.com",
  "--set",
  "sidecar.image.repository=tether/sidecar",
  "--set",
  "sidecar.image.pullPolicy=Always",
  "--set",
  "operator.extraArgs={--concurrency=8}",
  "--set-json",
  'operator.extraEnv=[{"name":"NODE_OPTIONS","value":"--max-old-space-size=200"}]',
  "--set",
  "operator.podAnnotations.example\\.com/team=platform",
  "--set",
  "operator.podLabels.team=platform",
  "--set-json",
  'operator.topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"app.kubernetes.io/component":"operator"}}}]',
  "--set",
  "operator.priorityClassName=system-cluster-critical",
  "--set-json",
  'operator.podSecurityContext={"runAsNonRoot":true,"runAsUser":1000,"fsGroup":1000,"seccompProfile":{"type":"RuntimeDefault"}}',
  "--set",
  "fullnameOverride=tether-op",
  "--set",
  "xds.tls.caSecretName=tether-op-xds-ca",
] as const;

/** `--set` arguments that turn every optional feature of the chart on. */
export const ALL_FEATURES = [
  "--set",
  "serviceMonitor.enabled=true",
  "--set",
  "prometheusRule.enabled=true",
  "--set",
  "grafanaDashboard.enabled=true",
  "--set",
  "operator.podDisruptionBudget.enabled=true",
  "--set",
  "metrics.service.enabled=true",
] as const;
