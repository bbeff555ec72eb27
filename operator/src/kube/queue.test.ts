import { describe, expect, it } from "vitest";
import { WorkQueue, type Timers } from "./queue.ts";

/** Timers run by hand: `fire()` runs every due callback. */
function manualTimers(): Timers & { pending: { fn: () => void; ms: number }[]; fireAll(): void } {
  const pending: { fn: () => void; ms: number }[] = [];
  return {
    pending,
    setTimeout: (fn, ms) => {
      const t = { fn, ms };
      pending.push(t);
      return t;
    },
    clearTimeout: (handle) => {
      const i = pending.indexOf(handle as { fn: () => void; ms: number });
      if (i >= 0) pending.splice(i, 1);
    },
    fireAll() {
      for (const t of pending.splice(0)) t.fn();
    },
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("WorkQueue", () => {
  it("collapses duplicate keys waiting in the queue", async () => {
    const seen: string[] = [];
    const q = new WorkQueue({
      concurrency: 1,
      handler: (k) => {
        seen.push(k);
        return Promise.resolve(undefined);
      },
    });
    q.add("a");
    q.add("b");
    q.add("a");
    expect(q.depth).toBe(2);
    q.resume();
    await q.idle();
    await q.idle();
    expect(seen).toEqual(["a", "b"]);
  });

  it("runs one reconcile per key at a time, and once more if the key was added meanwhile", async () => {
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const q = new WorkQueue({
      concurrency: 4,
      handler: async () => {
        running++;
        runs++;
        maxRunning = Math.max(maxRunning, running);
        if (runs === 1) await gate.promise;
        running--;
        return undefined;
      },
    });
    q.resume();
    q.add("a");
    q.add("a");
    q.add("a");
    expect(maxRunning).toBe(1);
    gate.resolve();
    await new Promise((r) => setImmediate(r));
    await q.idle();
    expect(runs).toBe(2);
    expect(maxRunning).toBe(1);
  });

  it("runs different keys in parallel up to the concurrency", async () => {
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    const q = new WorkQueue({
      concurrency: 2,
      handler: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await gate.promise;
        running--;
        return undefined;
      },
    });
    for (const k of ["a", "b", "c"]) q.add(k);
    q.resume();
    expect(maxRunning).toBe(2);
    expect(q.depth).toBe(1);
    gate.resolve();
    await q.idle();
    await q.idle();
    expect(maxRunning).toBe(2);
  });

  it("retries a failing key with exponential back-off and forgets it after a success", async () => {
    const timers = manualTimers();
    let failuresLeft = 3;
    const delays: number[] = [];
    const q = new WorkQueue({
      concurrency: 1,
      timers,
      backoffBaseMs: 100,
      backoffMaxMs: 300,
      handler: () => (failuresLeft-- > 0 ? Promise.reject(new Error("boom")) : Promise.resolve(undefined)),
      onError: (_k, _e, ms) => delays.push(ms),
    });
    q.resume();
    q.add("a");
    for (let i = 0; i < 3; i++) {
      await q.idle();
      await new Promise((r) => setImmediate(r));
      expect(timers.pending).toHaveLength(1);
      timers.fireAll();
    }
    await q.idle();
    expect(delays).toEqual([100, 200, 300]);
    expect(timers.pending).toHaveLength(0);
  });

  it("reports adds, time waited in the queue, work time and retries, on the injected clock", async () => {
    let now = 1_000;
    const events: string[] = [];
    let fail = true;
    const q = new WorkQueue({
      concurrency: 1,
      timers: manualTimers(),
      now: () => now,
      handler: () => {
        now += 7;
        if (fail) {
          fail = false;
          return Promise.reject(new Error("boom"));
        }
        return Promise.resolve(undefined);
      },
      onAdd: (k) => events.push(`add ${k}`),
      onStart: (k, ms) => events.push(`start ${k} after ${ms}`),
      onDone: (k, ms) => events.push(`done ${k} in ${ms}`),
      onRetry: (k) => events.push(`retry ${k}`),
    });
    q.add("a");
    q.add("a"); // collapsed into the waiting key: not an add
    now += 40; // paused: the key waits
    q.resume();
    await q.idle();
    expect(events).toEqual(["add a", "start a after 40", "retry a", "done a in 7"]);
  });

  it("does not start work while paused and clears its timers on stop", async () => {
    const timers = manualTimers();
    const seen: string[] = [];
    const q = new WorkQueue({
      concurrency: 1,
      timers,
      handler: (k) => {
        seen.push(k);
        return Promise.resolve(undefined);
      },
    });
    q.add("a");
    q.addAfter("b", 1000);
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual([]);
    await q.stop();
    expect(timers.pending).toHaveLength(0);
  });
});
