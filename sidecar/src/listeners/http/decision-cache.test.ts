import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { decisionCacheSchema } from "../../config/schema.ts";
import { DecisionCache } from "./decision-cache.ts";

const config = (extra: Record<string, unknown> = {}) =>
  decisionCacheSchema.parse({ "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache", ...extra });
const req = (url: string, headers: Record<string, string> = {}, method = "GET") =>
  ({ url, method, headers }) as unknown as IncomingMessage;

describe("DecisionCache", () => {
  it("stores 200 responses and expires them after ttl (injected clock)", () => {
    let now = 0;
    const c = new DecisionCache(config({ ttl: "180s" }), () => now);
    const key = c.keyFor(req("/decide?r=1", { cookie: "s=1" }))!;
    expect(c.lookup(key)).toBeUndefined();
    c.store(key, 200, ["content-type", "text/plain"], Buffer.from("allow"), "s1");
    now = 179_999;
    expect(c.lookup(key)?.body.toString()).toBe("allow");
    now = 180_000;
    expect(c.lookup(key)).toBeUndefined();
    expect(c.stats).toMatchObject({ hits: 1, misses: 2, insertions: 1, expired: 1 });
  });

  it("keys on method, path and key headers; skips other methods", () => {
    const c = new DecisionCache(config());
    expect(c.keyFor(req("/a", { cookie: "s=1" }))).not.toBe(c.keyFor(req("/a", { cookie: "s=2" })));
    expect(c.keyFor(req("/a"))).not.toBe(c.keyFor(req("/b")));
    expect(c.keyFor(req("/a", {}, "POST"))).toBeUndefined();
  });

  it("never caches errors or no-store responses", () => {
    const c = new DecisionCache(config());
    expect(c.cacheable(200, [])).toBe(true);
    expect(c.cacheable(503, [])).toBe(false);
    expect(c.cacheable(404, [])).toBe(false);
    expect(c.cacheable(200, ["Cache-Control", "no-store"])).toBe(false);
  });

  it("invalidates by session and on policy change", () => {
    const c = new DecisionCache(config());
    c.store("a", 200, [], Buffer.from("x"), "s1");
    c.store("b", 200, [], Buffer.from("x"), "s2");
    c.store("c", 200, [], Buffer.from("x"), "s1");
    expect(c.invalidateSession("s1")).toBe(2);
    expect(c.size).toBe(1);
    expect(c.invalidateAll()).toBe(1);
    expect(c.size).toBe(0);
  });

  it("bounds memory: LRU eviction at max_entries, large bodies not stored", () => {
    const c = new DecisionCache(config({ max_entries: 2, max_body_bytes: 4 }));
    c.store("a", 200, [], Buffer.from("1"), undefined);
    c.store("b", 200, [], Buffer.from("2"), undefined);
    c.lookup("a"); // a is now the most recently used
    c.store("c", 200, [], Buffer.from("3"), undefined);
    expect(c.lookup("b")).toBeUndefined();
    expect(c.lookup("a")).toBeDefined();
    c.store("big", 200, [], Buffer.from("12345"), undefined);
    expect(c.lookup("big")).toBeUndefined();
    expect(c.stats.evicted).toBe(1);
  });
});
