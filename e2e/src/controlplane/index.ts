/**
 * A real Kubernetes control plane for tests and for running the operator locally.
 *
 * startControlPlane() runs the pinned `etcd` and `kube-apiserver` (built by e2e/k8s/build.sh, see
 * ensureBinaries()) and, with `controllers`, a minimal `kube-controller-manager`:
 *
 * - Everything lives in one directory (a fresh temp dir by default): certificates in pki/, etcd data
 *   in etcd/, component logs in logs/<component>.log, the admin kubeconfig at kubeconfig.
 * - Ports are free loopback ports; every component binds 127.0.0.1 only. etcd speaks plain HTTP on
 *   loopback; the apiserver serves TLS with a certificate from a per-run CA (made with the openssl
 *   CLI), authenticates clients by certificate (the admin is O=system:masters) and by
 *   service-account token, and authorizes with Node,RBAC as a real cluster does.
 * - start resolves only when /readyz is ok AND the default and kube-system namespaces and the RBAC
 *   bootstrap roles exist, so a test can create objects at once (and, with controllers, when the
 *   controller manager is healthy and the default ServiceAccount exists). Every wait has a deadline;
 *   a failed start throws a ControlPlaneError carrying the tail of each component's log.
 * - stop() stops the process groups (SIGTERM, then SIGKILL) and removes the directory. Nothing
 *   outlives the process that started it: exit/signal hooks and a pipe-fed watchdog (cleanup.ts)
 *   kill the components even when a test fails, is interrupted, or the process is SIGKILLed.
 *
 * Not a full cluster: there is no scheduler and no kubelet, so pods never run.
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { checkBinaries, ensureBinaries } from "./binaries.ts";
import { generateCerts, type ControlPlaneCerts } from "./certs.ts";
import { killNow, registerEmergencyCleanup, startWatchdog } from "./cleanup.ts";
import { apiserverArgs, controllerManagerArgs, etcdArgs, FIRST_SERVICE_IP } from "./components.ts";
import { ControlPlaneError } from "./errors.ts";
import { makeHandle, type ControlPlane, type Run } from "./handle.ts";
import { get, pollUntil, type ClientTls } from "./http.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { optionsError, validateOptions, type ControlPlaneOptions, type Settings } from "./options.ts";
import { freeLoopbackPorts } from "./ports.ts";
import { startComponent, stopComponents, tailLog, type Component } from "./supervise.ts";

export { ensureBinaries } from "./binaries.ts";
export { DEFAULT_CONTROLLERS } from "./components.ts";
export { ControlPlaneError, type ControlPlaneErrorCode } from "./errors.ts";
export type { ControlPlane, ControlPlanePids } from "./handle.ts";
export type { KubectlOptions, KubectlResult } from "./kubectl.ts";
export type { ControlPlaneOptions } from "./options.ts";
export type { ComponentExit } from "./supervise.ts";

const MAX_START_ATTEMPTS = 3;

/** Starts etcd + kube-apiserver (+ kube-controller-manager) and resolves once they serve. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const settings = validateOptions(options);
  const binDir = options.binDir === undefined ? await ensureBinaries() : resolve(options.binDir);
  await checkBinaries(binDir, options.binDir === undefined ? "ensureBinaries()" : "options.binDir");
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binDir, settings);
    } catch (error) {
      // Another process can take a port between our probe and the component's bind: try new ports.
      if (!(error instanceof PortTakenError) || attempt >= MAX_START_ATTEMPTS) {
        throw error instanceof PortTakenError ? error.failure : error;
      }
    }
  }
}

class PortTakenError extends Error {
  readonly failure: ControlPlaneError;

  constructor(failure: ControlPlaneError) {
    super(failure.message);
    this.failure = failure;
  }
}

async function makeDir(dir: string | undefined): Promise<string> {
  if (dir === undefined) return mkdtemp(join(tmpdir(), "tether-cp-"));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if ((await readdir(dir)).length > 0) throw optionsError(`options.dir: ${dir} is not empty`);
  return dir;
}

async function startOnce(binDir: string, settings: Settings): Promise<ControlPlane> {
  const dir = await makeDir(settings.dir);
  const watchdog = startWatchdog(dir);
  const run: Run = { dir, binDir, watchdog, components: [], deadline: Date.now() + settings.startTimeoutMs };
  const unregister = registerEmergencyCleanup(() => {
    killNow(
      run.components.map((component) => component.pid),
      watchdog,
      dir,
    );
  });
  try {
    await mkdir(join(dir, "logs"));
    const certs = await generateCerts(join(dir, "pki"), FIRST_SERVICE_IP);
    const tls: ClientTls = {
      ca: await readFile(certs.caCert, "utf8"),
      cert: await readFile(certs.adminCert, "utf8"),
      key: await readFile(certs.adminKey, "utf8"),
    };
    const [etcdClientPort = 0, etcdPeerPort = 0, apiPort = 0, kcmPort = 0] = await freeLoopbackPorts(4);
    const server = `https://127.0.0.1:${apiPort}`;

    const etcd = launch(run, "etcd", etcdArgs(dir, etcdClientPort, etcdPeerPort));
    await waitFor(run, "etcd /health", async () => {
      const res = await get(`http://127.0.0.1:${etcdClientPort}/health`, "insecure", 2_000);
      return res.status === 200 && res.body.includes('"health":"true"');
    });

    const apiserver = launch(
      run,
      "kube-apiserver",
      apiserverArgs(dir, certs, etcdClientPort, apiPort, settings.apiServerArgs),
    );
    const kubeconfigPath = join(dir, "kubeconfig");
    await writeKubeconfig(kubeconfigPath, server, tls.ca, {
      name: "tether-admin",
      clientCert: tls.cert,
      clientKey: tls.key,
    });
    await waitFor(run, "kube-apiserver ready (readyz, namespaces, RBAC bootstrap roles)", () =>
      apiserverReady(server, tls),
    );

    let controllerManager: Component | undefined;
    if (settings.controllers.length > 0) {
      controllerManager = await startControllerManager(
        run,
        certs,
        server,
        tls,
        kcmPort,
        settings.controllers,
      );
    }
    return makeHandle(run, {
      kubeconfigPath,
      server,
      caPem: tls.ca,
      pids: {
        etcd: etcd.pid,
        apiserver: apiserver.pid,
        ...(controllerManager ? { controllerManager: controllerManager.pid } : {}),
        watchdog: watchdog.pid,
      },
      unregister,
    });
  } catch (error) {
    await stopComponents([...run.components].reverse(), 0);
    const failure = await describeFailure(run, error);
    watchdog.dismiss();
    unregister();
    await rm(dir, { recursive: true, force: true });
    throw failure;
  }
}

function launch(run: Run, name: string, args: readonly string[]): Component {
  const component = startComponent(name, join(run.binDir, name), args, join(run.dir, "logs", `${name}.log`));
  run.watchdog.adopt(component.pid);
  run.components.push(component);
  return component;
}

/** Polls `check` until it holds; fails fast when a component exits, and at the run's deadline. */
async function waitFor(run: Run, what: string, check: () => Promise<boolean>): Promise<void> {
  const reason = await pollUntil(check, {
    deadline: run.deadline,
    intervalMs: 100,
    abort: () => {
      const dead = run.components.find((component) => component.hasExited());
      return dead === undefined ? undefined : `${dead.name} exited early`;
    },
  });
  if (reason === undefined) return;
  const code = reason.startsWith("timed out")
    ? "TETHER_ERR_CONTROL_PLANE_TIMEOUT"
    : "TETHER_ERR_CONTROL_PLANE_START";
  throw new ControlPlaneError(code, `waiting for ${what}: ${reason}`);
}

const READY_PATHS = [
  "/api/v1/namespaces/default",
  "/api/v1/namespaces/kube-system",
  "/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin",
  "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cluster-admin",
  "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:basic-user",
  "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:basic-user",
];

// /readyz turns ok before the bootstrap controller has created the namespaces; check those too.
async function apiserverReady(server: string, tls: ClientTls): Promise<boolean> {
  const readyz = await get(`${server}/readyz`, tls, 2_000);
  if (readyz.status !== 200) return false;
  for (const path of READY_PATHS) {
    if ((await get(`${server}${path}`, tls, 2_000)).status !== 200) return false;
  }
  return true;
}

async function startControllerManager(
  run: Run,
  certs: ControlPlaneCerts,
  server: string,
  tls: ClientTls,
  port: number,
  controllers: readonly string[],
): Promise<Component> {
  const kubeconfig = join(run.dir, "controller-manager.kubeconfig");
  await writeKubeconfig(kubeconfig, server, tls.ca, {
    name: "system:kube-controller-manager",
    clientCert: await readFile(certs.controllerManagerCert, "utf8"),
    clientKey: await readFile(certs.controllerManagerKey, "utf8"),
  });
  const component = launch(
    run,
    "kube-controller-manager",
    controllerManagerArgs(kubeconfig, certs, port, controllers),
  );
  await waitFor(run, "kube-controller-manager /healthz", async () => {
    return (await get(`https://127.0.0.1:${port}/healthz`, "insecure", 2_000)).status === 200;
  });
  if (controllers.includes("serviceaccount-controller") || controllers.includes("*")) {
    await waitFor(run, "the default ServiceAccount (serviceaccount controller)", async () => {
      return (
        (await get(`${server}/api/v1/namespaces/default/serviceaccounts/default`, tls, 2_000)).status === 200
      );
    });
  }
  return component;
}

/** The error of a failed start, with each component's log tail (read before the directory goes). */
async function describeFailure(run: Run, error: unknown): Promise<Error> {
  if (!(error instanceof ControlPlaneError) || error.code === "TETHER_ERR_CONTROL_PLANE_OPTIONS") {
    return error instanceof Error ? error : new Error(String(error));
  }
  const sections: string[] = [];
  // The component that died first is the likely culprit: its log comes first.
  const ordered = [...run.components].sort((a, b) => Number(b.hasExited()) - Number(a.hasExited()));
  for (const component of ordered) {
    const status = component.hasExited() ? await exitText(component) : "was running";
    sections.push(
      `--- ${component.name} (${status}), last log lines ---\n${await tailLog(component.logPath)}`,
    );
  }
  const logs = sections.join("\n");
  const failure = new ControlPlaneError(
    error.code,
    `control plane did not start: ${error.message}\n${logs}`,
    {
      cause: error,
    },
  );
  return /address already in use/.test(logs) ? new PortTakenError(failure) : failure;
}

async function exitText(component: Component): Promise<string> {
  const exit = await component.exited;
  return exit.signal === null ? `exited with code ${exit.code}` : `killed by ${exit.signal}`;
}
