// Child processes for the benchmark: spawned (optionally pinned with taskset), waited for with a
// deadline, and always killed — on success, failure or Ctrl-C.
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import net from "node:net";

export class BenchError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = "BenchError";
  }
}

/** Niceness of the measured processes (negative: ahead of ordinary work). */
export const MEASURED_NICENESS = -15;

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});
// Measured children run in their own sessions, so Ctrl-C does not reach them: end them here.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping every process it started\n`);
    process.exit(130);
  });
}

export interface ProcOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** `taskset -c` CPU list, e.g. "0". */
  readonly cpus?: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** A spawned child whose output tail is kept for error messages. */
export class Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private tail = "";
  private done = false;
  private readonly stdoutListeners = new Set<(text: string) => void>();

  constructor(options: ProcOptions) {
    this.name = options.name;
    // Pinned processes are the ones measured: they also get a higher priority, so unrelated work on
    // a shared machine disturbs them less. With autogroup scheduling (Linux's default for desktop
    // and many VM kernels) nice only ranks processes within one session, so each measured process
    // gets its own session (setsid) and that session's autogroup is given the niceness too.
    const pinned = options.cpus !== undefined;
    const [command, args] = pinned
      ? [
          "taskset",
          [
            "-c",
            options.cpus ?? "0",
            "nice",
            "-n",
            String(MEASURED_NICENESS),
            options.command,
            ...options.args,
          ],
        ]
      : [options.command, options.args];
    this.child = spawn(command, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: pinned,
    });
    if (pinned && this.child.pid !== undefined) raiseAutogroup(this.child.pid);
    live.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.done = true;
        live.delete(this.child);
        resolve({ code, signal });
      });
      this.child.once("error", (error) => {
        this.done = true;
        live.delete(this.child);
        this.keep(`spawn failed: ${error.message}\n`);
        resolve({ code: null, signal: null });
      });
    });
    this.child.stdout?.setEncoding("utf8");
    this.child.stderr?.setEncoding("utf8");
    this.child.stdout?.on("data", (text: string) => {
      this.keep(text);
      for (const listener of this.stdoutListeners) listener(text);
    });
    this.child.stderr?.on("data", (text: string) => {
      this.keep(text);
    });
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined)
      throw new BenchError("TETHER_ERR_BENCH_SPAWN", `${this.name}: no pid\n${this.tail}`);
    return pid;
  }

  get running(): boolean {
    return !this.done;
  }

  output(): string {
    return this.tail;
  }

  /** All of stdout until the process exits (for short-lived tools like wrk). */
  async collectStdout(): Promise<string> {
    let text = "";
    const listener = (chunk: string): void => {
      text += chunk;
    };
    this.stdoutListeners.add(listener);
    await this.exited;
    this.stdoutListeners.delete(listener);
    return text;
  }

  /** Resolves with the first stdout line `match` accepts; rejects at the deadline or on exit. */
  async waitForStdoutLine<T>(match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let pending = "";
      const finish = (error: Error | null, value?: T): void => {
        clearTimeout(timer);
        this.stdoutListeners.delete(listener);
        if (error) reject(error);
        else resolve(value as T);
      };
      const listener = (chunk: string): void => {
        pending += chunk;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) {
          const value = match(line);
          if (value !== undefined) {
            finish(null, value);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        finish(
          new BenchError(
            "TETHER_ERR_BENCH_NOT_READY",
            `${this.name}: not ready in ${timeoutMs} ms\n${this.tail}`,
          ),
        );
      }, timeoutMs);
      this.stdoutListeners.add(listener);
      void this.exited.then(() => {
        if (this.stdoutListeners.has(listener)) {
          finish(
            new BenchError(
              "TETHER_ERR_BENCH_EXITED",
              `${this.name} exited before it was ready\n${this.tail}`,
            ),
          );
        }
      });
    });
  }

  async kill(): Promise<void> {
    if (this.done) return;
    this.child.kill("SIGKILL");
    await this.exited;
  }

  async stop(graceMs = 3000): Promise<void> {
    if (this.done) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private keep(text: string): void {
    this.tail = (this.tail + text).slice(-8192);
  }
}

/** Best effort: needs root and a kernel with autogroup; otherwise the process keeps its priority. */
function raiseAutogroup(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(MEASURED_NICENESS));
  } catch {
    // not root, or no autogroup: plain nice still applies
  }
}

async function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 500);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Resolves once `host:port` accepts connections; rejects at the deadline or if `proc` exits. */
export async function waitForPort(host: string, port: number, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (proc && !proc.running) {
      throw new BenchError(
        "TETHER_ERR_BENCH_EXITED",
        `${proc.name} exited during start-up\n${proc.output()}`,
      );
    }
    if (await canConnect(host, port)) return;
    await pause(25);
  }
  throw new BenchError(
    "TETHER_ERR_BENCH_NOT_READY",
    `${proc?.name ?? "server"}: ${host}:${port} not accepting within ${timeoutMs} ms\n${proc?.output() ?? ""}`,
  );
}

/** The commands of `tools` that are not on PATH. */
export function missingTools(tools: readonly string[]): string[] {
  return tools.filter((tool) => {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
}

/** One poll interval of a deadline-bounded wait. */
export async function pause(ms: number): Promise<void> {
  await new Promise<void>((resolve) => setTimeout(resolve, ms));
}

/** A port the kernel says is free now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

/** Runs a benchmark's main and exits: 0 when it finished, 1 with the reason on stderr when it failed. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
