/**
 * The operator as a real child process: `node operator/bin/tether-operator.js` (the built dist),
 * its JSON logs captured, its admin port read from the first log line.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { waitFor } from "./wait.ts";

export const REPO_ROOT = join(import.meta.dirname, "..", "..", "..");

/** Builds operator/dist so the bin runs the code under test. */
export function buildOperator(): void {
  execFileSync(
    process.execPath,
    [join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-b", "operator"],
    {
      cwd: REPO_ROOT,
      stdio: "pipe",
    },
  );
}

/** Builds sidecar/dist and its bundle (what the bin runs), for `tether-sidecar --mode validate` on rendered configs. */
export function buildSidecar(): void {
  execFileSync(
    process.execPath,
    [join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-b", "sidecar"],
    {
      cwd: REPO_ROOT,
      stdio: "pipe",
    },
  );
  execFileSync(process.execPath, [join(REPO_ROOT, "sidecar", "scripts", "bundle.ts")], {
    cwd: REPO_ROOT,
    stdio: "pipe",
  });
}

/** Runs the real sidecar's validation on a config file; resolves with its exit code and output. */
export function validateWithSidecar(configPath: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(REPO_ROOT, "sidecar", "bin", "tether-sidecar.js"), "--config", configPath, "--mode", "validate"],
      { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export interface OperatorOptions {
  readonly kubeconfig: string;
  readonly args?: readonly string[];
  readonly env?: Record<string, string>;
}

export class OperatorProcess {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  private output = "";
  adminUrl = "";
  /** host:port of the operator's xDS server ("" when it runs without one). */
  xdsAddress = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(child: ChildProcess) {
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        resolve({ code, signal });
      });
    });
    const onData = (chunk: Buffer): void => {
      this.output += chunk.toString("utf8");
      let nl = this.output.indexOf("\n");
      while (nl >= 0) {
        const line = this.output.slice(0, nl);
        this.output = this.output.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ msg: line });
        }
        nl = this.output.indexOf("\n");
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  }

  static async start(options: OperatorOptions): Promise<OperatorProcess> {
    const child = spawn(
      process.execPath,
      [
        join(REPO_ROOT, "operator", "bin", "tether-operator.js"),
        "--admin-address",
        "127.0.0.1:0",
        // Several operators run side by side in tests: a free port each.
        "--xds-address",
        "127.0.0.1:0",
        ...(options.args ?? []),
      ],
      {
        cwd: REPO_ROOT,
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", KUBECONFIG: options.kubeconfig, ...options.env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const op = new OperatorProcess(child);
    const start = await waitFor(
      "the operator's start log line",
      () => op.lines.find((l) => l["msg"] === "tether-operator starting"),
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    op.adminUrl = `http://${String(start["admin"])}`;
    op.xdsAddress = start["xds"] === "off" ? "" : String(start["xds"]);
    return op;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async metrics(): Promise<string> {
    const res = await fetch(`${this.adminUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return res.text();
  }

  /** Sum of a metric's samples whose labels include all of `labels`. */
  async metric(
    name: string,
    labels: Record<string, string> = {},
    exclude: Record<string, string> = {},
  ): Promise<number> {
    const text = await this.metrics();
    let sum = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-z_]+)(\{([^}]*)\})? (.+)$/.exec(line);
      if (m === null || m[1] !== name) continue;
      const sampleLabels = Object.fromEntries(
        [...(m[3] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1] ?? "", x[2] ?? ""]),
      );
      if (Object.entries(labels).some(([k, v]) => sampleLabels[k] !== v)) continue;
      if (Object.entries(exclude).some(([k, v]) => sampleLabels[k] === v)) continue;
      sum += Number(m[4]);
    }
    return sum;
  }

  /** Writes to anything but Leases (lease renewals are the election itself). */
  writes(): Promise<number> {
    return this.metric("tether_operator_api_writes_total", {}, { resource: "leases" });
  }

  reconciles(): Promise<number> {
    return this.metric("tether_operator_reconcile_total");
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.alive) this.child.kill(signal);
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  logText(): string {
    return this.lines.map((l) => JSON.stringify(l)).join("\n");
  }
}
