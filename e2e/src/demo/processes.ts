// Child processes for demos and tests: spawn, wait until ready (with a deadline), SIGKILL,
// restart. Every child started here is killed when this process exits, however it exits.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { PolicyProtocol } from "./policy-server.ts";

export class ProcessError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = "ProcessError";
  }
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ChildOptions {
  /** A short label for errors and logs. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Pin the child to these CPUs with `taskset -c` (e.g. "0"). */
  readonly cpus?: string;
  /** How many characters of stdout+stderr to keep for error messages. Default 16 KiB. */
  readonly keepOutputChars?: number;
  /** "pipe" keeps the child's stdin open for `write`/`endInput`; default "ignore" (/dev/null). */
  readonly stdin?: "ignore" | "pipe";
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

/** A running child process with its output tail kept for diagnostics. */
export class ChildHandle {
  readonly name: string;
  readonly process: ChildProcess;
  readonly exited: Promise<ExitStatus>;
  private outputTail = "";
  private readonly keepChars: number;
  private readonly lineListeners = new Set<(line: string) => void>();
  private exitStatus: ExitStatus | null = null;

  constructor(options: ChildOptions) {
    installExitHook();
    this.name = options.name;
    this.keepChars = options.keepOutputChars ?? 16_384;
    const [command, args] =
      options.cpus === undefined
        ? [options.command, options.args]
        : ["taskset", ["-c", options.cpus, options.command, ...options.args]];
    this.process = spawn(command, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.stdin ?? "ignore", "pipe", "pipe"],
    });
    live.add(this.process);
    // A child that exited closes its stdin pipe: EPIPE on a late write is not this process's failure.
    this.process.stdin?.on("error", () => undefined);
    this.exited = new Promise((resolve) => {
      this.process.once("exit", (code, signal) => {
        live.delete(this.process);
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
      this.process.once("error", (error) => {
        live.delete(this.process);
        this.keep(`spawn failed: ${error.message}\n`);
        this.exitStatus = { code: null, signal: null };
        resolve(this.exitStatus);
      });
    });
    for (const stream of [this.process.stdout, this.process.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
        this.keep(line + "\n");
        for (const listener of this.lineListeners) listener(line);
      });
    }
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get running(): boolean {
    return this.exitStatus === null;
  }

  /** The last output lines (stdout and stderr interleaved), for error messages. */
  output(): string {
    return this.outputTail;
  }

  /**
   * Resolves with the first output line for which `match` returns a value, or rejects when the
   * deadline passes or the child exits first — with the child's output in the message.
   */
  async waitForLine<T>(match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.lineListeners.delete(listener);
      };
      const listener = (line: string): void => {
        const value = match(line);
        if (value === undefined) return;
        cleanup();
        resolve(value);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new ProcessError(
            "TETHER_ERR_CHILD_NOT_READY",
            `${this.name}: not ready within ${timeoutMs} ms\n${this.output()}`,
          ),
        );
      }, timeoutMs);
      this.lineListeners.add(listener);
      void this.exited.then((status) => {
        if (!this.lineListeners.has(listener)) return;
        cleanup();
        reject(
          new ProcessError(
            "TETHER_ERR_CHILD_EXITED",
            `${this.name}: exited (code ${status.code ?? "-"}, signal ${status.signal ?? "-"}) before it was ready\n${this.output()}`,
          ),
        );
      });
    });
  }

  /** Writes to the child's stdin (started with `stdin: "pipe"`); false when it is closed. */
  write(text: string): boolean {
    const stdin = this.process.stdin;
    if (stdin === null || stdin.destroyed || stdin.writableEnded) return false;
    return stdin.write(text);
  }

  /** Ends the child's stdin (EOF), if it was piped. */
  endInput(): void {
    const stdin = this.process.stdin;
    if (stdin !== null && !stdin.writableEnded) stdin.end();
  }

  /** Sends SIGKILL and resolves once the child is gone. */
  async kill(): Promise<ExitStatus> {
    if (this.exitStatus) return this.exitStatus;
    this.process.kill("SIGKILL");
    return this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 3000): Promise<ExitStatus> {
    if (this.exitStatus) return this.exitStatus;
    this.process.kill("SIGTERM");
    const timer = setTimeout(() => this.process.kill("SIGKILL"), graceMs);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }

  private keep(text: string): void {
    this.outputTail = (this.outputTail + text).slice(-this.keepChars);
  }
}

/** Path of the policy server script next to this module (.ts from src, .js from dist). */
export function policyServerScript(): string {
  const extension = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  return new URL(`./policy-server${extension}`, import.meta.url).pathname;
}

export interface PolicyServerSpec {
  readonly name: string;
  /** 0 picks a free port on the first start; restarts reuse the port it got. */
  readonly port: number;
  readonly host?: string;
  readonly protocol?: PolicyProtocol;
  readonly cpus?: string;
  readonly extraArgs?: readonly string[];
  /** Deadline for "listening". Default 10 s. */
  readonly readyTimeoutMs?: number;
}

export interface ListeningEvent {
  readonly server: string;
  readonly protocol: PolicyProtocol;
  readonly host: string;
  readonly port: number;
  readonly instance: string;
  readonly pid: number;
  /** `performance.now()` in this process when the listening line arrived. */
  readonly at: number;
}

/** A demo policy server run as a child process that can be killed and restarted. */
export class PolicyServerProcess {
  readonly spec: PolicyServerSpec;
  private child: ChildHandle | null = null;
  private lastListening: ListeningEvent | null = null;
  private port: number;

  constructor(spec: PolicyServerSpec) {
    this.spec = spec;
    this.port = spec.port;
  }

  get name(): string {
    return this.spec.name;
  }

  /** The last "listening" event; throws if the server was never started. */
  get listening(): ListeningEvent {
    if (!this.lastListening)
      throw new ProcessError("TETHER_ERR_CHILD_NOT_STARTED", `${this.name}: never started`);
    return this.lastListening;
  }

  get running(): boolean {
    return this.child?.running ?? false;
  }

  get handle(): ChildHandle | null {
    return this.child;
  }

  /** Starts the server (if not running) and resolves once it listens. */
  async start(): Promise<ListeningEvent> {
    if (this.child?.running && this.lastListening) return this.lastListening;
    const args = [
      policyServerScript(),
      "--port",
      String(this.port),
      "--name",
      this.spec.name,
      "--host",
      this.spec.host ?? "127.0.0.1",
      "--protocol",
      this.spec.protocol ?? "http",
      ...(this.spec.extraArgs ?? []),
    ];
    const child = new ChildHandle({
      name: `policy server ${this.spec.name}`,
      command: process.execPath,
      args,
      ...(this.spec.cpus === undefined ? {} : { cpus: this.spec.cpus }),
    });
    this.child = child;
    const event = await child.waitForLine((line) => parseListening(line), this.spec.readyTimeoutMs ?? 10_000);
    this.port = event.port;
    this.lastListening = event;
    return event;
  }

  /** SIGKILL: the server vanishes without closing anything, like a crashed process. */
  async kill(): Promise<void> {
    await this.child?.kill();
  }

  /** Kills the server if it runs, starts it again on the same port. */
  async restart(): Promise<ListeningEvent> {
    await this.kill();
    return this.start();
  }

  /** Graceful stop (SIGTERM, then SIGKILL after `graceMs`). */
  async stop(graceMs?: number): Promise<void> {
    await this.child?.stop(graceMs);
  }
}

function parseListening(line: string): ListeningEvent | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const parsed = JSON.parse(line) as Partial<Omit<ListeningEvent, "at">> & { event?: string };
    if (parsed.event !== "listening" || typeof parsed.port !== "number") return undefined;
    return {
      server: parsed.server ?? "",
      protocol: parsed.protocol ?? "http",
      host: parsed.host ?? "127.0.0.1",
      port: parsed.port,
      instance: parsed.instance ?? "",
      pid: parsed.pid ?? 0,
      at: performance.now(),
    };
  } catch {
    return undefined;
  }
}

/** Starts several policy servers in parallel; kills the started ones if any fails. */
export async function startPolicyServers(specs: readonly PolicyServerSpec[]): Promise<PolicyServerProcess[]> {
  const servers = specs.map((spec) => new PolicyServerProcess(spec));
  const results = await Promise.allSettled(servers.map((server) => server.start()));
  const failure = results.find((result) => result.status === "rejected");
  if (failure) {
    await Promise.all(servers.map((server) => server.kill()));
    throw failure.reason;
  }
  return servers;
}
