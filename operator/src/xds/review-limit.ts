/**
 * A bound on the identity check's API calls in flight: a fleet reconnecting at once (an operator
 * restart, new tokens, empty caches) must not open thousands of TokenReviews and pod GETs together.
 * Callers past the limit wait in FIFO order; one that waits longer than its deadline gives up.
 */

export class ReviewQueueTimeout extends Error {
  constructor(waitedMs: number, limit: number) {
    super(`${limit} identity reviews already in flight; waited ${waitedMs} ms for a slot`);
    this.name = "ReviewQueueTimeout";
  }
}

interface Waiter {
  readonly grant: () => void;
  readonly timer: NodeJS.Timeout;
}

export class ReviewLimiter {
  private readonly limit: number;
  private readonly timeoutMs: number;
  private readonly onChange: ((inFlight: number) => void) | undefined;
  private readonly waiters: Waiter[] = [];
  private running = 0;

  constructor(limit: number, timeoutMs: number, onChange?: (inFlight: number) => void) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`limit ${limit} is not a positive integer`);
    this.limit = limit;
    this.timeoutMs = timeoutMs;
    this.onChange = onChange;
  }

  get inFlight(): number {
    return this.running;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Runs `call` once a slot is free; rejects with ReviewQueueTimeout if none frees in time. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await call();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.running < this.limit) {
      this.take();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          clearTimeout(waiter.timer);
          this.take();
          resolve();
        },
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new ReviewQueueTimeout(this.timeoutMs, this.limit));
        }, this.timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  private take(): void {
    this.running++;
    this.onChange?.(this.running);
  }

  private release(): void {
    this.running--;
    this.onChange?.(this.running);
    this.waiters.shift()?.grant();
  }
}
