// Server shutdown on SIGTERM/SIGINT, in Envoy's order: the drain sequence starts (/ready answers 503
// DRAINING at once), the DEFAULT listeners keep accepting for --drain-time-s while HTTP responses
// carry `Connection: close` (drain.ts), then they stop accepting and in-flight work has until
// --parent-shutdown-time-s (counted from the signal) to finish; MODIFY_ONLY listeners (the public
// admin the kubelet probes through) keep answering until everything else is done, then close.
import { DRAIN_STRATEGIES, DrainManager, type DrainOptions, type DrainStrategy } from "./drain.ts";
import { TetherError } from "./errors.ts";
import type { ListenerManager } from "./listeners/manager.ts";
import type { Logger } from "./log.ts";
import { timerDelay } from "./timers.ts";

export const DRAIN_CLI_OPTIONS = {
  "drain-time-s": { type: "string", default: "5" },
  "drain-strategy": { type: "string", default: "gradual" },
  "parent-shutdown-time-s": { type: "string", default: "15" },
} as const;

export const DRAIN_USAGE =
  "[--drain-time-s SECONDS] [--drain-strategy gradual|immediate] [--parent-shutdown-time-s SECONDS]";

function seconds(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || value === "" || !Number.isFinite(n) || n < 0) {
    throw new TetherError("TETHER_ERR_CLI_USAGE", `--${flag} must be a non-negative number`);
  }
  return n;
}

/** The drain flags, checked: --parent-shutdown-time-s must not be shorter than --drain-time-s (Envoy's rule too). */
export function parseDrainOptions(values: Readonly<Record<string, unknown>>): DrainOptions {
  const drainS = seconds("drain-time-s", values["drain-time-s"] as string | undefined);
  const shutdownS = seconds("parent-shutdown-time-s", values["parent-shutdown-time-s"] as string | undefined);
  const strategy = values["drain-strategy"];
  if (!(DRAIN_STRATEGIES as readonly unknown[]).includes(strategy)) {
    throw new TetherError(
      "TETHER_ERR_CLI_USAGE",
      `--drain-strategy must be one of ${DRAIN_STRATEGIES.join(", ")}`,
    );
  }
  if (shutdownS < drainS) {
    throw new TetherError(
      "TETHER_ERR_CLI_USAGE",
      "--parent-shutdown-time-s must be at least --drain-time-s (in-flight work gets the difference)",
    );
  }
  return {
    drainTimeMs: drainS * 1000,
    strategy: strategy as DrainStrategy,
    shutdownTimeMs: shutdownS * 1000,
  };
}

/** Resolves at `until` (or at once when it has passed); the timer is cleared when it fires. */
function sleepUntil(until: number): Promise<void> {
  const ms = until - Date.now();
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => setTimeout(resolve, timerDelay(ms)));
}

/** The listener steps of the shutdown; the caller has already made /ready fail. */
export async function drainSequence(
  listeners: ListenerManager,
  drain: DrainManager,
  deadline: number,
): Promise<void> {
  drain.startDrainSequence();
  listeners.startDrainSequence(drain.drainClose);
  await sleepUntil(Math.min(drain.drainEnd, deadline));
  await listeners.drainAll(deadline, "DEFAULT");
  await listeners.drainAll(deadline, "MODIFY_ONLY");
}

export interface Drainable {
  drain(drain: DrainManager, deadline: number): Promise<void>;
}

/** Installs the SIGTERM/SIGINT handlers: one drain, then exit 0 (or at the deadline, whatever is left). */
export function installShutdown(
  runtime: Drainable,
  options: DrainOptions,
  log: Logger,
  beforeDrain: () => void,
): void {
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    beforeDrain();
    const deadline = Date.now() + options.shutdownTimeMs;
    log.info(
      {
        signal,
        drainTimeS: options.drainTimeMs / 1000,
        drainStrategy: options.strategy,
        parentShutdownTimeS: options.shutdownTimeMs / 1000,
      },
      "draining",
    );
    // A deadline past Node's 32-bit timer range would otherwise exit after 1 ms.
    const force = setTimeout(
      () => {
        log.warn("drain deadline passed; exiting");
        process.exit(0);
      },
      timerDelay(options.shutdownTimeMs + 2000),
    );
    force.unref();
    void runtime.drain(new DrainManager(options), deadline).then(() => {
      log.info("drained; exiting");
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => {
    shutdown("SIGTERM");
  });
  process.on("SIGINT", () => {
    shutdown("SIGINT");
  });
}
