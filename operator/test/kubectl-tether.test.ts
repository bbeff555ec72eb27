/**
 * The `kubectl tether` plugin (operator/bin/kubectl-tether, run as kubectl would run it) against a
 * real API server: `check` fails naming what is missing and passes once the chart's objects, a
 * ready operator and its Lease exist; `status` lists Agents and Brokers; `upstreams` says when an
 * Agent has no running pod (there is no kubelet here: the port-forward path is exercised by the
 * parser's unit test and the lead's cluster run).
 */
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../../e2e/src/controlplane/index.ts";
import { REPO_ROOT } from "../src/api/generate.ts";

const run = promisify(execFile);
const NS = "tether-system";
let cp: ControlPlane | undefined;

function plane(): ControlPlane {
  if (cp === undefined) throw new Error("control plane not started");
  return cp;
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await plane().kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Runs the plugin executable with this control plane's kubeconfig; never throws. */
async function plugin(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run(join(REPO_ROOT, "operator/bin/kubectl-tether"), args, {
      env: {
        PATH: `${plane().binDir}:${process.env["PATH"] ?? ""}`,
        KUBECONFIG: plane().kubeconfigPath,
        // kubectl keeps its discovery cache under $HOME/.kube: the control plane's directory.
        HOME: plane().dir,
      },
      timeout: 60_000,
    });
    return { code: 0, out: stdout };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

beforeAll(async () => {
  cp = await startControlPlane();
  await kubectlOk(["create", "namespace", NS]);
}, 120_000);

afterAll(async () => {
  await cp?.stop();
});

describe("kubectl tether", () => {
  it("check fails, naming each missing CRD and the missing operator", async () => {
    const r = await plugin("check");
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/^FAIL CRD agents\.tether\.dev: not installed/m);
    expect(r.out).toMatch(/^FAIL operator: no Deployment found/m);
  });

  it("check passes once the chart is applied, the operator ready and leading; it reports xDS and versions", async () => {
    const helm = join(plane().binDir, "helm");
    const { stdout } = await run(
      helm,
      ["template", "tether", join(REPO_ROOT, "charts/tether"), "-n", NS, "--skip-tests"],
      {
        maxBuffer: 32 << 20,
      },
    );
    await kubectlOk(["apply", "-n", NS, "-f", "-"], stdout);
    await kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    const notReady = await plugin("check");
    expect(notReady.code, notReady.out).toBe(1);
    expect(notReady.out).toMatch(/^FAIL operator tether-system\/tether: 0\/2 ready/m);
    expect(notReady.out).toMatch(/^FAIL leader: no replica holds lease tether-operator/m);

    await kubectlOk(
      ["patch", "deployment", "tether", "-n", NS, "--subresource=status", "--type=merge", "-p"].concat(
        '{"status":{"replicas":2,"readyReplicas":2}}',
      ),
    );
    await kubectlOk(
      ["apply", "-n", NS, "-f", "-"],
      JSON.stringify({
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: "tether-operator" },
        spec: {
          holderIdentity: "tether-7b9c4-abcde",
          renewTime: new Date().toISOString().replace("Z", "000Z"),
        },
      }),
    );
    // No kubelet here: the xDS Service's endpoint is written by hand, as the endpoints controller would.
    await kubectlOk(
      ["apply", "-n", NS, "-f", "-"],
      JSON.stringify({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: { name: "tether-xds-abcde", labels: { "kubernetes.io/service-name": "tether-xds" } },
        addressType: "IPv4",
        ports: [{ name: "xds", port: 18000, protocol: "TCP" }],
        endpoints: [{ addresses: ["10.0.0.7"], conditions: { ready: true } }],
      }),
    );
    const ok = await plugin("check");
    expect(ok.out).toMatch(/^ok {3}CRD agents\.tether\.dev: established, v1alpha1 served, version 0\.1\.0$/m);
    expect(ok.out).toMatch(
      /^ok {3}operator tether-system\/tether: 2\/2 ready, image localhost\/tether\/operator:0\.1\.0$/m,
    );
    expect(ok.out).toMatch(/^ok {3}leader: tether-7b9c4-abcde/m);
    expect(ok.out).toMatch(/^ok {3}xDS: Service tether-xds has 1 ready endpoint\(s\)$/m);
    expect(ok.out).toMatch(/^ok {3}versions: operator 0\.1\.0, sidecar 0\.1\.0, CRDs 0\.1\.0$/m);
    expect(ok.code, ok.out).toBe(0);
  });

  it("status lists every Agent and Broker; upstreams says when an Agent has no running pod", async () => {
    await kubectlOk(["create", "namespace", "shop"]);
    const examples = join(REPO_ROOT, "examples/quick-start");
    for (const file of readdirSync(examples)
      .filter((f) => f.endsWith(".yaml"))
      .sort()) {
      await kubectlOk(["apply", "-n", "shop", "-f", join(examples, file)]);
    }
    const all = await plugin("status", "-A");
    expect(all.code, all.out).toBe(0);
    const lines = all.out.trim().split("\n");
    expect(lines[0]).toMatch(/^KIND\s+NAMESPACE\s+NAME\s+READY\s+REASON\s+REPLICAS\s+CONFIG$/);
    expect(lines.filter((l) => /^Agent\s+shop\s/.test(l))).toHaveLength(1);
    expect(lines.filter((l) => /^Broker\s+shop\s/.test(l))).toHaveLength(1);
    expect((await plugin("status", "-n", "default")).out).toContain("No Agents or Brokers found.");

    const agent = /^Agent\s+shop\s+(\S+)/m.exec(all.out)?.[1] ?? "";
    const up = await plugin("upstreams", agent, "-n", "shop");
    expect(up.code, up.out).toBe(1);
    expect(up.out).toContain(`Agent shop/${agent} has no running pod`);
    expect((await plugin("upstreams", "nope", "-n", "shop")).out).toContain("no Agent or Broker shop/nope");
    const usage = await plugin("bogus");
    expect(usage.code).toBe(2);
    expect(usage.out).toContain("Usage: kubectl tether");
  });
});
