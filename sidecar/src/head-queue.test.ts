import { describe, expect, it } from "vitest";
import { HeadQueue } from "./head-queue.ts";

describe("HeadQueue", () => {
  it("keeps first-in first-out order with the head apart", () => {
    const q = new HeadQueue<string>();
    expect([q.head, q.last, q.size]).toEqual([undefined, undefined, 0]);
    q.push("a");
    expect([q.head, q.last, q.size]).toEqual(["a", "a", 1]);
    q.push("b");
    q.push("c");
    expect([q.head, q.last, q.size]).toEqual(["a", "c", 3]);
    expect(q.some((x) => x === "b")).toBe(true);
    expect(q.shift()).toBe("a");
    expect([q.head, q.size]).toEqual(["b", 2]);
    q.remove("c");
    expect([q.head, q.last, q.size]).toEqual(["b", "b", 1]);
    q.remove("b");
    expect([q.head, q.size]).toEqual([undefined, 0]);
    expect(q.shift()).toBeUndefined();
    q.push("d");
    q.push("e");
    expect(q.drain()).toEqual(["d", "e"]);
    expect([q.head, q.size, q.some(() => true)]).toEqual([undefined, 0, false]);
  });
});
