import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import type { Writable } from "node:stream";
import { signalGroup } from "./supervise.ts";

/*
 * Two independent guards keep a control plane from outliving the process that started it.
 *
 * 1. Exit hooks (in process): on 'exit', SIGINT, SIGTERM and SIGHUP every live control plane is
 *    killed synchronously (SIGKILL to each process group) and its directory removed. This covers a
 *    failing test, process.exit() and Ctrl-C, but not a SIGKILL of our own process.
 *
 * 2. A watchdog (out of process): one small bash process per control plane, in its own session,
 *    whose stdin is a pipe (a socketpair, as libuv makes it) from us. We write the pgid of each component to it. Its `read` sees EOF
 *    only when every writer is gone, i.e. when our process has died, however it died (the kernel
 *    closes the pipe even on SIGKILL; libuv opens the pipe close-on-exec, so no component inherits
 *    the write end). On EOF it SIGKILLs the groups, waits until they are dead, removes the directory.
 *    A pipe was chosen over polling the parent pid: no interval, no pid-reuse race, instant reaction.
 *    A normal stop() dismisses the watchdog (SIGKILL; it is blocked in `read`) once the components
 *    are stopped and reaped.
 */

const WATCHDOG_SCRIPT = `
trap '' INT HUP
dir=$1
# A group leader counts as alive unless gone or a zombie (init may reap late); comm may hold spaces.
running() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=\${s##*) }; [ "\${s%% *}" != Z ]; }
groups=()
while IFS= read -r pgid; do groups+=("$pgid"); done
# The owner is gone and the data is throwaway: no graceful shutdown, which could stall on etcd.
for g in "\${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
for _ in $(seq 50); do
  alive=0
  for g in "\${groups[@]}"; do running "$g" && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
[ -n "$dir" ] && rm -rf -- "$dir"
`;

/** The out-of-process guard of one control plane. */
export interface Watchdog {
  readonly pid: number;
  /** Adds a process group to kill when our process dies. */
  adopt(pgid: number): void;
  /** Normal shutdown: the watchdog exits without touching anything. */
  dismiss(): void;
}

/** Starts a watchdog that, if this process dies, kills the adopted groups and removes `dir` (when given). */
export function startWatchdog(dir: string | undefined): Watchdog {
  const child = spawn("bash", ["-c", WATCHDOG_SCRIPT, "tether-watchdog", dir ?? ""], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
  });
  const stdin = child.stdin as Writable & { unref?: () => void };
  // An EPIPE after the watchdog was dismissed (or died) must not crash the owner.
  stdin.on("error", () => undefined);
  stdin.unref?.();
  child.unref();
  const pid = child.pid ?? -1;
  return {
    pid,
    adopt(pgid: number): void {
      if (pgid > 0) stdin.write(`${pgid}\n`);
    },
    dismiss(): void {
      signalGroup(pid, "SIGKILL");
      stdin.destroy();
    },
  };
}

type EmergencyCleanup = () => void;

const live = new Set<EmergencyCleanup>();
const SIGNALS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

function runAll(): void {
  for (const cleanup of [...live]) {
    try {
      cleanup();
    } catch {
      // Best effort: an exit hook must not throw.
    }
  }
  live.clear();
}

function onExit(): void {
  runAll();
}

function onSignal(signal: NodeJS.Signals): void {
  runAll();
  uninstall();
  // If nobody else handles this signal, behave as if we had never listened: die of it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function install(): void {
  process.on("exit", onExit);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function uninstall(): void {
  process.off("exit", onExit);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

/**
 * Registers a synchronous cleanup run if the process exits or gets SIGINT/SIGTERM/SIGHUP while the
 * control plane lives. Returns the function that unregisters it (called by a normal stop()).
 */
export function registerEmergencyCleanup(cleanup: EmergencyCleanup): () => void {
  if (live.size === 0) install();
  live.add(cleanup);
  return () => {
    live.delete(cleanup);
    if (live.size === 0) uninstall();
  };
}

/** The synchronous last resort: SIGKILL the groups, dismiss the watchdog, remove the directory. */
export function killNow(pgids: readonly number[], watchdog: Watchdog, dir: string | undefined): void {
  for (const pgid of pgids) signalGroup(pgid, "SIGKILL");
  watchdog.dismiss();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}
