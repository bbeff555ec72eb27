import { describe, expect, it } from "vitest";
import { mergeConditions, rfc3339, sameStatus } from "./conditions.ts";

const t0 = new Date("2026-01-01T00:00:00.123Z");
const t1 = new Date("2026-01-01T00:05:00Z");

describe("mergeConditions", () => {
  it("stamps new conditions with the time and generation", () => {
    const [c] = mergeConditions(
      undefined,
      [{ type: "Ready", status: "False", reason: "Progressing", message: "0/1" }],
      3,
      t0,
    );
    expect(c).toEqual({
      type: "Ready",
      status: "False",
      observedGeneration: 3,
      lastTransitionTime: "2026-01-01T00:00:00Z",
      reason: "Progressing",
      message: "0/1",
    });
  });

  it("keeps lastTransitionTime while the status stays, even if reason and message change", () => {
    const first = mergeConditions(
      undefined,
      [{ type: "Ready", status: "False", reason: "A", message: "a" }],
      1,
      t0,
    );
    const same = mergeConditions(
      first,
      [{ type: "Ready", status: "False", reason: "B", message: "b" }],
      2,
      t1,
    );
    expect(same[0]?.lastTransitionTime).toBe(rfc3339(t0));
    expect(same[0]?.reason).toBe("B");
    const flipped = mergeConditions(
      same,
      [{ type: "Ready", status: "True", reason: "Available", message: "1/1" }],
      2,
      t1,
    );
    expect(flipped[0]?.lastTransitionTime).toBe("2026-01-01T00:05:00Z");
  });
});

describe("sameStatus", () => {
  it("ignores key order and treats absent as empty", () => {
    expect(sameStatus({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 })).toBe(true);
    expect(sameStatus(undefined, {})).toBe(true);
    expect(sameStatus({ a: 1 }, { a: 2 })).toBe(false);
  });
});
