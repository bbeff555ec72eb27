/**
 * A Kubernetes cluster reached through `kubectl` and the KUBECONFIG it is given: kind in CI, or the
 * local one-node cluster, or any cluster where the chart is installed and the images can be pulled.
 * Only what the scenarios need: apply, delete, wait, read JSON, pod restart counts, logs and `kubectl
 * exec` (the scenarios' traffic comes from a client pod inside the cluster; this process sends
 * nothing but kubectl's own requests to the API server).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { ChildHandle } from "../demo/processes.ts";

const run = promisify(execFile);

export class ClusterError extends Error {
  readonly code = "TETHER_ERR_E2E_CLUSTER";
  constructor(message: string) {
    super(`TETHER_ERR_E2E_CLUSTER: ${message}`);
    this.name = "ClusterError";
  }
}

export interface ClusterOptions {
  readonly kubeconfig: string;
  /** The kubectl binary. Default `kubectl` from PATH. */
  readonly kubectl?: string;
}

export interface PodJson {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  status?: {
    podIP?: string;
    phase?: string;
    containerStatuses?: { name: string; restartCount: number; ready: boolean; containerID?: string }[];
    initContainerStatuses?: { name: string; restartCount: number; ready: boolean }[];
  };
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** The exit code of `kubectl exec` (the command's own, when it ran). */
  readonly code: number;
}

export class Cluster {
  readonly kubeconfig: string;
  readonly kubectlBin: string;

  constructor(options: ClusterOptions) {
    this.kubeconfig = options.kubeconfig;
    this.kubectlBin = options.kubectl ?? "kubectl";
  }

  /**
   * The cluster named by TETHER_E2E_KUBECONFIG (deliberately not KUBECONFIG: a developer's current
   * cluster is never used by accident); undefined when it is not set. KUBECTL names the binary.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): Cluster | undefined {
    const kubeconfig = env["TETHER_E2E_KUBECONFIG"];
    if (kubeconfig === undefined || kubeconfig === "") return undefined;
    return new Cluster({ kubeconfig, ...(env["KUBECTL"] === undefined ? {} : { kubectl: env["KUBECTL"] }) });
  }

  /** Runs kubectl; throws a ClusterError with its stderr on a non-zero exit. */
  async kubectl(args: readonly string[], input?: string, timeoutMs = 120_000): Promise<string> {
    const child = run(this.kubectlBin, [...args], {
      env: this.env(),
      timeout: timeoutMs,
      maxBuffer: 16 << 20,
    });
    if (input !== undefined) {
      child.child.stdin?.end(input);
    }
    try {
      return (await child).stdout;
    } catch (error) {
      const e = error as { stderr?: string; message?: string };
      throw new ClusterError(`kubectl ${args.join(" ")}: ${e.stderr ?? e.message ?? String(error)}`);
    }
  }

  /** The environment kubectl runs with (this cluster's KUBECONFIG). */
  env(): NodeJS.ProcessEnv {
    return { ...process.env, KUBECONFIG: this.kubeconfig };
  }

  /**
   * `kubectl exec -n <ns> <pod> [-c <container>] -- <command…>` without stdin; resolves with the
   * output and exit code whatever the code (a command may report a failure as JSON and exit 1).
   * Throws a ClusterError only when kubectl could not run or the deadline passed.
   */
  async exec(
    namespace: string,
    pod: string,
    command: readonly string[],
    timeoutMs = 60_000,
    container?: string,
  ): Promise<ExecResult> {
    const args = [
      "exec",
      "-n",
      namespace,
      pod,
      ...(container === undefined ? [] : ["-c", container]),
      "--",
      ...command,
    ];
    try {
      const { stdout, stderr } = await run(this.kubectlBin, args, {
        env: this.env(),
        timeout: timeoutMs,
        maxBuffer: 16 << 20,
      });
      return { stdout, stderr, code: 0 };
    } catch (error) {
      const e = error as {
        code?: unknown;
        stdout?: string;
        stderr?: string;
        killed?: boolean;
        message?: string;
      };
      if (typeof e.code !== "number" || e.killed === true) {
        throw new ClusterError(`kubectl ${args.join(" ")}: ${e.stderr ?? e.message ?? String(error)}`);
      }
      return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: e.code };
    }
  }

  /**
   * Cuts a pod off the network the way a lost node does: the pod's interface on the node goes down,
   * so packets to its IP vanish and connects to it hang (nothing refuses, nothing resets). `nodeExec`
   * is the command prefix that runs a command in the node's network namespace (TETHER_E2E_NODE_EXEC:
   * `nsenter --net=/run/netns/tether-local --` on the local cluster, `docker exec <node>` on kind).
   * Resolves with the undo.
   */
  async isolatePod(
    namespace: string,
    pod: string,
    nodeExec: readonly string[],
  ): Promise<() => Promise<void>> {
    // The node-side end of the pod's veth pair: eth0's peer index, read inside the pod (node is there).
    const peer = await this.exec(namespace, pod, [
      "node",
      "-e",
      "process.stdout.write(require('fs').readFileSync('/sys/class/net/eth0/iflink','utf8'))",
    ]);
    const index = peer.stdout.trim();
    if (peer.code !== 0 || !/^\d+$/.test(index)) {
      throw new ClusterError(
        `${namespace}/${pod}: cannot read eth0's peer interface (${peer.stderr.trim()})`,
      );
    }
    const onNode = async (args: readonly string[]): Promise<string> => {
      const [command, ...rest] = nodeExec;
      if (command === undefined) throw new ClusterError("TETHER_E2E_NODE_EXEC is empty");
      try {
        return (await run(command, [...rest, ...args], { timeout: 30_000 })).stdout;
      } catch (error) {
        const e = error as { stderr?: string; message?: string };
        throw new ClusterError(
          `${[...nodeExec, ...args].join(" ")}: ${e.stderr ?? e.message ?? String(error)}`,
        );
      }
    };
    const line = (await onNode(["ip", "-o", "link", "show"]))
      .split("\n")
      .find((l) => l.startsWith(`${index}: `));
    const name = line?.split(": ")[1]?.split("@")[0];
    if (name === undefined || name === "") {
      throw new ClusterError(`${namespace}/${pod}: no interface with index ${index} on the node`);
    }
    await onNode(["ip", "link", "set", "dev", name, "down"]);
    return async () => {
      await onNode(["ip", "link", "set", "dev", name, "up"]);
    };
  }

  /**
   * SIGKILLs a pod's container from the node, as a crash does: its processes die at once, the kernel
   * closes their sockets (no graceful shutdown runs), and the kubelet restarts the container in the
   * same pod. Finds the processes by the container's ID in their cgroup path (both cgroup drivers
   * put it there); `nodeExec` as for isolatePod (the node's PID namespace: the local cluster's is the
   * host's, kind's is the node container's). Resolves with the PIDs killed.
   */
  async killContainer(
    namespace: string,
    pod: string,
    container: string,
    nodeExec: readonly string[],
  ): Promise<string[]> {
    const json = JSON.parse(
      await this.kubectl(["get", "pod", "-n", namespace, pod, "-o", "json"]),
    ) as PodJson;
    const status = json.status?.containerStatuses?.find((c) => c.name === container);
    const id = status?.containerID?.split("://")[1] ?? "";
    if (!/^[0-9a-f]{16,}$/.test(id)) {
      throw new ClusterError(`${namespace}/${pod}: container ${container} has no running container ID`);
    }
    const [command, ...rest] = nodeExec;
    if (command === undefined) throw new ClusterError("TETHER_E2E_NODE_EXEC is empty");
    const script =
      'for f in /proc/[0-9]*/cgroup; do if grep -q "$0" "$f" 2>/dev/null; then p=${f#/proc/}; p=${p%/cgroup}; kill -9 "$p" 2>/dev/null && echo "$p"; fi; done';
    let stdout: string;
    try {
      stdout = (await run(command, [...rest, "sh", "-c", script, id], { timeout: 30_000 })).stdout;
    } catch (error) {
      const e = error as { stderr?: string; message?: string };
      throw new ClusterError(
        `kill ${namespace}/${pod} ${container}: ${e.stderr ?? e.message ?? String(error)}`,
      );
    }
    const pids = stdout.split("\n").filter((l) => l.trim() !== "");
    if (pids.length === 0)
      throw new ClusterError(`${namespace}/${pod}: no process of container ${id} on the node`);
    return pids;
  }

  /** A long-running kubectl (e.g. `exec -i`) as a child process; `stdin: "pipe"` keeps its input open. */
  spawn(name: string, args: readonly string[], stdin: "ignore" | "pipe" = "ignore"): ChildHandle {
    return new ChildHandle({ name, command: this.kubectlBin, args, env: this.env(), stdin });
  }

  /** The logs of a pod's (only) container. */
  async logs(namespace: string, pod: string): Promise<string> {
    return this.kubectl(["logs", "-n", namespace, pod]);
  }

  async apply(namespace: string, manifest: string): Promise<void> {
    await this.kubectl(["apply", "-n", namespace, "-f", "-"], manifest);
  }

  async createNamespace(name: string): Promise<void> {
    await this.kubectl(["create", "namespace", name]);
  }

  async deleteNamespace(name: string): Promise<void> {
    await this.kubectl(["delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=120s"]);
  }

  /**
   * `kubectl wait` with a deadline, e.g. wait(ns, "deployment/web", "condition=Available"). A
   * condition is waited for only once the object exists (`--for=create` first, within the same
   * deadline): what the operator creates from a resource just applied may not be there yet, and
   * `kubectl wait` on a missing object fails at once.
   */
  async wait(namespace: string, target: string, condition: string, timeoutSeconds = 180): Promise<void> {
    const deadline = performance.now() + timeoutSeconds * 1000;
    const waitFor = async (what: string, seconds: number): Promise<void> => {
      await this.kubectl(
        ["wait", "-n", namespace, target, `--for=${what}`, `--timeout=${seconds}s`],
        undefined,
        (seconds + 10) * 1000,
      );
    };
    if (condition !== "delete" && condition !== "create") await waitFor("create", timeoutSeconds);
    await waitFor(condition, Math.max(1, Math.ceil((deadline - performance.now()) / 1000)));
  }

  async rolloutStatus(namespace: string, deployment: string, timeoutSeconds = 180): Promise<void> {
    await this.kubectl(
      ["rollout", "status", "-n", namespace, `deployment/${deployment}`, `--timeout=${timeoutSeconds}s`],
      undefined,
      (timeoutSeconds + 10) * 1000,
    );
  }

  async pods(namespace: string, selector: string): Promise<PodJson[]> {
    const out = await this.kubectl(["get", "pods", "-n", namespace, "-l", selector, "-o", "json"]);
    return (JSON.parse(out) as { items: PodJson[] }).items;
  }

  /** Sum of the restart counts of the selected pods' containers (by container name). */
  async restarts(namespace: string, selector: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const pod of await this.pods(namespace, selector)) {
      // A native sidecar (init container, restartPolicy Always) reports under initContainerStatuses.
      for (const c of [
        ...(pod.status?.initContainerStatuses ?? []),
        ...(pod.status?.containerStatuses ?? []),
      ])
        counts[c.name] = (counts[c.name] ?? 0) + c.restartCount;
    }
    return counts;
  }

  /** Deletes the named pods at once (grace 0 with `force`: a crash rather than a shutdown). */
  async deletePods(namespace: string, names: readonly string[], force = false): Promise<void> {
    await this.kubectl([
      "delete",
      "pod",
      "-n",
      namespace,
      ...names,
      "--wait=false",
      ...(force ? ["--grace-period=0", "--force"] : []),
    ]);
  }

  /**
   * Waits until `count` selected pods — none of them named in `replaced` — have every container
   * ready: the replacements of deleted pods are serving. Polls the pods (every 500 ms) until the
   * deadline.
   */
  async waitReplaced(
    namespace: string,
    selector: string,
    count: number,
    replaced: readonly string[],
    timeoutMs = 180_000,
  ): Promise<string[]> {
    const deadline = performance.now() + timeoutMs;
    let seen: string[];
    for (;;) {
      const pods = await this.pods(namespace, selector);
      seen = pods
        .filter((p) => !replaced.includes(p.metadata.name))
        .filter((p) => {
          const statuses = p.status?.containerStatuses ?? [];
          return statuses.length > 0 && statuses.every((c) => c.ready);
        })
        .map((p) => p.metadata.name);
      if (seen.length >= count) return seen;
      if (performance.now() > deadline) break;
      await new Promise<void>((resolve) => setTimeout(resolve, 500));
    }
    throw new ClusterError(
      `${namespace}: ${count} ready pods (${selector}) replacing ${replaced.join(", ")} not seen within ${timeoutMs} ms; ready: ${seen.join(", ")}`,
    );
  }

  /** Waits until the named object is gone (`kubectl wait --for=delete`). */
  async waitDeleted(namespace: string, target: string, timeoutSeconds = 120): Promise<void> {
    try {
      await this.wait(namespace, target, "delete", timeoutSeconds);
    } catch (error) {
      // Already gone before the wait began: some kubectl versions report that as an error.
      if (error instanceof ClusterError && /not ?found/i.test(error.message)) return;
      throw error;
    }
  }
}
