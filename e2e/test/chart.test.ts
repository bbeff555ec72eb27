/**
 * The Helm chart: lint-clean, its values validated by values.schema.json, and everything it renders
 * (default values, every optional feature and override on, the packaged chart, the chart as a
 * subchart of a parent with `global` values) accepted by a real API server with the Tether,
 * Prometheus Operator and cert-manager (Certificate) CRDs installed; its `helm test` script run against that API server.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import {
  caSecretRules,
  CLUSTER_SCOPED_RULES,
  LEADER_ELECTION_RULES,
  OPERATOR_RULES,
  XDS_AUTH_POD_RULES,
  XDS_AUTH_RULES,
  webhookConfigurationRules,
  xdsTlsSecretRules,
} from "../../operator/src/rbac.ts";
import {
  ALL_FEATURES,
  certManagerCrdDir,
  CHART_DIR,
  EVERY_OPTION,
  helm,
  monitoringCrdDir,
} from "../src/chart/index.ts";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";
import { startControlPlane, type ControlPlane } from "../src/controlplane/index.ts";

const run = promisify(execFile);
let cp: ControlPlane | undefined;
let tmp = "";

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

/** Kinds and names of the objects of a multi-document YAML stream. */
function objects(
  yaml: string,
): { kind: string; metadata: { name: string; annotations?: Record<string, string> } }[] {
  return parseAllDocuments(yaml)
    .map((d) => d.toJS() as { kind?: string; metadata?: { name: string } } | null)
    .filter((o): o is { kind: string; metadata: { name: string } } => typeof o?.kind === "string");
}

interface RbacObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: unknown[];
  subjects?: unknown[];
}

/** The RBAC objects of a rendered stream. */
function rbacObjects(yaml: string): RbacObject[] {
  return parseAllDocuments(yaml)
    .map((d) => d.toJS() as RbacObject | null)
    .filter((o): o is RbacObject => o !== null && /^(Cluster)?Role(Binding)?$/.test(o.kind));
}

/** `helm template` that must succeed; its stdout. */
async function template(args: readonly string[]): Promise<string> {
  const r = await helm(plane().binDir, ["template", "tether", ...args]);
  if (r.code !== 0) throw new Error(`helm template ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** The chart packaged by `helm package` (once): the path of the .tgz. */
let packaged: string | undefined;
async function packagedChart(): Promise<string> {
  if (packaged !== undefined) return packaged;
  const out = join(tmp, "package");
  await mkdir(out, { recursive: true });
  const r = await helm(plane().binDir, ["package", CHART_DIR, "--destination", out]);
  expect(r.code, r.stderr).toBe(0);
  const [file] = (await readdir(out)).filter((f) => f.endsWith(".tgz"));
  if (file === undefined) throw new Error("helm package wrote no .tgz");
  packaged = join(out, file);
  return packaged;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "tether-chart-"));
  cp = await startControlPlane();
  const monitoring = await monitoringCrdDir();
  await kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  for (const kind of ["servicemonitors", "podmonitors", "prometheusrules"]) {
    await kubectlOk(["apply", "--server-side", "-f", join(monitoring, `monitoring.coreos.com_${kind}.yaml`)]);
  }
  const certManager = await certManagerCrdDir();
  await kubectlOk(["apply", "--server-side", "-f", join(certManager, "cert-manager.io_certificates.yaml")]);
  await kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
  await kubectlOk(["create", "namespace", "tether-system"]);
  // Watched by the operator.watchNamespaces cases (their Roles live there); team-c is never watched.
  for (const ns of ["team-a", "team-b", "team-c"]) await kubectlOk(["create", "namespace", ns]);
});

afterAll(async () => {
  await cp?.stop();
  if (tmp !== "") await rm(tmp, { recursive: true, force: true });
});

describe("Helm chart", () => {
  it("passes helm lint --strict, with defaults, every feature on and every option set", async () => {
    for (const extra of [[], ALL_FEATURES, [...ALL_FEATURES, ...EVERY_OPTION]]) {
      const r = await helm(plane().binDir, ["lint", "--strict", CHART_DIR, ...extra]);
      expect(r.stderr + r.stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
      expect(r.code).toBe(0);
    }
  });

  it.each([
    ["default values", [] as readonly string[], "clusterrole.rbac.authorization.k8s.io/tether"],
    ["every optional feature on", ALL_FEATURES, "clusterrole.rbac.authorization.k8s.io/tether"],
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
      "role.rbac.authorization.k8s.io/tether",
    ],
    [
      "xDS certificate from cert-manager",
      ["--set", "xds.tls.certManager.issuerRef.name=tether-ca-issuer"],
      "certificate.cert-manager.io/tether-xds",
    ],
  ])("renders objects the API server accepts: %s", async (_label, extra, rbacObject) => {
    const rendered = await helm(plane().binDir, [
      "template",
      "tether",
      CHART_DIR,
      "--namespace",
      "tether-system",
      ...extra,
      // The test pod needs its ServiceAccount to exist (admission): applied for real below.
      "--skip-tests",
    ]);
    expect(rendered.code, rendered.stderr).toBe(0);
    // Every namespaced object names its namespace (with watchNamespaces, Roles go to those).
    const out = await kubectlOk(["apply", "--dry-run=server", "-f", "-"], rendered.stdout);
    expect(out).toContain("deployment.apps/tether created (server dry run)");
    expect(out).toContain(`${rbacObject} created (server dry run)`);
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

  it("grants exactly the rules the operator declares (operator/src/rbac.ts), Secrets only its CA's", async () => {
    const r = await helm(plane().binDir, ["template", "tether", CHART_DIR, "-s", "templates/rbac.yaml"]);
    expect(r.code, r.stderr).toBe(0);
    const docs = rbacObjects(r.stdout);
    expect(docs.map((d) => `${d.kind} ${d.metadata.name}`).sort()).toEqual([
      "ClusterRole tether",
      "ClusterRole tether-xds-auth",
      "ClusterRoleBinding tether",
      "ClusterRoleBinding tether-xds-auth",
      "Role tether-ca",
      "Role tether-leader-election",
      "RoleBinding tether-ca",
      "RoleBinding tether-leader-election",
    ]);
    const clusterRole = docs.find((d) => d.kind === "ClusterRole" && d.metadata.name === "tether");
    const role = docs.find((d) => d.kind === "Role" && d.metadata.name === "tether-leader-election");
    const caRole = docs.find((d) => d.kind === "Role" && d.metadata.name === "tether-ca");
    expect(clusterRole?.rules).toEqual([...OPERATOR_RULES, ...CLUSTER_SCOPED_RULES]);
    expect(role?.rules).toEqual(LEADER_ELECTION_RULES);
    expect(caRole?.rules).toEqual(caSecretRules("tether-ca"));
    expect(JSON.stringify(clusterRole)).not.toContain("secrets");
    // Without xDS TLS and the webhook (whose certificate comes from the same CA) there is no
    // Secret access at all.
    const noTls = await helm(plane().binDir, [
      ...["template", "tether", CHART_DIR, "-s", "templates/rbac.yaml"],
      ...["--set", "xds.tls.enabled=false", "--set", "webhook.enabled=false"],
    ]);
    expect(noTls.code, noTls.stderr).toBe(0);
    expect(noTls.stdout).not.toContain("secrets");
    // The xDS identity check's own ClusterRole (TokenReviews are cluster-scoped), only while it is on.
    const named = (name: string) => (d: { kind: string; metadata: { name: string } }) =>
      d.kind === "ClusterRole" && d.metadata.name === name;
    expect(docs.find(named("tether-xds-auth"))?.rules).toEqual([...XDS_AUTH_RULES, ...XDS_AUTH_POD_RULES]);
    const off = await helm(plane().binDir, [
      ...["template", "tether", CHART_DIR, "-s", "templates/rbac.yaml", "--set", "xds.auth.enabled=false"],
    ]);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).not.toContain("tether-xds-auth");
  });

  it("with xds.tls.certManager.issuerRef: a Certificate for the xDS Service's names, the flag, a Role on that Secret only", async () => {
    type Doc = {
      kind: string;
      metadata: { name: string; namespace?: string };
      spec?: Record<string, unknown>;
      rules?: unknown[];
    };
    const render = async (extra: string[]): Promise<Doc[]> =>
      parseAllDocuments(await template([CHART_DIR, "--namespace", "tether-system", "--skip-tests", ...extra]))
        .map((d) => d.toJS() as Doc | null)
        .filter((d): d is Doc => d !== null);
    const docs = await render([
      ...["--set", "xds.tls.certManager.issuerRef.name=platform-ca"],
      ...["--set", "xds.tls.certManager.issuerRef.kind=ClusterIssuer"],
    ]);
    const certificate = docs.find((d) => d.kind === "Certificate");
    expect(certificate?.metadata).toMatchObject({ name: "tether-xds", namespace: "tether-system" });
    expect(certificate?.spec).toMatchObject({
      secretName: "tether-xds-tls",
      dnsNames: [
        "tether-xds",
        "tether-xds.tether-system",
        "tether-xds.tether-system.svc",
        "tether-xds.tether-system.svc.cluster.local",
      ],
      privateKey: { algorithm: "ECDSA", size: 256 },
      issuerRef: { name: "platform-ca", kind: "ClusterIssuer", group: "cert-manager.io" },
    });
    const env = JSON.stringify(docs.find((d) => d.kind === "Deployment"));
    expect(env).toContain('{"name":"TETHER_XDS_TLS_SECRET","value":"tether-xds-tls"}');
    const role = docs.find((d) => d.kind === "Role" && d.metadata.name === "tether-xds-tls");
    expect(role?.rules).toEqual(xdsTlsSecretRules("tether-xds-tls"));
    // The operator's own CA Secret is then only the webhook's: without the webhook, no access to it.
    const noWebhook = await render([
      ...["--set", "xds.tls.certManager.issuerRef.name=platform-ca", "--set", "webhook.enabled=false"],
    ]);
    expect(noWebhook.filter((d) => d.metadata.name === "tether-ca")).toEqual([]);
    expect(JSON.stringify(noWebhook)).not.toContain("TETHER_CA_SECRET");
    // A chosen Secret name; and nothing of cert-manager when no issuer is named (the default).
    const named = await render([
      ...["--set", "xds.tls.certManager.issuerRef.name=platform-ca"],
      ...["--set", "xds.tls.certManager.secretName=xds-serving"],
    ]);
    expect(named.find((d) => d.kind === "Certificate")?.spec?.["secretName"]).toBe("xds-serving");
    const plain = await render([]);
    expect(plain.filter((d) => d.kind === "Certificate" || d.metadata.name === "tether-xds-tls")).toEqual([]);
    expect(JSON.stringify(plain)).not.toContain("TETHER_XDS_TLS_SECRET");
  });

  it("renders the sidecar-injection webhook: opted-in namespaces only, never its own, caBundle left to the operator", async () => {
    type Webhook = {
      name: string;
      failurePolicy: string;
      sideEffects: string;
      timeoutSeconds: number;
      reinvocationPolicy: string;
      admissionReviewVersions: string[];
      clientConfig: {
        service?: { name: string; namespace: string; path: string; port: number };
        caBundle?: string;
      };
      rules: { operations: string[]; resources: string[] }[];
      namespaceSelector: {
        matchLabels: Record<string, string>;
        matchExpressions: { key: string; operator: string; values: string[] }[];
      };
      objectSelector?: unknown;
    };
    type Doc = {
      kind: string;
      metadata: { name: string };
      webhooks?: Webhook[];
      rules?: unknown[];
      spec?: Record<string, unknown>;
    };
    const render = async (extra: string[]): Promise<Doc[]> =>
      parseAllDocuments(await template([CHART_DIR, "--namespace", "tether-system", "--skip-tests", ...extra]))
        .map((d) => d.toJS() as Doc | null)
        .filter((d): d is Doc => d !== null);
    const docs = await render([]);
    const configuration = docs.find((d) => d.kind === "MutatingWebhookConfiguration");
    expect(configuration?.metadata.name).toBe("tether-injector");
    const webhook = configuration?.webhooks?.[0];
    expect(webhook).toMatchObject({
      name: "inject.tether.dev",
      failurePolicy: "Fail",
      sideEffects: "None",
      timeoutSeconds: 5,
      reinvocationPolicy: "IfNeeded",
      admissionReviewVersions: ["v1"],
      clientConfig: {
        service: { name: "tether-webhook", namespace: "tether-system", path: "/mutate-pods", port: 443 },
      },
      rules: [{ operations: ["CREATE"], resources: ["pods"] }],
      namespaceSelector: {
        matchLabels: { "tether.dev/injection": "enabled" },
        matchExpressions: [
          { key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["tether-system"] },
        ],
      },
    });
    expect(webhook?.clientConfig.caBundle).toBeUndefined();
    expect(webhook?.objectSelector).toBeUndefined();
    // The operator may patch that configuration and no other.
    const role = docs.find((d) => d.kind === "ClusterRole" && d.metadata.name === "tether-webhook");
    expect(role?.rules).toEqual(webhookConfigurationRules("tether-injector"));
    const service = docs.find((d) => d.kind === "Service" && d.metadata.name === "tether-webhook");
    expect(service?.spec?.["ports"]).toEqual([
      { name: "https-webhook", port: 443, targetPort: "webhook", protocol: "TCP" },
    ]);
    const deployment = docs.find((d) => d.kind === "Deployment") as unknown as {
      spec: {
        template: { spec: { containers: { env: { name: string; value?: string }[]; ports: unknown[] }[] } };
      };
    };
    const operator = deployment.spec.template.spec.containers[0]!;
    expect(operator.env).toEqual(
      expect.arrayContaining([
        { name: "TETHER_WEBHOOK_ADDRESS", value: "0.0.0.0:9443" },
        { name: "TETHER_WEBHOOK_SERVICE", value: "tether-webhook.tether-system" },
        { name: "TETHER_WEBHOOK_CONFIGURATION", value: "tether-injector" },
      ]),
    );
    expect(operator.ports).toContainEqual({ name: "webhook", containerPort: 9443, protocol: "TCP" });
    // The webhook alone (xDS off) still gets the CA Secret and its Role.
    const alone = await render(["--set", "xds.enabled=false", "--set", "webhook.failurePolicy=Ignore"]);
    expect(alone.find((d) => d.kind === "MutatingWebhookConfiguration")?.webhooks?.[0]?.failurePolicy).toBe(
      "Ignore",
    );
    expect(alone.some((d) => d.kind === "Role" && d.metadata.name === "tether-ca")).toBe(true);
    const aloneEnv = (alone.find((d) => d.kind === "Deployment") as unknown as typeof deployment).spec
      .template.spec.containers[0]!.env;
    expect(aloneEnv.filter((e) => e.name === "TETHER_CA_SECRET")).toEqual([
      { name: "TETHER_CA_SECRET", value: "tether-ca" },
    ]);
    const off = await render(["--set", "webhook.enabled=false"]);
    expect(off.some((d) => d.kind === "MutatingWebhookConfiguration")).toBe(false);
    expect(JSON.stringify(off)).not.toContain("TETHER_WEBHOOK");
    const selected = await render([
      "--set-json",
      'webhook.objectSelector={"matchLabels":{"tether.dev/inject":"true"}}',
    ]);
    expect(
      selected.find((d) => d.kind === "MutatingWebhookConfiguration")?.webhooks?.[0]?.objectSelector,
    ).toEqual({
      matchLabels: { "tether.dev/inject": "true" },
    });
    // The API server accepts all of it.
    const rendered = await template([CHART_DIR, "--namespace", "tether-system", "--skip-tests"]);
    const out = await kubectlOk(["apply", "--dry-run=server", "-n", "tether-system", "-f", "-"], rendered);
    expect(out).toContain(
      "mutatingwebhookconfiguration.admissionregistration.k8s.io/tether-injector created (server dry run)",
    );
  });

  it("with operator.watchNamespaces: a Role per watched namespace, a ClusterRole only for cluster-scoped calls; the API server grants nothing elsewhere", async () => {
    const ns = "tether-roles";
    await kubectlOk(["create", "namespace", ns]);
    const rendered = await template([
      CHART_DIR,
      "--namespace",
      ns,
      "-s",
      "templates/rbac.yaml",
      "--set",
      "operator.watchNamespaces={team-a,team-b}",
    ]);
    const docs = rbacObjects(rendered);
    const expected = [
      `Role team-a/tether`,
      `Role team-b/tether`,
      `Role ${ns}/tether-leader-election`,
      `RoleBinding team-a/tether`,
      `RoleBinding team-b/tether`,
      `RoleBinding ${ns}/tether-leader-election`,
      // The operator's own CA Secret (xDS TLS, the webhook's certificate), by name, in its namespace.
      `Role ${ns}/tether-ca`,
      `RoleBinding ${ns}/tether-ca`,
      // TokenReviews for the xDS identity check are cluster-scoped; the pod GET is in the Roles.
      "ClusterRole /tether-xds-auth",
      "ClusterRoleBinding /tether-xds-auth",
      // Cluster-scoped calls only, when the operator makes any (operator/src/rbac.ts names each).
      ...(CLUSTER_SCOPED_RULES.length === 0
        ? []
        : ["ClusterRole /tether-cluster-scoped", "ClusterRoleBinding /tether-cluster-scoped"]),
    ];
    expect(docs.map((d) => `${d.kind} ${d.metadata.namespace ?? ""}/${d.metadata.name}`).sort()).toEqual(
      expected.sort(),
    );
    for (const d of docs) {
      if (d.kind === "Role" && d.metadata.name === "tether") {
        expect(d.rules).toEqual([...OPERATOR_RULES, ...XDS_AUTH_POD_RULES]);
      }
      if (d.kind === "ClusterRole" && d.metadata.name === "tether-cluster-scoped") {
        expect(d.rules).toEqual(CLUSTER_SCOPED_RULES);
      }
      if (d.kind === "ClusterRole" && d.metadata.name === "tether-xds-auth")
        expect(d.rules).toEqual(XDS_AUTH_RULES);
      if (d.kind.endsWith("Binding")) {
        expect(d.subjects).toEqual([{ kind: "ServiceAccount", name: "tether", namespace: ns }]);
      }
    }
    expect(JSON.stringify(docs.filter((d) => d.metadata.name !== "tether-ca"))).not.toContain("secrets");
    // Applied for real: the API server grants the ServiceAccount the watched namespaces only.
    await kubectlOk(["apply", "-f", "-"], rendered);
    const can = async (verb: string, resource: string, where: string[]): Promise<string> => {
      const r = await plane().kubectl([
        "auth",
        "can-i",
        verb,
        resource,
        ...where,
        `--as=system:serviceaccount:${ns}:tether`,
      ]);
      return r.stdout.trim();
    };
    for (const watched of ["team-a", "team-b"]) {
      expect(await can("watch", "agents.tether.dev", ["-n", watched])).toBe("yes");
      expect(await can("patch", "deployments.apps", ["-n", watched])).toBe("yes");
    }
    expect(await can("watch", "agents.tether.dev", ["-n", "team-c"])).toBe("no");
    expect(await can("list", "deployments.apps", ["-n", "team-c"])).toBe("no");
    expect(await can("list", "agents.tether.dev", ["--all-namespaces"])).toBe("no");
    expect(await can("update", "leases.coordination.k8s.io", ["-n", ns])).toBe("yes");
  });

  it("renders every option the API server accepts, and each option does what it says", async () => {
    // Applied for real (in its own namespace), so the helm test pod finds its ServiceAccount.
    const ns = "tether-every";
    await kubectlOk(["create", "namespace", ns]);
    const rendered = await template([CHART_DIR, "--namespace", ns, ...ALL_FEATURES, ...EVERY_OPTION]);
    const out = await kubectlOk(["apply", "-n", ns, "-f", "-"], rendered);
    expect(out).toContain("deployment.apps/tether-op created");
    expect(out).toContain("networkpolicy.networking.k8s.io/tether-op created");
    expect(out).toContain("pod/tether-op-test created");
    const deployment = parseAllDocuments(rendered)
      .map((d) => d.toJS() as Record<string, unknown> | null)
      .find((o) => o?.["kind"] === "Deployment") as {
      spec: {
        template: { metadata: { annotations: Record<string, string> }; spec: Record<string, unknown> };
      };
    };
    const pod = deployment.spec.template.spec as {
      imagePullSecrets: unknown;
      priorityClassName: string;
      topologySpreadConstraints: unknown[];
      securityContext: Record<string, unknown>;
      containers: { image: string; args: string[]; env: { name: string; value?: string }[] }[];
    };
    const operator = pod.containers[0]!;
    expect(operator.image).toBe(
      "registry.example.com/tether/operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    expect(operator.args).toEqual(["--concurrency=8"]);
    expect(operator.env).toContainEqual({ name: "TETHER_SIDECAR_IMAGE_PULL_POLICY", value: "Always" });
    expect(operator.env).toContainEqual({
      name: "TETHER_SIDECAR_IMAGE",
      value: "registry.example.com/tether/sidecar:0.1.0",
    });
    expect(operator.env).toContainEqual({ name: "NODE_OPTIONS", value: "--max-old-space-size=200" });
    expect(operator.env).toContainEqual({ name: "TETHER_XDS_TLS", value: "true" });
    expect(operator.env).toContainEqual({ name: "TETHER_CA_SECRET", value: "tether-op-xds-ca" });
    const caRole = parseAllDocuments(rendered)
      .map((d) => d.toJS() as { kind?: string; metadata?: { name?: string }; rules?: unknown[] } | null)
      .find((o) => o?.kind === "Role" && o.metadata?.name === "tether-op-ca");
    expect(caRole?.rules).toEqual(caSecretRules("tether-op-xds-ca"));
    expect(pod.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(pod.priorityClassName).toBe("system-cluster-critical");
    expect(pod.topologySpreadConstraints).toHaveLength(1);
    expect(pod.securityContext).toMatchObject({ runAsUser: 1000, fsGroup: 1000 });
    expect(deployment.spec.template.metadata.annotations).toEqual({ "example.com/team": "platform" });
  });

  it("templates the CRDs, kept on uninstall by default; crds.keep=false and crds.enabled=false", async () => {
    const crdsOf = async (extra: string[]): Promise<ReturnType<typeof objects>> =>
      objects(await template([CHART_DIR, "-s", "templates/crds.yaml", ...extra]).catch(() => "")).filter(
        (o) => o.kind === "CustomResourceDefinition",
      );
    const kept = await crdsOf([]);
    expect(kept.map((c) => c.metadata.name).sort()).toEqual([
      "agents.tether.dev",
      "brokers.tether.dev",
      "policyserverclusters.tether.dev",
      "proxyroutes.tether.dev",
    ]);
    for (const crd of kept) expect(crd.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    for (const crd of await crdsOf(["--set", "crds.keep=false"])) {
      expect(crd.metadata.annotations?.["helm.sh/resource-policy"]).toBeUndefined();
    }
    expect(await crdsOf(["--set", "crds.enabled=false"])).toEqual([]);
    // Helm's crds/ directory is gone: nothing is installed behind the switch's back.
    const r = await helm(plane().binDir, ["show", "crds", CHART_DIR]);
    expect(r.stdout.trim()).toBe("");
  });

  it("packages a chart that passes helm lint --strict and whose objects the API server accepts", async () => {
    const tgz = await packagedChart();
    const lint = await helm(plane().binDir, ["lint", "--strict", tgz, ...ALL_FEATURES]);
    expect(lint.stderr + lint.stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
    const rendered = await template([tgz, "--namespace", "tether-system", "--skip-tests", ...ALL_FEATURES]);
    const out = await kubectlOk(["apply", "--dry-run=server", "-n", "tether-system", "-f", "-"], rendered);
    expect(out).toContain("deployment.apps/tether created (server dry run)");
    expect(out).toContain("customresourcedefinition.apiextensions.k8s.io/agents.tether.dev");
    // NOTES.txt points at nothing outside the package.
    const install = await helm(plane().binDir, [
      "install",
      "tether",
      tgz,
      "--dry-run",
      "-n",
      "tether-system",
    ]);
    expect(install.code, install.stderr).toBe(0);
    const notes = install.stdout.split("NOTES:")[1] ?? "";
    expect(notes).toContain("helm test tether");
    expect(notes).not.toMatch(/examples\/|charts\/tether/);
  });

  it("renders as a subchart of a parent chart with global values", async () => {
    const parent = join(tmp, "parent");
    await mkdir(join(parent, "charts"), { recursive: true });
    await mkdir(join(parent, "templates"), { recursive: true });
    await writeFile(
      join(parent, "templates", "configmap.yaml"),
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: platform\ndata:\n  storageClass: {{ .Values.global.storageClass }}\n",
    );
    await copyFile(await packagedChart(), join(parent, "charts", "tether-0.1.0.tgz"));
    await writeFile(
      join(parent, "Chart.yaml"),
      "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: tether\n    version: 0.1.0\n",
    );
    await writeFile(
      join(parent, "values.yaml"),
      [
        "global:",
        "  imagePullSecrets: [{ name: platform-pull }]",
        "  storageClass: fast # a parent's own global, ignored by tether",
        "tether:",
        "  operator:",
        "    replicas: 1",
        "    leaderElection: { enabled: false }",
        "",
      ].join("\n"),
    );
    const lint = await helm(plane().binDir, ["lint", "--strict", parent]);
    expect(lint.stderr + lint.stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
    const rendered = await template([parent, "--namespace", "tether-system", "--skip-tests"]);
    expect(rendered).toContain("- name: platform-pull");
    const out = await kubectlOk(["apply", "--dry-run=server", "-n", "tether-system", "-f", "-"], rendered);
    expect(out).toContain("deployment.apps/tether created (server dry run)");
  });

  it("helm test: the test pod's script passes against a real API server, and fails while the operator is not ready", async () => {
    const ns = "tether-helm-test";
    await kubectlOk(["create", "namespace", ns]);
    const rendered = await template([CHART_DIR, "--namespace", ns, "--set", "crds.enabled=false"]);
    await kubectlOk(["apply", "-n", ns, "-f", "-"], rendered);
    const hook = await template([CHART_DIR, "--namespace", ns, "-s", "templates/tests/test-operator.yaml"]);
    const testPod = objects(hook)[0] as unknown as {
      spec: { containers: { command: string[]; args: string[]; env: { name: string; value: string }[] }[] };
    };
    const container = testPod.spec.containers[0]!;
    expect(container.command).toEqual(["node", "--input-type=module", "-e"]);
    const podEnv = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
    expect(podEnv["TETHER_TEST_READYZ"]).toBe(`http://tether-metrics.${ns}.svc:8080/readyz`);

    // The pod's own environment, pointed at this API server, a token of the operator's
    // ServiceAccount, and a stand-in for the operator's /readyz.
    const saDir = join(tmp, "sa");
    await mkdir(saDir, { recursive: true });
    await writeFile(join(saDir, "token"), (await kubectlOk(["create", "token", "tether", "-n", ns])).trim());
    const readyz: Server = createServer((req, res) => {
      res.statusCode = req.url === "/readyz" ? 200 : 404;
      res.end("ok");
    });
    await new Promise<void>((resolve) => readyz.listen(0, "127.0.0.1", resolve));
    const address = readyz.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    const runScript = async (): Promise<{ code: number; out: string }> => {
      try {
        const { stdout } = await run(process.execPath, [...container.command.slice(1), container.args[0]!], {
          env: {
            PATH: process.env["PATH"] ?? "",
            ...podEnv,
            NODE_EXTRA_CA_CERTS: join(plane().dir, "pki", "ca.crt"),
            TETHER_TEST_API: plane().server,
            TETHER_TEST_SA_DIR: saDir,
            TETHER_TEST_READYZ: `http://127.0.0.1:${port}/readyz`,
          },
          timeout: 60_000,
        });
        return { code: 0, out: stdout };
      } catch (error) {
        const e = error as { code?: number; stdout?: string };
        return { code: typeof e.code === "number" ? e.code : 1, out: e.stdout ?? String(error) };
      }
    };
    try {
      // No kubelet here: the Deployment has no ready replica yet.
      const notReady = await runScript();
      expect(notReady.code, notReady.out).toBe(1);
      expect(notReady.out).toMatch(/^FAIL operator Deployment ready/m);
      expect(notReady.out).toMatch(/^ok {3}CRDs served/m);
      await kubectlOk([
        "patch",
        "deployment",
        "tether",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"replicas":2,"readyReplicas":1}}',
      ]);
      const ready = await runScript();
      expect(ready.out).toMatch(/^ok {3}operator \/readyz/m);
      expect(ready.out).toMatch(
        /^ok {3}operator Deployment ready: 1\/2 ready, image localhost\/tether\/operator:0.1.0/m,
      );
      expect(ready.code, ready.out).toBe(0);
    } finally {
      await new Promise<void>((resolve) =>
        readyz.close(() => {
          resolve();
        }),
      );
    }
  });

  it("answers kubectl's short names and the tether category", async () => {
    for (const short of ["psc", "tagent", "tbroker", "troute"]) {
      await expect(kubectlOk(["get", short, "-A"])).resolves.toBeDefined();
    }
    const resources = await kubectlOk(["api-resources", "--api-group=tether.dev", "-o", "wide"]);
    for (const short of ["tagent", "tbroker", "troute"]) expect(resources).toContain(short);
  });
});
