/**
 * `npm run control-plane -- up|down|status`: the test control plane (index.ts) as a background
 * service for developers, e.g. to run the operator locally against a real API server.
 *
 * `up` starts a detached daemon (this file, command `serve`) that owns the control plane, waits for
 * it to report ready over IPC, and returns; the daemon outlives npm. State lives in
 * .tether/control-plane/: kubeconfig (admin), state.json (pids), control-plane.log (daemon output),
 * run/ (certificates, etcd data, component logs). `down` sends SIGTERM to the daemon, whose exit hook
 * kills the components (its watchdog does, should the daemon be SIGKILLed), then removes the directory.
 */
import { spawn } from "node:child_process";
import { copyFile, mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ensureBinaries, REPO_ROOT } from "./binaries.ts";
import { runKubectl } from "./kubectl.ts";
import { startControlPlane, type ControlPlanePids } from "./index.ts";
import { isRunning, signalGroup } from "./supervise.ts";

const STATE_DIR = join(REPO_ROOT, ".tether", "control-plane");
const RUN_DIR = join(STATE_DIR, "run");
const KUBECONFIG = join(STATE_DIR, "kubeconfig");
const STATE_FILE = join(STATE_DIR, "state.json");
const LOG_FILE = join(STATE_DIR, "control-plane.log");
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;

interface State {
  readonly daemonPid: number;
  readonly server: string;
  readonly kubeconfig: string;
  readonly binDir: string;
  readonly pids: ControlPlanePids;
  readonly controllers: boolean;
  readonly startedAt: string;
}

type DaemonMessage = { type: "ready"; state: State; startMs: number } | { type: "failed"; message: string };

const USAGE = `usage: npm run control-plane -- <command>
  up [--no-controllers]   start etcd, kube-apiserver and kube-controller-manager in the background
  down                    stop them and remove .tether/control-plane
  status                  report whether it is up (exit code 0) or not (1)`;

async function readState(): Promise<State | undefined> {
  try {
    return JSON.parse(await readFile(STATE_FILE, "utf8")) as State;
  } catch {
    return undefined;
  }
}

// Guards against pid reuse: only signal a pid whose command line is still what we started.
function runs(pid: number, needle: string): boolean {
  if (!isRunning(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle);
  } catch {
    return true;
  }
}

function daemonAlive(state: State): boolean {
  return runs(state.daemonPid, "cli.ts");
}

function componentPids(state: State): { pid: number; binary: string }[] {
  const list = [
    { pid: state.pids.etcd, binary: "etcd" },
    { pid: state.pids.apiserver, binary: "kube-apiserver" },
    { pid: state.pids.watchdog, binary: "tether-watchdog" },
  ];
  if (state.pids.controllerManager !== undefined) {
    list.push({ pid: state.pids.controllerManager, binary: "kube-controller-manager" });
  }
  return list;
}

function usageText(state: State): string {
  const rel = relative(process.cwd(), KUBECONFIG) || KUBECONFIG;
  return [
    `  server:     ${state.server}`,
    `  kubeconfig: ${KUBECONFIG}`,
    `  kubectl:    ${join(state.binDir, "kubectl")}`,
    "",
    "Use it with:",
    `  export KUBECONFIG=${rel.startsWith("..") ? KUBECONFIG : rel}`,
    `  ${join(state.binDir, "kubectl")} get namespaces`,
    "Stop it with: npm run control-plane -- down",
  ].join("\n");
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}

async function up(args: readonly string[]): Promise<number> {
  const unknown = args.filter((arg) => arg !== "--no-controllers");
  if (unknown.length > 0) {
    console.error(`control-plane up: unknown option ${unknown.join(" ")}\n${USAGE}`);
    return 2;
  }
  const existing = await readState();
  if (existing !== undefined && daemonAlive(existing)) {
    console.log(
      `The control plane is already up (daemon pid ${existing.daemonPid}).\n${usageText(existing)}`,
    );
    return 0;
  }
  // A stale state (the daemon died) or a half-written directory: clear it out first.
  if (existing !== undefined) await down({ quiet: true });
  await rm(STATE_DIR, { recursive: true, force: true });
  await mkdir(STATE_DIR, { recursive: true });
  // Built here, in the foreground, so a cold build (many minutes) shows its progress and is not
  // subject to the daemon's start deadline.
  const binDir = await ensureBinaries({ progress: process.stderr });
  console.log("Starting the control plane...");
  const log = await open(LOG_FILE, "a");
  const daemon = spawn(process.execPath, [import.meta.filename, "serve", binDir, ...args], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", log.fd, log.fd, "ipc"],
  });
  await log.close();
  const message = await new Promise<DaemonMessage>((resolve) => {
    const timer = setTimeout(() => {
      resolve({
        type: "failed",
        message: `no answer from the daemon within ${START_TIMEOUT_MS + 30_000} ms`,
      });
    }, START_TIMEOUT_MS + 30_000);
    daemon.once("message", (value) => {
      clearTimeout(timer);
      resolve(value as DaemonMessage);
    });
    daemon.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({
        type: "failed",
        message: `the daemon exited (${signal ?? `code ${code}`}); see ${LOG_FILE}`,
      });
    });
  });
  daemon.removeAllListeners();
  if (daemon.connected) daemon.disconnect();
  daemon.unref();
  if (message.type === "failed") {
    console.error(`The control plane did not start: ${message.message}`);
    if (isRunning(daemon.pid ?? -1)) signalGroup(daemon.pid ?? -1, "SIGTERM");
    return 1;
  }
  console.log(
    `The control plane is up (ready in ${(message.startMs / 1000).toFixed(1)} s).\n${usageText(message.state)}`,
  );
  return 0;
}

/** The daemon: owns the control plane until SIGTERM (down) or until a component dies. */
async function serve(binDir: string | undefined, args: readonly string[]): Promise<number> {
  const send = (message: DaemonMessage): void => {
    if (process.connected) process.send?.(message);
  };
  const started = Date.now();
  const shutdown = { requested: false };
  let controlPlane;
  try {
    controlPlane = await startControlPlane({
      binDir,
      dir: RUN_DIR,
      controllers: !args.includes("--no-controllers"),
      startTimeoutMs: START_TIMEOUT_MS,
    });
  } catch (error) {
    console.error(error);
    send({ type: "failed", message: error instanceof Error ? error.message : String(error) });
    return 1;
  }
  await copyFile(controlPlane.kubeconfigPath, KUBECONFIG);
  const state: State = {
    daemonPid: process.pid,
    server: controlPlane.server,
    kubeconfig: KUBECONFIG,
    binDir: controlPlane.binDir,
    pids: controlPlane.pids,
    controllers: controlPlane.pids.controllerManager !== undefined,
    startedAt: new Date().toISOString(),
  };
  await writeFile(`${STATE_FILE}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  await rename(`${STATE_FILE}.tmp`, STATE_FILE);
  console.log(`${state.startedAt} control plane up at ${state.server}, pids ${JSON.stringify(state.pids)}`);
  send({ type: "ready", state, startMs: Date.now() - started });
  if (process.connected) process.disconnect();
  // The exit hooks of index.ts have already SIGKILLed the components when this listener runs; stop()
  // then reaps them, so `down` leaves no <defunct> entries waiting for init, and removes run/.
  const cp = controlPlane;
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.once(signal, () => {
      shutdown.requested = true;
      void cp.stop().finally(() => process.exit(0));
    });
  }
  // The component handles are unref'd; this keeps the daemon alive until a component exits.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const exit = await controlPlane.exited;
  clearInterval(keepAlive);
  if (shutdown.requested) return 0;
  console.error(
    `${new Date().toISOString()} ${exit.name} exited (${exit.signal ?? `code ${exit.code}`}); stopping`,
  );
  await controlPlane.stop();
  await rm(STATE_FILE, { force: true });
  await rm(KUBECONFIG, { force: true });
  return 1;
}

async function down(options: { quiet?: boolean } = {}): Promise<number> {
  const say = (line: string): void => {
    if (options.quiet !== true) console.log(line);
  };
  const state = await readState();
  if (state === undefined) {
    await rm(STATE_DIR, { recursive: true, force: true });
    say("The control plane is not running.");
    return 0;
  }
  if (daemonAlive(state)) {
    signalGroup(state.daemonPid, "SIGTERM");
    if (!(await waitUntil(() => !isRunning(state.daemonPid), STOP_TIMEOUT_MS))) {
      signalGroup(state.daemonPid, "SIGKILL");
    }
  }
  // The daemon's exit hook (or its watchdog) stops the components; make sure, then force.
  const components = componentPids(state);
  const gone = await waitUntil(
    () => components.every(({ pid, binary }) => !runs(pid, binary)),
    STOP_TIMEOUT_MS,
  );
  if (!gone) for (const { pid, binary } of components) if (runs(pid, binary)) signalGroup(pid, "SIGKILL");
  await rm(STATE_DIR, { recursive: true, force: true });
  say("The control plane is stopped.");
  return 0;
}

async function status(): Promise<number> {
  const state = await readState();
  if (state === undefined) {
    const crashed = await readFile(LOG_FILE, "utf8").catch(() => "");
    console.log(`The control plane is down.${crashed ? ` The last run's log: ${LOG_FILE}` : ""}`);
    return 1;
  }
  if (!daemonAlive(state)) {
    console.log(
      `The control plane is down (stale state; see ${LOG_FILE}). Run: npm run control-plane -- down`,
    );
    return 1;
  }
  const readyz = await runKubectl(join(state.binDir, "kubectl"), KUBECONFIG, join(STATE_DIR, "kube-cache"), [
    "get",
    "--raw",
    "/readyz",
  ]);
  const ready = readyz.code === 0 && readyz.stdout.trim() === "ok";
  const processes = componentPids(state)
    .map(
      ({ pid, binary }) =>
        `${binary.replace("tether-", "")} ${pid} ${runs(pid, binary) ? "running" : "GONE"}`,
    )
    .join(", ");
  console.log(
    `The control plane is ${ready ? "up" : "NOT ready"} since ${state.startedAt} (daemon ${state.daemonPid}).`,
  );
  console.log(`  processes:  ${processes}`);
  console.log(`  /readyz:    ${ready ? "ok" : readyz.stderr.trim() || readyz.stdout.trim()}`);
  console.log(usageText(state));
  return ready ? 0 : 1;
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case "up":
      return up(args);
    case "down":
      return down();
    case "status":
      return status();
    case "serve":
      return serve(args[0], args.slice(1));
    case undefined:
    case "help":
    case "--help":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`control-plane: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
