import { describe, expect, it } from "vitest";
import { attemptsWithin } from "./retry.ts";

describe("attemptsWithin", () => {
  it("counts back-off attempts whose expected total reaches the hold time", () => {
    // expected waits: 0.5, 1, 1, 1, ... (half of min(step, 2s)) → 1 + 1 + 9 steps within 10 s
    expect(attemptsWithin(10_000, 1000, 2000)).toBe(11);
    expect(attemptsWithin(0, 250, 2000)).toBe(1);
    expect(attemptsWithin(1e12, 1, 1, 50)).toBe(50);
  });
});
