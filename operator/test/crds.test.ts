/**
 * The generated CRDs against a real kube-apiserver: they install, the examples are accepted, every
 * invalid resource in the table is rejected with a message naming its field, defaults are applied,
 * and `kubectl explain` / `kubectl get tether` work.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../../e2e/src/controlplane/index.ts";
import { API_VERSION, KINDS } from "../src/api/index.ts";
import { REPO_ROOT } from "../src/api/generate.ts";
import { INVALID_CASES } from "./fixtures/invalid-resources.ts";

let cp: ControlPlane | undefined;

/** The running control plane (beforeAll started it). */
function plane(): ControlPlane {
  if (cp === undefined) throw new Error("control plane not started");
  return cp;
}

async function kubectl(
  args: string[],
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return plane().kubectl(args, input === undefined ? {} : { input });
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  cp = await startControlPlane();
  await kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  await kubectlOk([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    ...KINDS.map((k) => `crd/${k.plural}.tether.dev`),
  ]);
});

afterAll(async () => {
  await cp?.stop();
});

describe("CRDs on a real API server", () => {
  it("are Established with the printer columns, short name and category", async () => {
    const out = await kubectlOk(["get", "crd", "policyserverclusters.tether.dev", "-o", "json"]);
    const crd = JSON.parse(out) as {
      spec: { names: { shortNames: string[]; categories: string[] } };
      status: { conditions: { type: string; status: string }[] };
    };
    expect(crd.spec.names.shortNames).toEqual(["psc"]);
    expect(crd.spec.names.categories).toEqual(["tether"]);
    expect(crd.status.conditions.find((c) => c.type === "Established")?.status).toBe("True");
  });

  it.each(["quick-start", "external-tcp-farm", "adopt-deployment"])(
    "accept every file in examples/%s, in any namespace (server-side dry run)",
    async (example) => {
      const dir = join(REPO_ROOT, "examples", example);
      const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
      expect(files.length).toBeGreaterThanOrEqual(2);
      await kubectl(["create", "namespace", "anywhere"]);
      for (const file of files) {
        const text = readFileSync(join(dir, file), "utf8");
        // Nothing ties an example to one namespace: no metadata.namespace, no <ns>.svc names.
        expect(text, file).not.toMatch(/^\s+namespace:|\.svc\b/m);
        const out = await kubectlOk(["apply", "--dry-run=server", "-n", "anywhere", "-f", join(dir, file)]);
        expect(out).toMatch(/created \(server dry run\)/);
      }
    },
  );

  it.each(INVALID_CASES.map((c) => [`${c.kind}: ${c.name}`, c] as const))(
    "reject %s, naming the field",
    async (_label, c) => {
      const manifest = JSON.stringify({
        apiVersion: API_VERSION,
        kind: c.kind,
        metadata: { name: "invalid", namespace: "default" },
        spec: c.spec(),
      });
      const r = await kubectl(["apply", "--dry-run=server", "-f", "-"], manifest);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(c.field);
      if (c.message !== undefined) expect(r.stderr).toContain(c.message);
    },
  );

  it("default every field the API defaults", async () => {
    const manifest = JSON.stringify({
      apiVersion: API_VERSION,
      kind: "Agent",
      metadata: { name: "defaults", namespace: "default" },
      spec: {
        policyServerClusterRef: { name: "ps-main" },
        template: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
      },
    });
    const out = await kubectlOk(["create", "--dry-run=server", "-o", "json", "-f", "-"], manifest);
    const agent = JSON.parse(out) as { spec: Record<string, unknown> };
    expect(agent.spec).toMatchObject({
      replicas: 1,
      pool: { maxConnections: 1024, idleTimeout: "30s", maxRequestsPerConnection: 0 },
      reconnect: { connectTimeout: "5s", retryInterval: "250ms", maxRetryInterval: "2s", holdTimeout: "30s" },
      cache: { enabled: false, ttl: "3m", notifications: true, keyHeaders: ["authorization", "cookie"] },
      sidecar: { adminPort: 9901, localAdminPort: 15000 },
    });
  });

  it("explain fields with their descriptions", async () => {
    const out = await kubectlOk(["explain", "agent.spec.reconnect"]);
    expect(out).toContain("holdTimeout");
    expect(out).toMatch(/How long requests and new connections wait while no policy server answers/);
  });

  it("list every kind with kubectl get tether, and PolicyServerClusters as psc", async () => {
    await kubectlOk(["create", "namespace", "quick-start"]);
    await kubectlOk(["apply", "-n", "quick-start", "-f", join(REPO_ROOT, "examples/quick-start")]);
    const all = await kubectlOk(["get", "tether", "-n", "quick-start", "-o", "name"]);
    expect(all.trim().split("\n").sort()).toEqual([
      "agent.tether.dev/web",
      "broker.tether.dev/appserver-broker",
      "policyservercluster.tether.dev/ps-main",
      "proxyroute.tether.dev/app",
    ]);
    const psc = await kubectlOk(["get", "psc", "-n", "quick-start"]);
    expect(psc.split("\n")[0]).toMatch(/NAME\s+READY\s+PROTOCOL\s+PORT\s+ENDPOINTS\s+AGE/);
    expect(psc).toContain("ps-main");
  });
});
