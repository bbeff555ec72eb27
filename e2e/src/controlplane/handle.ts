import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Watchdog } from "./cleanup.ts";
import { ControlPlaneError } from "./errors.ts";
import { runKubectl, type KubectlOptions, type KubectlResult } from "./kubectl.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { optionsError } from "./options.ts";
import { stopComponents, type Component, type ComponentExit } from "./supervise.ts";

/** Process ids of a running control plane (each component leads its own process group). */
export interface ControlPlanePids {
  readonly etcd: number;
  readonly apiserver: number;
  readonly controllerManager?: number;
  readonly watchdog: number;
}

/** A running control plane, as startControlPlane() returns it. */
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

/** State of one start attempt, shared with the failure path. */
export interface Run {
  readonly dir: string;
  readonly binDir: string;
  readonly watchdog: Watchdog;
  readonly components: Component[];
  readonly deadline: number;
}

const STOP_GRACE_MS = 5_000;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The handle of a started control plane. */
export function makeHandle(
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
