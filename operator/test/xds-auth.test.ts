/**
 * Sidecar identity on the operator's ADS streams, against a real kube-apiserver: the operator runs as
 * a ServiceAccount holding exactly its rules (OPERATOR_RULES + XDS_AUTH_RULES + XDS_AUTH_POD_RULES), sidecars are ADS
 * clients presenting real tokens (TokenRequest, bound to real Pod objects; pods need no node), and
 * the operator reviews them with TokenReview. The right pod's token gets its own Agent's config;
 * no token, a wrong audience, an expired token, another namespace's token and a pod claiming another
 * Agent's node are refused with the gRPC status and counted by reason.
 */
import { createHash, createPrivateKey, createPublicKey, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AdsClient, type ResourceJson, type ResourceType } from "@tether/xds";
import { stringify } from "yaml";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SERVICE_ACCOUNT_ISSUER } from "../../e2e/src/controlplane/components.ts";
import { OPERATOR_RULES, XDS_AUTH_POD_RULES, XDS_AUTH_RULES } from "../src/rbac.ts";
import { TestCluster } from "./helpers/cluster.ts";
import { buildOperator, OperatorProcess } from "./helpers/operator-process.ts";
import { waitFor } from "./helpers/wait.ts";

let cluster: TestCluster;
let operator: OperatorProcess;
const clients: AdsClient[] = [];

const AGENTS = `apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps-web}
spec: {port: 41001, external: {servers: [{host: 192.0.2.1}]}}
---
apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps-api}
spec: {port: 42002, external: {servers: [{host: 192.0.2.2}]}}
---
apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: web}
spec:
  policyServerClusterRef: {name: ps-web}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
---
apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: api}
spec:
  policyServerClusterRef: {name: ps-api}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
`;

/** A Pod of Agent `owner` as its Deployment would make it (the labels the operator selects by). */
function pod(name: string, owner: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      labels: {
        "app.kubernetes.io/name": "tether",
        "app.kubernetes.io/instance": owner,
        "app.kubernetes.io/component": "agent",
      },
    },
    spec: { serviceAccountName: "app", containers: [{ name: "agent", image: "agent:1" }] },
  });
}

async function uid(kind: string, name: string, namespace: string): Promise<string> {
  const o = await cluster.get(kind, name, namespace);
  if (o?.metadata.uid === undefined) throw new Error(`${kind} ${namespace}/${name} has no uid`);
  return o.metadata.uid;
}

/** A TokenRequest for ServiceAccount `app`, bound to the pod. */
async function podToken(namespace: string, podName: string, audience = "tether"): Promise<string> {
  const out = await cluster.ok([
    "create",
    "token",
    "app",
    "-n",
    namespace,
    "--audience",
    audience,
    "--duration",
    "600s",
    "--bound-object-kind",
    "Pod",
    "--bound-object-name",
    podName,
    "--bound-object-uid",
    await uid("pod", podName, namespace),
  ]);
  return out.trim();
}

/**
 * A pod-bound token signed with the test API server's own service-account key (TokenRequest will
 * not issue one that is already expired), valid or not as `expiresIn` says.
 */
async function signedToken(namespace: string, podName: string, expiresIn: number): Promise<string> {
  const keyPem = readFileSync(join(cluster.cp.dir, "pki", "service-account.key"));
  const key = createPrivateKey(keyPem);
  const der = createPublicKey(key).export({ type: "spki", format: "der" });
  const kid = createHash("sha256").update(der).digest("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: SERVICE_ACCOUNT_ISSUER,
    aud: ["tether"],
    sub: `system:serviceaccount:${namespace}:app`,
    iat: now + expiresIn - 600,
    nbf: now + expiresIn - 600,
    exp: now + expiresIn,
    "kubernetes.io": {
      namespace,
      pod: { name: podName, uid: await uid("pod", podName, namespace) },
      serviceaccount: { name: "app", uid: await uid("serviceaccount", "app", namespace) },
    },
  };
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
  const signing = `${part({ alg: "ES256", kid })}.${part(claims)}`;
  const signature = sign("sha256", Buffer.from(signing), { key, dsaEncoding: "ieee-p1363" });
  return `${signing}.${signature.toString("base64url")}`;
}

interface Session {
  readonly client: AdsClient;
  readonly seen: Map<ResourceType, ReadonlyMap<string, ResourceJson>>;
  /** Why the server ended the stream, each time it did. */
  readonly closes: string[];
}

/** An ADS client as a sidecar of `group` (node id `<ns>/<pod>`), presenting `token` if given. */
function connect(nodeId: string, group: string, token: string | undefined): Session {
  const [host, port] = operator.xdsAddress.split(":");
  const seen = new Map<ResourceType, ReadonlyMap<string, ResourceJson>>();
  const closes: string[] = [];
  const quiet = (): void => undefined;
  const client = new AdsClient(
    {
      target: { host: host ?? "127.0.0.1", port: Number(port) },
      node: { id: nodeId, cluster: group },
      backoff: { baseMs: 200, maxMs: 1000 },
      log: {
        debug: quiet,
        info: quiet,
        error: quiet,
        warn: (o: object) => {
          const reason = (o as { reason?: unknown }).reason;
          if (typeof reason === "string") closes.push(reason);
        },
      },
      ...(token === undefined ? {} : { callMetadata: () => ({ authorization: `Bearer ${token}` }) }),
    },
    {
      onResources: (type, _version, resources) => {
        seen.set(type, resources);
        return Promise.resolve(undefined);
      },
    },
  );
  clients.push(client);
  client.start();
  return { client, seen, closes };
}

function refusal(session: Session): Promise<string> {
  return waitFor("the stream to be refused", () => session.closes[0], { timeoutMs: 15_000, intervalMs: 50 });
}

async function tokenReviews(): Promise<number> {
  const text = await cluster.ok(["get", "--raw", "/metrics"]);
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_total{") || !line.includes('resource="tokenreviews"')) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

beforeAll(async () => {
  buildOperator();
  cluster = await TestCluster.start();
  const docs = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: "tether-system" } },
    { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-a" } },
    { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-b" } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "operator", namespace: "tether-system" } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "app", namespace: "team-a" } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "app", namespace: "team-b" } },
    ...[
      ["tether-operator", OPERATOR_RULES],
      ["tether-operator-xds-auth", [...XDS_AUTH_RULES, ...XDS_AUTH_POD_RULES]],
    ].flatMap(([name, rules]) => [
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name }, rules },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
        subjects: [{ kind: "ServiceAccount", name: "operator", namespace: "tether-system" }],
      },
    ]),
  ];
  await cluster.ok(["apply", "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
  await cluster.apply(AGENTS, "team-a");
  await cluster.apply(AGENTS, "team-b");
  await cluster.apply([pod("web-0", "web"), pod("api-0", "api")].join("---\n"), "team-a");
  await cluster.apply(pod("web-0", "web"), "team-b");
  operator = await OperatorProcess.start({
    kubeconfig: await cluster.cp.kubeconfigForServiceAccount("tether-system", "operator"),
    // Identity only: TLS on the same port is covered by the xDS TLS tests (and needs the CA Secret's rules).
    args: ["--leader-elect", "false", "--xds-service", "tether-xds.tether-system", "--xds-tls", "false"],
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
});

afterAll(async () => {
  await (operator as OperatorProcess | undefined)?.stop();
  await (cluster as TestCluster | undefined)?.stop();
});

describe("xDS identity", () => {
  it("renders a projected token (audience tether) mounted into the sidecar only", async () => {
    const deployment = await cluster.waitFor("deployment", "web", () => true, "team-a");
    type Container = { name: string; args?: string[]; volumeMounts?: { name: string; mountPath: string }[] };
    const spec = (
      deployment.spec?.["template"] as {
        spec: { initContainers?: Container[]; containers: Container[]; volumes: Record<string, unknown>[] };
      }
    ).spec;
    expect(spec.volumes.find((v) => v["name"] === "tether-xds-token")).toMatchObject({
      projected: {
        sources: [{ serviceAccountToken: { audience: "tether", expirationSeconds: 600, path: "token" } }],
      },
    });
    const all = [...(spec.initContainers ?? []), ...spec.containers];
    const sidecar = all.find((c) => c.name === "tether-sidecar");
    expect(sidecar?.args).toEqual(
      expect.arrayContaining(["--xds-token-file", "/var/run/secrets/tether.dev/xds/token"]),
    );
    for (const c of all) {
      const mounted = (c.volumeMounts ?? []).some((m) => m.name === "tether-xds-token");
      expect(mounted, c.name).toBe(c.name === "tether-sidecar");
    }
  });

  it("serves the right pod's token its own Agent's config, reviewing a reused token once", async () => {
    const token = await podToken("team-a", "web-0");
    const policyServerPort = (s: Session): unknown => {
      const cluster = s.seen.get("cluster")?.get("policy-server") as
        | { load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: unknown } }[] }[] } }
        | undefined;
      return cluster?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address;
    };
    const first = connect("team-a/web-0", "team-a/agent/web", token);
    await waitFor("CDS and LDS", () => first.seen.has("cluster") && first.seen.has("listener"));
    // web's PolicyServerCluster (port 41001), not api's (42002).
    expect(policyServerPort(first)).toEqual({ socket_address: { address: "192.0.2.1", port_value: 41001 } });
    expect(first.closes).toEqual([]);
    const reviews = await tokenReviews();
    // The same token again (a reconnect): served from the review cache, no new TokenReview.
    const again = connect("team-a/web-0", "team-a/agent/web", token);
    await waitFor("CDS again", () => again.seen.has("cluster"));
    expect(await tokenReviews()).toBe(reviews);
    // A token signed like the API server's own (the control for the expired case below) is accepted.
    const signed = connect("team-a/web-0", "team-a/agent/web", await signedToken("team-a", "web-0", 600));
    await waitFor("CDS for a self-signed valid token", () => signed.seen.has("cluster"));
  });

  it("refuses a stream without a token: UNAUTHENTICATED", async () => {
    const s = connect("team-a/web-0", "team-a/agent/web", undefined);
    expect(await refusal(s)).toMatch(/^UNAUTHENTICATED: no `authorization: Bearer <token>` metadata/);
    expect(s.seen.size).toBe(0);
  });

  it("refuses a token for another audience: UNAUTHENTICATED", async () => {
    const s = connect("team-a/web-0", "team-a/agent/web", await podToken("team-a", "web-0", "other"));
    expect(await refusal(s)).toMatch(/^UNAUTHENTICATED: the token was rejected: .*audience/);
    expect(s.seen.size).toBe(0);
  });

  it("refuses an expired token: UNAUTHENTICATED", async () => {
    const s = connect("team-a/web-0", "team-a/agent/web", await signedToken("team-a", "web-0", -60));
    expect(await refusal(s)).toMatch(/^UNAUTHENTICATED: the token was rejected: .*expired/);
    expect(s.seen.size).toBe(0);
  });

  it("refuses another namespace's token: PERMISSION_DENIED", async () => {
    const s = connect("team-b/web-0", "team-a/agent/web", await podToken("team-b", "web-0"));
    expect(await refusal(s)).toBe(
      "PERMISSION_DENIED: the token is from namespace team-b; node.cluster team-a/agent/web is not in it",
    );
    expect(s.seen.size).toBe(0);
  });

  it("refuses a pod claiming another Agent's node: PERMISSION_DENIED", async () => {
    const s = connect("team-a/api-0", "team-a/agent/web", await podToken("team-a", "api-0"));
    expect(await refusal(s)).toBe("PERMISSION_DENIED: pod team-a/api-0 belongs to agent api, not agent web");
    expect(s.seen.size).toBe(0);
  });

  it("counts every refusal by reason", async () => {
    const count = (reason: string): Promise<number> =>
      operator.metric("tether_operator_xds_streams_refused_total", { reason });
    // Refused clients retry with back-off, so each reason has been counted at least once.
    expect(await count("no_token")).toBeGreaterThanOrEqual(1);
    expect(await count("invalid_token")).toBeGreaterThanOrEqual(2);
    expect(await count("wrong_namespace")).toBeGreaterThanOrEqual(1);
    expect(await count("wrong_owner")).toBeGreaterThanOrEqual(1);
    expect(await count("review_failed")).toBe(0);
    expect(operator.logText()).not.toMatch(/forbidden/i);
  });
});
