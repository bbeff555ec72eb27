/**
 * The Helm chart: lint-clean, its values validated by values.schema.json, and everything it renders
 * (default values, and every optional feature on) accepted by a real API server with the Tether
 * and Prometheus Operator CRDs installed.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { LEADER_ELECTION_RULES, OPERATOR_RULES } from "../../operator/src/rbac.ts";
import { ALL_FEATURES, CHART_DIR, helm, monitoringCrdDir } from "../src/chart/index.ts";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";
import { startControlPlane, type ControlPlane } from "../src/controlplane/index.ts";

let cp: ControlPlane | undefined;

/** The running control plane (beforeAll started it). */
function plane(): ControlPlane {
  if (cp === undefined) throw new Error("control plane not started");
  return cp;
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await plane().kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  cp = await startControlPlane();
  const monitoring = await monitoringCrdDir();
  await kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  for (const kind of ["servicemonitors", "podmonitors", "prometheusrules"]) {
    await kubectlOk(["apply", "--server-side", "-f", join(monitoring, `monitoring.coreos.com_${kind}.yaml`)]);
  }
  await kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
  await kubectlOk(["create", "namespace", "tether-system"]);
});

afterAll(async () => {
  await cp?.stop();
});

describe("Helm chart", () => {
  it("passes helm lint --strict, with defaults and with every feature on", async () => {
    for (const extra of [[], ALL_FEATURES]) {
      const r = await helm(plane().binDir, ["lint", "--strict", CHART_DIR, ...extra]);
      expect(r.stderr + r.stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
      expect(r.code).toBe(0);
    }
  });

  it.each([
    ["default values", [] as readonly string[]],
    ["every optional feature on", ALL_FEATURES],
    [
      "one namespace watched, no leader election",
      [
        "--set",
        "operator.watchNamespaces={team-a}",
        "--set",
        "operator.leaderElection.enabled=false",
        "--set",
        "operator.replicas=1",
      ],
    ],
  ])("renders objects the API server accepts: %s", async (_label, extra) => {
    const rendered = await helm(plane().binDir, [
      "template",
      "tether",
      CHART_DIR,
      "--namespace",
      "tether-system",
      ...extra,
    ]);
    expect(rendered.code, rendered.stderr).toBe(0);
    const out = await kubectlOk(
      ["apply", "--dry-run=server", "-n", "tether-system", "-f", "-"],
      rendered.stdout,
    );
    expect(out).toContain("deployment.apps/tether created (server dry run)");
    expect(out).toContain("clusterrole.rbac.authorization.k8s.io/tether created (server dry run)");
  });

  it("renders the monitoring objects only when asked", async () => {
    const plain = await helm(plane().binDir, ["template", "tether", CHART_DIR]);
    expect(plain.stdout).not.toMatch(/kind: (ServiceMonitor|PodMonitor|PrometheusRule)/);
    expect(plain.stdout).toMatch(/grafana_dashboard: "1"/);
    const all = await helm(plane().binDir, ["template", "tether", CHART_DIR, ...ALL_FEATURES]);
    for (const kind of ["ServiceMonitor", "PodMonitor", "PrometheusRule", "PodDisruptionBudget"]) {
      expect(all.stdout).toContain(`kind: ${kind}`);
    }
  });

  it.each([
    ["operator.replicas=-1", "/operator/replicas"],
    ["operator.logLevel=loud", "/operator/logLevel"],
    ["prometheusRule.errorRatioThreshold=2", "/prometheusRule/errorRatioThreshold"],
    ["operator.bogus=1", "bogus"],
    ["metrics.service.enabled=false,serviceMonitor.enabled=true", "needs metrics.service.enabled=true"],
  ])("rejects --set %s through values.schema.json", async (value, field) => {
    const r = await helm(plane().binDir, ["template", "tether", CHART_DIR, "--set", value]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(field);
  });

  it("grants exactly the rules the operator declares (operator/src/rbac.ts), and nothing on Secrets", async () => {
    const r = await helm(plane().binDir, ["template", "tether", CHART_DIR, "-s", "templates/rbac.yaml"]);
    expect(r.code, r.stderr).toBe(0);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; rules?: unknown[] });
    const clusterRole = docs.find((d) => d.kind === "ClusterRole");
    const role = docs.find((d) => d.kind === "Role");
    expect(clusterRole?.rules).toEqual(OPERATOR_RULES);
    expect(role?.rules).toEqual(LEADER_ELECTION_RULES);
    expect(JSON.stringify(clusterRole)).not.toContain("secrets");
  });
});
