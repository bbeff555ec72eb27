import { describe, expect, it } from "vitest";
import { computePriorityPlan, levelHealth, pickPriority } from "./priority.ts";

describe("priority arithmetic (overprovisioning 140, panic 50%)", () => {
  it("keeps all load on P0 while 72% or more of it is healthy", () => {
    expect(
      computePriorityPlan(
        [
          { healthy: 4, total: 4 },
          { healthy: 2, total: 2 },
        ],
        140,
        50,
      ).load,
    ).toEqual([100, 0]);
    // 3/4 healthy → 140 × 0.75 = 105 → capped at 100.
    expect(
      computePriorityPlan(
        [
          { healthy: 3, total: 4 },
          { healthy: 2, total: 2 },
        ],
        140,
        50,
      ).load,
    ).toEqual([100, 0]);
  });

  it("spills load to P1 as P0 health drops", () => {
    // 2/4 healthy → health 70 → P0 70%, P1 the remaining 30%.
    expect(
      computePriorityPlan(
        [
          { healthy: 2, total: 4 },
          { healthy: 2, total: 2 },
        ],
        140,
        50,
      ),
    ).toEqual({
      load: [70, 30],
      panic: [false, false],
    });
    // 1/2 healthy → 70/30 as well.
    expect(
      computePriorityPlan(
        [
          { healthy: 1, total: 2 },
          { healthy: 1, total: 1 },
        ],
        140,
        50,
      ).load,
    ).toEqual([70, 30]);
    // P0 all down → everything on P1.
    expect(
      computePriorityPlan(
        [
          { healthy: 0, total: 2 },
          { healthy: 1, total: 1 },
        ],
        140,
        50,
      ).load,
    ).toEqual([0, 100]);
  });

  it("normalizes when total health is below 100 and applies panic per level", () => {
    // P0 1/4 (health 35), P1 1/4 (35): normalized 70 → loads 50/50, both below 50% healthy → total panic by hosts.
    const plan = computePriorityPlan(
      [
        { healthy: 1, total: 4 },
        { healthy: 1, total: 4 },
      ],
      140,
      50,
    );
    expect(plan.panic).toEqual([true, true]);
    expect(plan.load).toEqual([50, 50]);
    // P0 2/4 (70), P1 0/2 (0): normalized 70 → P0 gets 100; P0 at exactly 50% is not in panic.
    const p2 = computePriorityPlan(
      [
        { healthy: 2, total: 4 },
        { healthy: 0, total: 2 },
      ],
      140,
      50,
    );
    expect(p2.load).toEqual([100, 0]);
    expect(p2.panic).toEqual([false, true]);
  });

  it("in total panic spreads load by host count", () => {
    const plan = computePriorityPlan(
      [
        { healthy: 0, total: 3 },
        { healthy: 0, total: 1 },
      ],
      140,
      50,
    );
    expect(plan.load).toEqual([75, 25]);
    expect(plan.panic).toEqual([true, true]);
  });

  it("with panic threshold 0 never panics while any host is healthy", () => {
    const plan = computePriorityPlan([{ healthy: 1, total: 10 }], 140, 0);
    expect(plan.panic).toEqual([false]);
    expect(plan.load).toEqual([100]);
  });

  it("computes level health with integer math and a custom factor", () => {
    expect(levelHealth({ healthy: 1, total: 3 }, 140)).toBe(46);
    expect(levelHealth({ healthy: 1, total: 3 }, 100)).toBe(33);
    expect(levelHealth({ healthy: 0, total: 0 }, 140)).toBe(0);
  });

  it("picks a level from a draw in [0, 100)", () => {
    expect(pickPriority([70, 30], 0)).toBe(0);
    expect(pickPriority([70, 30], 69.9)).toBe(0);
    expect(pickPriority([70, 30], 70)).toBe(1);
    expect(pickPriority([0, 100], 0)).toBe(1);
  });
});
