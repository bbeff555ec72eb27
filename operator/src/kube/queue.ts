/**
 * A work queue of keys: at most one reconcile per key in flight, duplicates collapsed (a key added
 * while it runs is run once more afterwards), failures retried with per-key exponential back-off.
 */

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** What a reconcile asks for: undefined = done; a number = run again after that many ms. */
export type ReconcileResult = number | undefined;

export interface WorkQueueOptions {
  readonly concurrency: number;
  readonly handler: (key: string) => Promise<ReconcileResult>;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  readonly timers?: Timers;
  /** Called when a handler throws, with the retry delay chosen. */
  readonly onError?: (key: string, error: unknown, retryInMs: number) => void;
  readonly onDepthChange?: (depth: number) => void;
  /** A key entered the queue (not counting one collapsed into a key already waiting). */
  readonly onAdd?: (key: string) => void;
  /** A key left the queue for the handler, after waiting `queuedMs`; then it ran `workMs`. */
  readonly onStart?: (key: string, queuedMs: number) => void;
  readonly onDone?: (key: string, workMs: number) => void;
  /** A failed key was scheduled again with back-off. */
  readonly onRetry?: (key: string) => void;
  /** Milliseconds clock for the queue and work durations. */
  readonly now?: () => number;
}

export class WorkQueue {
  private readonly options: WorkQueueOptions;
  private readonly timers: Timers;
  private readonly order: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, unknown>();
  private readonly addedAt = new Map<string, number>();
  private readonly idleWaiters: (() => void)[] = [];
  private paused = true;
  private stopped = false;
  private active = 0;

  constructor(options: WorkQueueOptions) {
    this.options = options;
    this.timers = options.timers ?? realTimers;
  }

  /** Keys waiting (not counting the ones in flight). */
  get depth(): number {
    return this.order.length;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.order.push(key);
    this.addedAt.set(key, this.clock());
    this.options.onAdd?.(key);
    this.depthChanged();
    this.pump();
  }

  /** Adds the key after `ms`; an earlier pending delayed add of the same key is kept if sooner. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    if (this.delayed.has(key)) return;
    const handle = this.timers.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, handle);
  }

  /** Starts (or resumes) handing keys to the handler. */
  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** Stops starting new reconciles; those in flight finish. Keys stay queued. */
  pause(): void {
    this.paused = true;
  }

  /** Stops for good: clears timers and waits for reconciles in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.paused = true;
    for (const handle of this.delayed.values()) this.timers.clearTimeout(handle);
    this.delayed.clear();
    await this.idle();
  }

  /** Resolves when nothing is in flight. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private clock(): number {
    return this.options.now === undefined ? performance.now() : this.options.now();
  }

  private depthChanged(): void {
    this.options.onDepthChange?.(this.order.length);
  }

  private pump(): void {
    while (!this.paused && this.active < this.options.concurrency && this.order.length > 0) {
      const key = this.order.shift();
      if (key === undefined) break;
      this.queued.delete(key);
      this.processing.add(key);
      this.active++;
      this.depthChanged();
      const now = this.clock();
      this.options.onStart?.(key, now - (this.addedAt.get(key) ?? now));
      this.addedAt.delete(key);
      void this.run(key);
    }
  }

  private backoff(key: string): number {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const base = this.options.backoffBaseMs ?? 500;
    const max = this.options.backoffMaxMs ?? 60_000;
    return Math.min(max, base * 2 ** Math.min(failures - 1, 30));
  }

  private async run(key: string): Promise<void> {
    let requeueAfter: number | undefined;
    const started = this.clock();
    try {
      requeueAfter = await this.options.handler(key);
      this.failures.delete(key);
    } catch (error) {
      requeueAfter = this.backoff(key);
      this.options.onError?.(key, error, requeueAfter);
      this.options.onRetry?.(key);
    }
    this.options.onDone?.(key, this.clock() - started);
    this.processing.delete(key);
    this.active--;
    if (this.dirty.delete(key)) this.add(key);
    else if (requeueAfter !== undefined) this.addAfter(key, requeueAfter);
    if (this.active === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    this.pump();
  }
}
