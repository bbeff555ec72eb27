/** kubectl, run as a child process with the user's kubeconfig and context (as kubectl plugins do). */
import { execFile, spawn, type ChildProcess } from "node:child_process";

export interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Kubectl {
  run(args: readonly string[]): Promise<KubectlResult>;
  /** A long-running kubectl (port-forward); the caller kills it. */
  spawn(args: readonly string[]): ChildProcess;
}

/** kubectl from $KUBECTL, else the one on PATH; every call times out after `timeoutMs`. */
export function systemKubectl(env: NodeJS.ProcessEnv, timeoutMs = 30_000): Kubectl {
  const bin = env["KUBECTL"] ?? "kubectl";
  return {
    run: (args) =>
      new Promise((resolve) => {
        execFile(bin, [...args], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
          resolve({ code, stdout, stderr: stderr || (error?.message ?? "") });
        });
      }),
    spawn: (args) => spawn(bin, [...args], { stdio: ["ignore", "pipe", "pipe"] }),
  };
}
