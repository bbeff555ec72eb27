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
import { killNow, registerEmergencyCleanup, startWatchdog, type Watchdog } from "./cleanup.ts";
import {
  apiserverArgs,
  controllerManagerArgs,
  DEFAULT_CONTROLLERS,
  etcdArgs,
  FIRST_SERVICE_IP,
} from "./components.ts";
import { ControlPlaneError } from "./errors.ts";
import { get, pollUntil, type ClientTls } from "./http.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { runKubectl, type KubectlOptions, type KubectlResult } from "./kubectl.ts";
import { freeLoopbackPorts } from "./ports.ts";
import { startComponent, stopComponents, tailLog, type Component, type ComponentExit } from "./supervise.ts";

export { ensureBinaries } from "./binaries.ts";
export { ControlPlaneError, type ControlPlaneErrorCode } from "./errors.ts";
export type { KubectlOptions, KubectlResult } from "./kubectl.ts";
export type { ComponentExit } from "./supervise.ts";
export { DEFAULT_CONTROLLERS } from "./components.ts";

export interface ControlPlaneOptions {
  /** Directory with etcd, kube-apiserver, kubectl, kube-controller-manager; default: ensureBinaries(). */
  readonly binDir?: string;
  /** Also run kube-controller-manager: true for DEFAULT_CONTROLLERS, or the controller names. Default false. */
  readonly controllers?: boolean | readonly string[];
  /** Working directory, created (must not exist or be empty) and removed by stop(); default a temp dir. */
  readonly dir?: string;
  /** Deadline for the whole start, in ms; default 120 000. */
  readonly startTimeoutMs?: number;
  /** Extra kube-apiserver flags (`--name=value`), e.g. feature gates. */
  readonly apiServerArgs?: readonly string[];
}

export interface ControlPlanePids {
  readonly etcd: number;
  readonly apiserver: number;
  readonly controllerManager?: number;
  readonly watchdog: number;
}

export interface ControlPlane {
  /** Admin kubeconfig (O=system:masters), self-contained. */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly binDir: string;
  readonly dir: string;
  readonly pids: ControlPlanePids;
  /** Resolves when the first component exits, whether by stop() or by a crash. */
  readonly exited: Promise<ComponentExit>;
  /** Runs the pinned kubectl as admin (or as `options.kubeconfig`); resolves for any exit code. */
  kubectl(args: readonly string[], options?: KubectlOptions): Promise<KubectlResult>;
  /**
   * Writes a kubeconfig that authenticates as an existing ServiceAccount with a bound token
   * (`kubectl create token`), so a client runs with exactly that account's RBAC. Returns its path.
   */
  kubeconfigForServiceAccount(
    namespace: string,
    name: string,
    options?: { durationSeconds?: number },
  ): Promise<string>;
  /** Stops every process and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

const DEFAULT_START_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 5_000;
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

interface Settings {
  readonly controllers: readonly string[];
  readonly dir: string | undefined;
  readonly startTimeoutMs: number;
  readonly apiServerArgs: readonly string[];
}

function optionsError(message: string): ControlPlaneError {
  return new ControlPlaneError("TETHER_ERR_CONTROL_PLANE_OPTIONS", message);
}

function validateOptions(options: ControlPlaneOptions): Settings {
  const { controllers = false, dir, startTimeoutMs = DEFAULT_START_TIMEOUT_MS, apiServerArgs = [] } = options;
  if (typeof controllers !== "boolean" && !Array.isArray(controllers)) {
    throw optionsError("options.controllers must be a boolean or an array of controller names");
  }
  const names = controllers === true ? DEFAULT_CONTROLLERS : controllers === false ? [] : controllers;
  names.forEach((name, i) => {
    if (typeof name !== "string" || !/^[a-z0-9*-]+$/.test(name)) {
      throw optionsError(
        `options.controllers[${i}] must be a controller name like "garbage-collector-controller"`,
      );
    }
  });
  if (dir !== undefined && (typeof dir !== "string" || dir === "")) {
    throw optionsError("options.dir must be a non-empty path");
  }
  if (typeof startTimeoutMs !== "number" || !Number.isFinite(startTimeoutMs) || startTimeoutMs <= 0) {
    throw optionsError("options.startTimeoutMs must be a positive number of milliseconds");
  }
  apiServerArgs.forEach((arg, i) => {
    if (typeof arg !== "string" || !arg.startsWith("--")) {
      throw optionsError(`options.apiServerArgs[${i}] must be a flag like "--feature-gates=..."`);
    }
  });
  return {
    controllers: names,
    dir: dir === undefined ? undefined : resolve(dir),
    startTimeoutMs,
    apiServerArgs,
  };
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

/** State of one start attempt, shared with the failure path. */
interface Run {
  readonly dir: string;
  readonly binDir: string;
  readonly watchdog: Watchdog;
  readonly components: Component[];
  readonly deadline: number;
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
    return handle(run, {
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

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function handle(
  run: Run,
  started: {
    kubeconfigPath: string;
    server: string;
    caPem: string;
    pids: ControlPlanePids;
    unregister: () => void;
  },
): ControlPlane {
  const { dir, binDir, components } = run;
  const kubectlBinary = join(binDir, "kubectl");
  const kubectl = (args: readonly string[], options: KubectlOptions = {}): Promise<KubectlResult> =>
    runKubectl(
      kubectlBinary,
      options.kubeconfig ?? started.kubeconfigPath,
      join(dir, "kube-cache"),
      args,
      options,
    );
  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    // The apiserver and controller manager first, so they do not spend their shutdown retrying etcd.
    await stopComponents(
      components.filter((component) => component.name !== "etcd"),
      STOP_GRACE_MS,
    );
    await stopComponents(
      components.filter((component) => component.name === "etcd"),
      STOP_GRACE_MS,
    );
    run.watchdog.dismiss();
    started.unregister();
    await rm(dir, { recursive: true, force: true });
  };
  return {
    kubeconfigPath: started.kubeconfigPath,
    server: started.server,
    binDir,
    dir,
    pids: started.pids,
    exited: Promise.race(components.map((component) => component.exited)),
    kubectl,
    async kubeconfigForServiceAccount(namespace, name, options = {}): Promise<string> {
      if (!DNS_LABEL.test(namespace))
        throw optionsError(`namespace: "${namespace}" is not a valid namespace name`);
      if (!DNS_SUBDOMAIN.test(name)) throw optionsError(`name: "${name}" is not a valid ServiceAccount name`);
      const durationSeconds = options.durationSeconds ?? 24 * 3600;
      if (!Number.isInteger(durationSeconds) || durationSeconds < 600) {
        throw optionsError("options.durationSeconds must be an integer of at least 600 (the API's minimum)");
      }
      const result = await kubectl([
        "create",
        "token",
        name,
        "-n",
        namespace,
        `--duration=${durationSeconds}s`,
      ]);
      const token = result.stdout.trim();
      if (result.code !== 0 || token === "") {
        throw new ControlPlaneError(
          "TETHER_ERR_CONTROL_PLANE_KUBECTL",
          `kubectl create token ${name} -n ${namespace} failed: ${result.stderr.trim()}`,
        );
      }
      await mkdir(join(dir, "serviceaccounts"), { recursive: true });
      const path = join(dir, "serviceaccounts", `${namespace}.${name}.kubeconfig`);
      await writeKubeconfig(path, started.server, started.caPem, {
        name: `system:serviceaccount:${namespace}:${name}`,
        token,
      });
      return path;
    },
    stop: () => (stopping ??= stop()),
  };
}
