import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** How a component process ended. */
export interface ComponentExit {
  readonly name: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One running component (etcd, kube-apiserver, ...), leader of its own process group. */
export interface Component {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves (never rejects) once the process has exited and been reaped. */
  readonly exited: Promise<ComponentExit>;
  /** True once `exited` has resolved. */
  hasExited(): boolean;
}

/**
 * Starts `binary` detached: in its own session and process group (pgid = pid), so a terminal's
 * Ctrl-C does not hit it half-way and `kill(-pid)` reaches anything it forks. stdout and stderr go
 * to `logPath`. The handle is unref'd: a forgotten control plane never keeps the process alive; the
 * exit hooks and the watchdog stop it instead.
 */
export function startComponent(
  name: string,
  binary: string,
  args: readonly string[],
  logPath: string,
): Component {
  const log = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(binary, args, { detached: true, stdio: ["ignore", log, log], env: componentEnv() });
  } finally {
    closeSync(log);
  }
  let done = false;
  const exited = new Promise<ComponentExit>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ name, code, signal });
    });
    child.once("error", () => {
      done = true;
      resolve({ name, code: null, signal: null });
    });
  });
  child.unref();
  // spawn() reports a missing binary asynchronously (pid undefined), through the 'error' event.
  return { name, pid: child.pid ?? -1, logPath, exited, hasExited: () => done };
}

// Components get a small, predictable environment: no proxies (all traffic is loopback) and no
// KUBECONFIG of the developer's leaking into kube-controller-manager.
function componentEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/" };
  if (process.env.TMPDIR !== undefined) env.TMPDIR = process.env.TMPDIR;
  return env;
}

/** Sends `signal` to the whole process group led by `pid`; false when the group is already gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * True while a process with this pid runs. A zombie does not count: once its parent is gone it waits
 * for init to reap it, which here (a VM whose init reaps lazily) can take seconds.
 */
export function isRunning(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ...": comm may hold spaces and parentheses, so split after the last ") ".
    return !stat.slice(stat.lastIndexOf(") ") + 2).startsWith("Z");
  } catch {
    // No /proc (not Linux) or the process just went: trust kill(0) unless it is gone now.
    return existsSync(`/proc/${pid}`) || !existsSync("/proc/self");
  }
}

/**
 * Stops components: SIGTERM to each group, then SIGKILL to what is left after `graceMs`, and waits
 * until every process has been reaped (bounded by a second deadline, so a stuck kill cannot hang).
 */
export async function stopComponents(components: readonly Component[], graceMs: number): Promise<void> {
  const running = components.filter((component) => !component.hasExited());
  for (const component of running) signalGroup(component.pid, "SIGTERM");
  const allExited = Promise.all(running.map((component) => component.exited));
  if (!(await settlesWithin(allExited, graceMs))) {
    for (const component of running) if (!component.hasExited()) signalGroup(component.pid, "SIGKILL");
    await settlesWithin(allExited, 10_000);
  }
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      resolve(false);
    }, ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The last `lines` lines of a log file, or a note that it could not be read. */
export async function tailLog(path: string, lines = 30): Promise<string> {
  try {
    const text = await readFile(path, "utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch (error) {
    return `(no log: ${(error as Error).message})`;
  }
}
