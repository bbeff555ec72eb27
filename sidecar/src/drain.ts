// Envoy's drain manager for server shutdown: once the drain sequence starts, /ready fails and the
// listeners keep accepting for the drain time while responses close their connections — all of
// them at once (`immediate`), or a share that grows from 0 to 1 over the drain time (`gradual`,
// Envoy's default, so a pool of clients does not reconnect in one burst).
import type { RandomSource } from "./upstream/backoff.ts";

export const DRAIN_STRATEGIES = ["gradual", "immediate"] as const;
export type DrainStrategy = (typeof DRAIN_STRATEGIES)[number];

export interface DrainOptions {
  /** --drain-time-s in ms: how long listeners keep accepting after the drain sequence starts. */
  readonly drainTimeMs: number;
  readonly strategy: DrainStrategy;
  /** --parent-shutdown-time-s in ms: from the signal, the deadline for in-flight work. */
  readonly shutdownTimeMs: number;
}

export class DrainManager {
  readonly options: DrainOptions;
  private readonly now: () => number;
  private readonly random: RandomSource;
  private startedAt: number | undefined;

  constructor(options: DrainOptions, now: () => number = Date.now, random: RandomSource = Math.random) {
    this.options = options;
    this.now = now;
    this.random = random;
  }

  get draining(): boolean {
    return this.startedAt !== undefined;
  }

  startDrainSequence(): void {
    this.startedAt ??= this.now();
  }

  /** When the drain period ends and listeners stop accepting. */
  get drainEnd(): number {
    return (this.startedAt ?? this.now()) + this.options.drainTimeMs;
  }

  /** Whether the response being written should close its connection (Envoy's drainClose()). */
  readonly drainClose = (): boolean => {
    if (this.startedAt === undefined) return false;
    if (this.options.strategy === "immediate") return true;
    const elapsed = this.now() - this.startedAt;
    if (elapsed >= this.options.drainTimeMs) return true;
    return this.random() * this.options.drainTimeMs < elapsed;
  };
}
