import { spawn } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { ControlPlaneError } from "./errors.ts";

/** The repository root (this file is e2e/src/controlplane/binaries.ts). */
export const REPO_ROOT = join(import.meta.dirname, "..", "..", "..");
const BUILD_SCRIPT = join(REPO_ROOT, "e2e", "k8s", "build.sh");

/** Binaries a control plane needs in its bin directory. */
export const REQUIRED_BINARIES = ["etcd", "kube-apiserver", "kubectl", "kube-controller-manager"] as const;

let cached: Promise<string> | undefined;

/**
 * Runs e2e/k8s/build.sh (a no-op when the pinned versions are cached) and returns the bin directory
 * it prints on its last stdout line. A cold build compiles Kubernetes and takes many minutes, hence
 * the long default timeout; `progress` receives the script's log as it runs. The answer is memoised
 * for the life of the process.
 */
export function ensureBinaries(
  options: { timeoutMs?: number; progress?: NodeJS.WritableStream } = {},
): Promise<string> {
  cached ??= runBuild(options.timeoutMs ?? 60 * 60_000, options.progress).catch((error: unknown) => {
    cached = undefined;
    throw error;
  });
  return cached;
}

function runBuild(timeoutMs: number, progress: NodeJS.WritableStream | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    // Only what a control plane runs: other components the script may build do not delay a test.
    const child = spawn("bash", [BUILD_SCRIPT, ...REQUIRED_BINARIES], {
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      // "<binary> cached in <dir>" lines are noise on a warm run; show everything else of a build.
      const news = chunk.split("\n").filter((line) => !/^\[build-k8s\] \S+ cached in /.test(line));
      if (news.some((line) => line !== "")) progress?.write(news.join("\n"));
      stderr = (stderr + chunk).slice(-8192);
    });
    child.on("error", (error) => {
      reject(
        new ControlPlaneError(
          "TETHER_ERR_CONTROL_PLANE_BINARIES",
          `cannot run ${BUILD_SCRIPT}: ${error.message}`,
        ),
      );
    });
    child.on("close", (code, signal) => {
      const binDir = stdout.trim().split("\n").at(-1) ?? "";
      if (code === 0 && binDir !== "") {
        resolve(binDir);
        return;
      }
      const why = signal === null ? `exited with ${code}` : `was killed (${signal}, timeout ${timeoutMs} ms)`;
      reject(
        new ControlPlaneError(
          "TETHER_ERR_CONTROL_PLANE_BINARIES",
          `${BUILD_SCRIPT} ${why}; last output:\n${stderr.trimEnd().split("\n").slice(-20).join("\n")}`,
        ),
      );
    });
  });
}

/** Checks that `binDir` holds every binary a control plane runs; throws naming the missing one. */
export async function checkBinaries(binDir: string, field: string): Promise<void> {
  for (const name of REQUIRED_BINARIES) {
    try {
      await access(join(binDir, name), constants.X_OK);
    } catch {
      throw new ControlPlaneError(
        "TETHER_ERR_CONTROL_PLANE_OPTIONS",
        `${field}: ${join(binDir, name)} is missing or not executable (run e2e/k8s/build.sh)`,
      );
    }
  }
}
