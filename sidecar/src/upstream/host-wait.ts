// Requests and connections sleeping in a retry back-off until their cluster has news — a host back in
// rotation, a host reachable again, a connect that succeeded — are woken together, at once, instead of
// finishing their sleep. One list per cluster (not a health listener per request): joining and leaving
// are O(1), and a wake-up with nobody waiting costs a size check.

/** Something sleeping in a back-off that would rather try again now. */
export interface HostWaiter {
  /** The cluster may have a host for it: stop sleeping and try. Called once per join. */
  onHostAvailable(): void;
}

export class HostWaitList {
  private waiters = new Set<HostWaiter>();

  get size(): number {
    return this.waiters.size;
  }

  add(waiter: HostWaiter): void {
    this.waiters.add(waiter);
  }

  delete(waiter: HostWaiter): void {
    this.waiters.delete(waiter);
  }

  /**
   * Wakes everyone waiting now and empties the list; returns how many. A waiter that joins again
   * while being woken (its new attempt failed at once) waits for the next wake-up.
   */
  wakeAll(): number {
    const woken = this.waiters;
    if (woken.size === 0) return 0;
    this.waiters = new Set();
    for (const waiter of woken) waiter.onHostAvailable();
    return woken.size;
  }

  clear(): void {
    this.waiters.clear();
  }
}
