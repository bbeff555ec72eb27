import { describe, expect, it } from "vitest";
import { Deadline, deadlineList } from "./deadlines.ts";

/** Records when its deadline passed (performance.now()), and when it was started. */
class Probe extends Deadline {
  startedAt = 0;
  firedAt = -1;
  private readonly fired: (p: Probe) => void;

  constructor(fired: (p: Probe) => void) {
    super();
    this.fired = fired;
  }

  start(ms: number): void {
    this.startedAt = performance.now();
    this.startDeadline(ms, this.startedAt);
  }

  override onDeadline(): void {
    this.firedAt = performance.now();
    this.fired(this);
  }
}

/** Resolves with the probes in the order their deadlines passed, once `count` of them have. */
function collect(
  count: number,
  deadlineMs: number,
): { order: Probe[]; done: Promise<Probe[]>; probe: () => Probe } {
  const order: Probe[] = [];
  let resolve: (v: Probe[]) => void = () => undefined;
  const done = new Promise<Probe[]>((r) => (resolve = r));
  const timeout = setTimeout(() => {
    resolve(order);
  }, deadlineMs);
  const probe = (): Probe =>
    new Probe((p) => {
      order.push(p);
      if (order.length === count) {
        clearTimeout(timeout);
        resolve(order);
      }
    });
  return { order, done, probe };
}

describe("Deadline lists", () => {
  it("fire each entry once, in order, never before its duration, and not for removed entries", async () => {
    const ms = 40;
    const { done, probe } = collect(3, 2000);
    const a = probe();
    const b = probe();
    const c = probe();
    const removed = probe();
    a.start(ms);
    removed.start(ms);
    await new Promise((r) => setTimeout(r, 5));
    b.start(ms);
    c.start(ms);
    removed.cancelDeadline();
    expect(removed.deadlinePending).toBe(false);
    expect(deadlineList(ms).size).toBe(3);
    const order = await done;
    expect(order).toEqual([a, b, c]);
    for (const p of order) {
      expect(p.firedAt - p.startedAt).toBeGreaterThanOrEqual(ms);
      expect(p.deadlinePending).toBe(false);
    }
    expect(removed.firedAt).toBe(-1);
    expect(deadlineList(ms).size).toBe(0);
  });

  it("still fires a later entry when the one the timer was armed for was removed", async () => {
    const ms = 30;
    const { done, probe } = collect(1, 2000);
    const first = probe();
    const later = probe();
    first.start(ms);
    await new Promise((r) => setTimeout(r, 10));
    first.cancelDeadline();
    later.start(ms);
    const order = await done;
    expect(order).toEqual([later]);
    expect(later.firedAt - later.startedAt).toBeGreaterThanOrEqual(ms);
    expect(first.firedAt).toBe(-1);
  });

  it("restarting a pending deadline replaces it", async () => {
    const ms = 25;
    const { done, probe } = collect(1, 2000);
    const p = probe();
    p.start(ms);
    await new Promise((r) => setTimeout(r, 10));
    p.start(ms);
    expect(deadlineList(ms).size).toBe(1);
    const order = await done;
    expect(order).toEqual([p]);
    expect(p.firedAt - p.startedAt).toBeGreaterThanOrEqual(ms);
  });
});
