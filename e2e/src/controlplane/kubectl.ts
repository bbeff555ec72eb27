import { spawn } from "node:child_process";

/** Options of one kubectl run. */
export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  readonly input?: string;
  /** Run as someone else: another kubeconfig (e.g. from kubeconfigForServiceAccount). */
  readonly kubeconfig?: string;
  /** Kill kubectl after this long; default 60 s. */
  readonly timeoutMs?: number;
}

/** What kubectl did: exit code (null when killed), and its output. */
export interface KubectlResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `kubectl` with KUBECONFIG set to `kubeconfig` and its discovery cache in `cacheDir` (not the
 * developer's ~/.kube); never rejects for a non-zero exit.
 */
export function runKubectl(
  binary: string,
  kubeconfig: string,
  cacheDir: string,
  args: readonly string[],
  options: KubectlOptions = {},
): Promise<KubectlResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? "/",
        KUBECONFIG: kubeconfig,
        KUBECACHEDIR: cacheDir,
      },
      stdio: ["pipe", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal === "SIGKILL" && code === null) stderr += `\n(kubectl killed after ${timeoutMs} ms)`;
      resolve({ code, stdout, stderr });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}
