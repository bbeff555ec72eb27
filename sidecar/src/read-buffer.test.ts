import { describe, expect, it } from "vitest";
import { isSharedRead, retainable, sharedReadBuffer } from "./read-buffer.ts";

describe("the shared read buffer", () => {
  it("tells its views apart from every other buffer, and copies only them", () => {
    const shared = sharedReadBuffer();
    expect(sharedReadBuffer()).toBe(shared);
    shared.write("hello", 10, "latin1");
    const view = shared.subarray(10, 15);
    expect(isSharedRead(view)).toBe(true);
    const kept = retainable(view);
    expect(kept).not.toBe(view);
    expect(isSharedRead(kept)).toBe(false);
    shared.write("HELLO", 10, "latin1");
    expect(kept.toString("latin1")).toBe("hello");
    // Small buffers share Node's pool, never the read buffer.
    const pooled = Buffer.from("hello");
    expect(isSharedRead(pooled)).toBe(false);
    expect(retainable(pooled)).toBe(pooled);
  });
});
