import { describe, expect, it } from "vitest";
import { HeadQueue } from "./head-queue.ts";

describe("HeadQueue", () => {
  it("keeps first-in first-out order with the head apart", () => {
    const q = new HeadQueue<string>();
    expect([q.head, q.size]).toEqual([undefined, 0]);
    q.push("a");
    expect([q.head, q.size]).toEqual(["a", 1]);
    q.push("b");
    q.push("c");
    expect([q.head, q.size]).toEqual(["a", 3]);
    expect(q.shift()).toBe("a");
    expect([q.head, q.size]).toEqual(["b", 2]);
    expect(q.shift()).toBe("b");
    expect(q.shift()).toBe("c");
    expect([q.head, q.size]).toEqual([undefined, 0]);
    expect(q.shift()).toBeUndefined();
    q.push("d");
    q.push("e");
    expect(q.drain()).toEqual(["d", "e"]);
    expect([q.head, q.size]).toEqual([undefined, 0]);
  });
});
