/**
 * The operator runs as a ServiceAccount holding exactly the rules operator/README.md lists and does
 * all of its work, xDS over TLS and the injection webhook's caBundle included: no request is
 * forbidden. Watching every namespace: OPERATOR_RULES and CLUSTER_SCOPED_RULES in a ClusterRole,
 * webhookConfigurationRules in a ClusterRole, LEADER_ELECTION_RULES and caSecretRules in Roles in
 * its namespace. With --namespaces: OPERATOR_RULES as a Role in the watched namespace only (and a
 * ClusterRole only for CLUSTER_SCOPED_RULES), so any list or watch across all namespaces would be
 * forbidden. With --xds-tls-secret (the chart's xds.tls.certManager): xdsTlsSecretRules instead of
 * caSecretRules, so the operator reads and watches that one Secret and no other.
 */
import { join } from "node:path";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  caSecretRules,
  CLUSTER_SCOPED_RULES,
  LEADER_ELECTION_RULES,
  OPERATOR_RULES,
  webhookConfigurationRules,
  xdsTlsSecretRules,
} from "../src/rbac.ts";
import { createCa, issueServing } from "../src/pki/index.ts";
import { TestCluster } from "./helpers/cluster.ts";
import { buildOperator, OperatorProcess, REPO_ROOT } from "./helpers/operator-process.ts";
import { waitFor } from "./helpers/wait.ts";

let cluster: TestCluster;
let operator: OperatorProcess;
const WEBHOOK_CONFIGURATION = "tether-injector";

function rbacManifest(): string {
  const docs = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: "tether-system" } },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "tether-operator", namespace: "tether-system" },
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "tether-operator" },
      rules: [...OPERATOR_RULES, ...CLUSTER_SCOPED_RULES],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "tether-operator" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "tether-operator" },
      subjects: [{ kind: "ServiceAccount", name: "tether-operator", namespace: "tether-system" }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "tether-operator-leader-election", namespace: "tether-system" },
      rules: LEADER_ELECTION_RULES,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "tether-operator-leader-election", namespace: "tether-system" },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "Role",
        name: "tether-operator-leader-election",
      },
      subjects: [{ kind: "ServiceAccount", name: "tether-operator", namespace: "tether-system" }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "tether-operator-ca", namespace: "tether-system" },
      rules: caSecretRules("tether-ca"),
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "tether-operator-ca", namespace: "tether-system" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "tether-operator-ca" },
      subjects: [{ kind: "ServiceAccount", name: "tether-operator", namespace: "tether-system" }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "tether-operator-webhook" },
      rules: webhookConfigurationRules(WEBHOOK_CONFIGURATION),
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "tether-operator-webhook" },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: "tether-operator-webhook",
      },
      subjects: [{ kind: "ServiceAccount", name: "tether-operator", namespace: "tether-system" }],
    },
    // As the chart creates it; no namespace here opts in, so no pod is ever sent to it.
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name: WEBHOOK_CONFIGURATION },
      webhooks: [
        {
          name: "inject.tether.dev",
          admissionReviewVersions: ["v1"],
          sideEffects: "None",
          failurePolicy: "Ignore",
          clientConfig: {
            service: { name: "tether-webhook", namespace: "tether-system", path: "/mutate-pods" },
          },
          rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }],
          namespaceSelector: { matchLabels: { "tether.dev/injection": "enabled" } },
        },
      ],
    },
  ];
  return docs.map((d) => stringify(d)).join("---\n");
}

beforeAll(async () => {
  buildOperator();
  // As on clusters that enforce it: setting blockOwnerDeletion needs `update` on <owner>/finalizers.
  cluster = await TestCluster.start({
    apiServerArgs: ["--enable-admission-plugins=OwnerReferencesPermissionEnforcement"],
  });
  await cluster.ok(["apply", "-f", "-"], rbacManifest());
  const kubeconfig = await cluster.cp.kubeconfigForServiceAccount("tether-system", "tether-operator");
  operator = await OperatorProcess.start({
    kubeconfig,
    args: [
      "--leader-elect",
      "true",
      "--lease-namespace",
      "tether-system",
      "--resync-period",
      "0",
      "--xds-service",
      "tether-xds.tether-system",
      "--webhook-address",
      "127.0.0.1:0",
      "--webhook-service",
      "tether-webhook.tether-system",
      "--webhook-configuration",
      WEBHOOK_CONFIGURATION,
    ],
    env: { POD_NAMESPACE: "tether-system" },
  });
});

afterAll(async () => {
  await (operator as OperatorProcess | undefined)?.stop();
  await (cluster as TestCluster | undefined)?.stop();
});

describe("RBAC", () => {
  it("does everything with exactly the documented rules", async () => {
    await cluster.ok(["apply", "-n", "default", "-f", join(REPO_ROOT, "examples", "quick-start")]);
    await waitFor("leadership", async () => (await operator.metric("tether_operator_leader")) === 1);
    for (const [kind, name] of [
      ["deployment", "web"],
      ["configmap", "web-sidecar"],
      ["configmap", "web-agent-config"],
      ["deployment", "ps-main"],
      ["service", "ps-main"],
      ["deployment", "appserver-broker"],
      ["service", "appserver-broker"],
      ["configmap", "appserver-broker-sidecar"],
      ["configmap", "tether-xds-ca"],
    ] as const) {
      await cluster.waitFor(kind, name, () => true);
    }
    for (const [kind, name] of [
      ["agent", "web"],
      ["psc", "ps-main"],
      ["broker", "appserver-broker"],
      ["proxyroute", "app"],
    ] as const) {
      await cluster.waitFor(kind, name, (o) => o.status?.["observedGeneration"] === 1);
    }
    // A conflict is detected with a GET by name, and reported with an Event.
    await cluster.ok(["create", "configmap", "clash-sidecar", "-n", "default"]);
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: clash}
spec:
  policyServerClusterRef: {name: ps-main}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
`);
    await waitFor("the NameConflict event", async () =>
      (await cluster.list("events")).some(
        (e) => (e as unknown as { reason?: string }).reason === "NameConflict",
      ),
    );
    // The name is freed: the Agent takes it at once (no resync runs here).
    await cluster.ok(["delete", "configmap", "clash-sidecar", "-n", "default"]);
    await cluster.waitFor("configmap", "clash-sidecar", (o) => o.metadata.ownerReferences !== undefined);
    await cluster.waitFor("agent", "clash", (o) =>
      (o.status?.["conditions"] as Record<string, unknown>[]).every((c) => c["reason"] !== "NameConflict"),
    );
    // The leader wrote the operator's CA into the webhook configuration's caBundle.
    const ca = (await cluster.get("secret", "tether-ca", "tether-system"))?.data?.["ca.crt"];
    expect(ca).toBeTruthy();
    await cluster.waitFor(
      "mutatingwebhookconfiguration",
      WEBHOOK_CONFIGURATION,
      (o) =>
        (o as unknown as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks[0]?.clientConfig
          .caBundle === ca,
    );
    expect(await operator.metric("tether_operator_reconcile_total", { result: "error" })).toBe(0);
    expect(operator.logText()).not.toMatch(/forbidden/i);
  });
});

describe("RBAC for chosen namespaces", () => {
  it("works with Roles in the watched namespace only, and leaves other namespaces alone", async () => {
    await operator.stop(); // the cluster-wide operator above would reconcile team-a too
    const role = (name: string, rules: unknown): Record<string, unknown> => ({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name, namespace: "team-a" },
      rules,
    });
    const binding = (name: string): Record<string, unknown> => ({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name, namespace: "team-a" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name: "team-operator", namespace: "team-a" }],
    });
    // Cluster-scoped calls only, when the operator makes any (none today: no ClusterRole at all).
    const clusterScoped =
      CLUSTER_SCOPED_RULES.length === 0
        ? []
        : [
            {
              apiVersion: "rbac.authorization.k8s.io/v1",
              kind: "ClusterRole",
              metadata: { name: "team-operator-cluster-scoped" },
              rules: CLUSTER_SCOPED_RULES,
            },
            {
              apiVersion: "rbac.authorization.k8s.io/v1",
              kind: "ClusterRoleBinding",
              metadata: { name: "team-operator-cluster-scoped" },
              roleRef: {
                apiGroup: "rbac.authorization.k8s.io",
                kind: "ClusterRole",
                name: "team-operator-cluster-scoped",
              },
              subjects: [{ kind: "ServiceAccount", name: "team-operator", namespace: "team-a" }],
            },
          ];
    const docs = [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-a" } },
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-b" } },
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "team-operator", namespace: "team-a" } },
      role("team-operator", OPERATOR_RULES),
      binding("team-operator"),
      role("team-operator-leader-election", LEADER_ELECTION_RULES),
      binding("team-operator-leader-election"),
      role("team-operator-ca", caSecretRules("team-ca")),
      binding("team-operator-ca"),
      ...clusterScoped,
    ];
    await cluster.ok(["apply", "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
    // The API server grants the ServiceAccount nothing outside team-a: a list or watch across all
    // namespaces, or in team-b, would be forbidden (and show in the operator's log).
    const as = "--as=system:serviceaccount:team-a:team-operator";
    for (const [verb, resource] of [
      ["watch", "agents.tether.dev"],
      ["list", "deployments.apps"],
      ["list", "endpointslices.discovery.k8s.io"],
    ] as const) {
      expect(await cluster.cp.kubectl(["auth", "can-i", verb, resource, "-n", "team-a", as])).toMatchObject({
        stdout: "yes\n",
      });
      for (const where of [["-n", "team-b"], ["--all-namespaces"]]) {
        expect(await cluster.cp.kubectl(["auth", "can-i", verb, resource, ...where, as])).toMatchObject({
          stdout: "no\n",
        });
      }
    }
    const kubeconfig = await cluster.cp.kubeconfigForServiceAccount("team-a", "team-operator");
    operator = await OperatorProcess.start({
      kubeconfig,
      args: [
        "--namespaces",
        "team-a",
        "--lease-namespace",
        "team-a",
        "--lease-name",
        "team-operator",
        "--ca-secret",
        "team-ca",
      ],
      env: { POD_NAMESPACE: "team-a" },
    });
    const resources = `apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps}
spec: {port: 44443, external: {servers: [{host: 192.0.2.1}]}}
---
apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: web}
spec:
  policyServerClusterRef: {name: ps}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
`;
    await cluster.apply(resources, "team-a");
    await cluster.apply(resources, "team-b");
    await cluster.waitFor("deployment", "web", () => true, "team-a");
    await cluster.waitFor("agent", "web", (o) => o.status?.["observedGeneration"] === 1, "team-a");
    await waitFor("leadership", async () => (await operator.metric("tether_operator_leader")) === 1);
    expect(await cluster.get("deployment", "web", "team-b")).toBeUndefined();
    expect((await cluster.get("agent", "web", "team-b"))?.status).toBeUndefined();
    // The leader wrote the operator's CA into the webhook configuration's caBundle.
    const ca = (await cluster.get("secret", "tether-ca", "tether-system"))?.data?.["ca.crt"];
    expect(ca).toBeTruthy();
    await cluster.waitFor(
      "mutatingwebhookconfiguration",
      WEBHOOK_CONFIGURATION,
      (o) =>
        (o as unknown as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks[0]?.clientConfig
          .caBundle === ca,
    );
    expect(await operator.metric("tether_operator_reconcile_total", { result: "error" })).toBe(0);
    // Every informer listed and watched team-a only: nothing restarted on an error (a forbidden list).
    expect(await operator.metric("tether_operator_watch_restarts_total", { reason: "error" })).toBe(0);
    expect(operator.logText()).not.toMatch(/forbidden/i);
  });
});

describe("RBAC with the xDS certificate from cert-manager", () => {
  it("serves the Secret's certificate and publishes its ca.crt with get/list/watch on that one Secret", async () => {
    await operator.stop(); // the team-a operator above
    const names = ["tether-xds", "tether-xds.tether-system", "tether-xds.tether-system.svc"];
    const xdsName = "tether-xds.tether-system.svc.cluster.local";
    const valid = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) };
    const ca = createCa("cert-manager CA", valid);
    const leaf = issueServing(ca, [...names, xdsName], valid);
    const b64 = (t: string): string => Buffer.from(t).toString("base64");
    const subject = [{ kind: "ServiceAccount", name: "cm-operator", namespace: "tether-system" }];
    const docs = [
      {
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: { name: "cm-operator", namespace: "tether-system" },
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: "cm-operator" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "tether-operator" },
        subjects: subject,
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "cm-operator-leader-election", namespace: "tether-system" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "Role",
          name: "tether-operator-leader-election",
        },
        subjects: subject,
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "cm-operator-xds-tls", namespace: "tether-system" },
        rules: xdsTlsSecretRules("tether-xds-tls"),
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "cm-operator-xds-tls", namespace: "tether-system" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "cm-operator-xds-tls" },
        subjects: subject,
      },
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "tether-xds-tls", namespace: "tether-system" },
        type: "kubernetes.io/tls",
        data: { "tls.crt": b64(leaf.certPem), "tls.key": b64(leaf.keyPem), "ca.crt": b64(ca.certPem) },
      },
    ];
    await cluster.ok(["apply", "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
    const as = "--as=system:serviceaccount:tether-system:cm-operator";
    for (const [args, answer] of [
      [["watch", "secrets/tether-xds-tls"], "yes\n"],
      [["list", "secrets"], "no\n"],
      [["get", "secrets/tether-ca"], "no\n"],
      [["create", "secrets"], "no\n"],
    ] as const) {
      expect(await cluster.cp.kubectl(["auth", "can-i", ...args, "-n", "tether-system", as])).toMatchObject({
        stdout: answer,
      });
    }
    // A bundle left in a namespace whose Agents went while no operator ran: cleaned at leadership.
    await cluster.ok(["create", "namespace", "left-behind"]);
    await cluster.apply(
      `apiVersion: v1
kind: ConfigMap
metadata:
  name: tether-xds-ca
  labels: {app.kubernetes.io/name: tether, app.kubernetes.io/component: xds-ca, app.kubernetes.io/managed-by: tether-operator}
data: {ca.crt: stale}
`,
      "left-behind",
    );
    const kubeconfig = await cluster.cp.kubeconfigForServiceAccount("tether-system", "cm-operator");
    operator = await OperatorProcess.start({
      kubeconfig,
      args: [
        ...["--leader-elect", "true", "--lease-namespace", "tether-system", "--lease-name", "cm-operator"],
        ...["--resync-period", "0", "--xds-service", "tether-xds.tether-system"],
        ...["--xds-tls-secret", "tether-xds-tls", "--xds-auth", "false"],
      ],
      env: { POD_NAMESPACE: "tether-system" },
    });
    const [host = "", port = ""] = operator.xdsAddress.split(":");
    const serial = await new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host, port: Number(port), ca: ca.certPem, servername: xdsName, ALPNProtocols: ["h2"] },
        () => {
          resolve(socket.getPeerX509Certificate()?.serialNumber ?? "");
          socket.destroy();
        },
      );
      socket.on("error", reject);
    });
    expect(serial).not.toBe("");
    // The quick-start namespace's bundle is now cert-manager's CA (the leader re-applied it).
    await waitFor("leadership", async () => (await operator.metric("tether_operator_leader")) === 1);
    await cluster.waitFor("configmap", "tether-xds-ca", (o) => o.data?.["ca.crt"] === ca.certPem);
    await waitFor(
      "the left-behind bundle deleted",
      async () => (await cluster.get("configmap", "tether-xds-ca", "left-behind")) === undefined,
    );
    expect(await operator.metric("tether_operator_reconcile_total", { result: "error" })).toBe(0);
    expect(await operator.metric("tether_operator_watch_restarts_total", { reason: "error" })).toBe(0);
    expect(operator.logText()).not.toMatch(/forbidden/i);
  });

  it("deletes tether-xds-ca with the last Agent or Broker of its namespace, and brings it back with the next", async () => {
    // The quick-start namespace: Agents web and clash, Broker appserver-broker.
    const agentReconciles = (): Promise<number> =>
      operator.metric("tether_operator_reconcile_total", { kind: "Agent", result: "success" });
    const before = await agentReconciles();
    await cluster.ok(["delete", "agents", "--all", "-n", "default", "--wait=false"]);
    await waitFor("the Agents gone", async () => (await cluster.list("agents")).length === 0);
    // A Broker is left: the bundle stays once the deleted Agents' reconciles have run.
    await waitFor("the deleted Agents' reconciles", async () => (await agentReconciles()) >= before + 2);
    expect(await cluster.get("configmap", "tether-xds-ca")).toBeDefined();
    await cluster.ok(["delete", "brokers", "--all", "-n", "default", "--wait=false"]);
    await waitFor(
      "tether-xds-ca deleted",
      async () => (await cluster.get("configmap", "tether-xds-ca")) === undefined,
    );
    // The next Agent of the namespace applies it again.
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: again}
spec:
  policyServerClusterRef: {name: ps-main}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
`);
    await cluster.waitFor("configmap", "tether-xds-ca", (o) => o.data?.["ca.crt"] !== undefined);
    expect(await operator.metric("tether_operator_reconcile_total", { result: "error" })).toBe(0);
    expect(operator.logText()).not.toMatch(/forbidden/i);
  });
});
