import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBinaries, startControlPlane, type ControlPlane } from "../src/controlplane/index.ts";
import { isRunning } from "../src/controlplane/supervise.ts";

const versions = readFileSync(join(import.meta.dirname, "..", "k8s", "versions.env"), "utf8");
const KUBERNETES_VERSION = /^KUBERNETES_VERSION=(\S+)$/m.exec(versions)?.[1];
const INDEX = join(import.meta.dirname, "..", "src", "controlplane", "index.ts");

let binDir = "";
beforeAll(async () => {
  // Cached after the first build; a cold build compiles Kubernetes (tens of minutes).
  binDir = await ensureBinaries();
}, 60 * 60_000);

/** Waits until `condition` holds, polling every 50 ms; false at the deadline. */
async function eventually(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** Pids of running processes whose command line mentions `text` (e.g. a control plane's directory). */
function processesMentioning(text: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text);
      } catch {
        return false;
      }
    })
    .map(Number)
    .filter((pid) => pid !== process.pid && isRunning(pid));
}

function allPids(cp: Pick<ControlPlane, "pids">): number[] {
  const { etcd, apiserver, controllerManager, watchdog } = cp.pids;
  return [etcd, apiserver, watchdog, ...(controllerManager === undefined ? [] : [controllerManager])];
}

describe("control plane", () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({ binDir });
  });
  afterAll(async () => {
    await cp.stop();
  });

  it("serves the pinned Kubernetes version on loopback", async () => {
    expect(cp.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const result = await cp.kubectl(["version", "-o", "json"]);
    expect(result.code, result.stderr).toBe(0);
    const version = JSON.parse(result.stdout) as { serverVersion: { gitVersion: string } };
    expect(KUBERNETES_VERSION).toBe("v1.36.3");
    expect(version.serverVersion.gitVersion).toBe(KUBERNETES_VERSION);
  });

  it("accepts objects as soon as it is started", async () => {
    const result = await cp.kubectl(["create", "configmap", "first", "--from-literal=a=b"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("configmap/first created");
  });

  it("authorizes with RBAC: a ServiceAccount without rights may not list secrets", async () => {
    const created = await cp.kubectl(["create", "serviceaccount", "nobody", "-n", "default"]);
    expect(created.code, created.stderr).toBe(0);
    const kubeconfig = await cp.kubeconfigForServiceAccount("default", "nobody");

    const whoami = await cp.kubectl(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], {
      kubeconfig,
    });
    expect(whoami.code, whoami.stderr).toBe(0);
    expect(whoami.stdout).toBe("system:serviceaccount:default:nobody");

    const denied = await cp.kubectl(["get", "secrets", "-n", "default"], { kubeconfig });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/forbidden/i);
    expect(denied.stderr).toContain('cannot list resource "secrets"');

    const admin = await cp.kubectl(["get", "secrets", "-n", "default"]);
    expect(admin.code, admin.stderr).toBe(0);
  });

  it("names the bad argument of kubeconfigForServiceAccount", async () => {
    await expect(cp.kubeconfigForServiceAccount("Not_A_Namespace", "x")).rejects.toMatchObject({
      code: "TETHER_ERR_CONTROL_PLANE_OPTIONS",
      message: expect.stringContaining("namespace") as unknown,
    });
    await expect(cp.kubeconfigForServiceAccount("default", "missing")).rejects.toMatchObject({
      code: "TETHER_ERR_CONTROL_PLANE_KUBECTL",
    });
  });

  it("stop() leaves no process and no directory behind", async () => {
    const pids = allPids(cp);
    for (const pid of pids) expect(isRunning(pid), `pid ${pid} before stop`).toBe(true);
    await cp.stop();
    expect(await eventually(() => pids.every((pid) => !isRunning(pid)), 5_000)).toBe(true);
    // Our own children are reaped, not merely dead.
    for (const pid of [cp.pids.etcd, cp.pids.apiserver]) expect(() => process.kill(pid, 0)).toThrow();
    expect(existsSync(cp.dir)).toBe(false);
    await cp.stop(); // idempotent
  });
});

describe("a control plane that cannot start", () => {
  it("rejects bad options naming the field, before starting anything", async () => {
    await expect(startControlPlane({ binDir, startTimeoutMs: -1 })).rejects.toMatchObject({
      code: "TETHER_ERR_CONTROL_PLANE_OPTIONS",
      message: expect.stringContaining("options.startTimeoutMs") as unknown,
    });
    await expect(startControlPlane({ binDir, apiServerArgs: ["feature-gates=x"] })).rejects.toMatchObject({
      code: "TETHER_ERR_CONTROL_PLANE_OPTIONS",
      message: expect.stringContaining("options.apiServerArgs[0]") as unknown,
    });
    await expect(startControlPlane({ binDir: tmpdir() })).rejects.toMatchObject({
      code: "TETHER_ERR_CONTROL_PLANE_OPTIONS",
      message: expect.stringContaining("options.binDir") as unknown,
    });
  });

  it("fails fast with the component's log, and leaves nothing behind", async () => {
    const dir = join(tmpdir(), `tether-cp-fail-${process.pid}`);
    const started = Date.now();
    const failure = startControlPlane({ binDir, dir, apiServerArgs: ["--no-such-flag=1"] });
    await expect(failure).rejects.toMatchObject({ code: "TETHER_ERR_CONTROL_PLANE_START" });
    await expect(failure).rejects.toThrow(/kube-apiserver exited early[\s\S]*unknown flag: --no-such-flag/);
    // It noticed the exit rather than waiting for the start deadline (120 s).
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(existsSync(dir)).toBe(false);
    expect(await eventually(() => processesMentioning(dir).length === 0, 5_000)).toBe(true);
  });
});

describe("control plane with kube-controller-manager", () => {
  it("garbage-collects an object whose owner is deleted", async () => {
    const cp = await startControlPlane({ binDir, controllers: true });
    try {
      expect(cp.pids.controllerManager).toBeGreaterThan(0);
      const owner = await cp.kubectl(["create", "configmap", "owner", "-o", "jsonpath={.metadata.uid}"]);
      expect(owner.code, owner.stderr).toBe(0);
      const dependent = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: {
          name: "dependent",
          namespace: "default",
          ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.stdout }],
        },
      };
      const applied = await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(dependent) });
      expect(applied.code, applied.stderr).toBe(0);
      expect((await cp.kubectl(["delete", "configmap", "owner"])).code).toBe(0);
      const gone = await cp.kubectl(["wait", "--for=delete", "configmap/dependent", "--timeout=60s"]);
      expect(gone.code, gone.stderr).toBe(0);
    } finally {
      await cp.stop();
    }
    expect(allPids(cp).some((pid) => isRunning(pid))).toBe(false);
  });
});

describe("no orphans when the owning process dies", () => {
  // A separate node process starts a control plane, reports it, and is then killed.
  const owner = `
    import { startControlPlane } from ${JSON.stringify(INDEX)};
    const cp = await startControlPlane({ binDir: process.argv[1] });
    console.log(JSON.stringify({ pids: cp.pids, dir: cp.dir }));
    setInterval(() => {}, 1000);
  `;

  for (const signal of ["SIGKILL", "SIGINT"] as const) {
    it(`kills the components and removes the directory on ${signal}`, async () => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", owner, binDir], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const exited = new Promise((resolve) => child.once("exit", resolve));
      try {
        const report = await new Promise<string>((resolve, reject) => {
          let out = "";
          child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
            out += chunk;
            if (out.includes("\n")) resolve(out);
          });
          child.once("exit", (code) => {
            reject(new Error(`owner exited with ${code} before reporting: ${out}`));
          });
        });
        const started = JSON.parse(report) as Pick<ControlPlane, "pids" | "dir">;
        expect(allPids(started).every((pid) => isRunning(pid))).toBe(true);
        child.kill(signal);
        await exited;
        expect(await eventually(() => allPids(started).every((pid) => !isRunning(pid)), 10_000)).toBe(true);
        expect(await eventually(() => !existsSync(started.dir), 10_000)).toBe(true);
      } finally {
        child.kill("SIGKILL");
      }
    });
  }
});
