import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { decisionCacheSchema } from "@tether/envoy";
import {
  DecisionCache,
  NotificationStream,
  parseNotification,
  type CacheableRequest,
} from "./decision-cache.ts";

const config = (extra: Record<string, unknown> = {}) =>
  decisionCacheSchema.parse({ "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache", ...extra });
const req = (url: string, headers: Record<string, string> = {}, method = "GET") =>
  ({ url, method, rawHeaders: Object.entries(headers).flat() }) satisfies CacheableRequest;
const keyOf = (c: DecisionCache, r: CacheableRequest): string | undefined => c.admit(r)?.key;

describe("DecisionCache", () => {
  it("stores 200 responses and expires them after ttl (injected clock)", () => {
    let now = 0;
    const c = new DecisionCache(config({ ttl: "180s" }), () => now);
    const key = keyOf(c, req("/decide?r=1", { cookie: "s=1" }))!;
    expect(c.lookup(key)).toBeUndefined();
    c.store(key, 200, ["content-type", "text/plain"], Buffer.from("allow"), "s1");
    now = 179_999;
    expect(c.lookup(key)?.body.toString()).toBe("allow");
    now = 180_000;
    expect(c.lookup(key)).toBeUndefined();
    expect(c.stats).toMatchObject({ hits: 1, misses: 2, insertions: 1, expired: 1 });
  });

  it("keys on method, path, Host, session and key headers; skips other methods", () => {
    const c = new DecisionCache(config());
    const key = keyOf(c, req("/a", { host: "ps", cookie: "s=1", "x-session-id": "s1" }));
    expect(keyOf(c, req("/a", { host: "ps", cookie: "s=2", "x-session-id": "s1" }))).not.toBe(key);
    expect(keyOf(c, req("/a", { host: "ps", cookie: "s=1", "x-session-id": "s2" }))).not.toBe(key);
    expect(keyOf(c, req("/a", { host: "other", cookie: "s=1", "x-session-id": "s1" }))).not.toBe(key);
    expect(keyOf(c, req("/b", { host: "ps", cookie: "s=1", "x-session-id": "s1" }))).not.toBe(key);
    expect(keyOf(c, req("/a", { host: "ps", cookie: "s=1", "x-session-id": "s1" }, "HEAD"))).not.toBe(key);
    expect(c.admit(req("/a", {}, "POST"))).toBeUndefined();
    expect(c.admit(req("/a", { "x-session-id": "s1" }))?.session).toBe("s1");
  });

  it("never stores an answer requested before an invalidation (it may be the decision revoked)", () => {
    const c = new DecisionCache(config());
    const before = c.admit(req("/d", { "x-session-id": "alice" }))!;
    c.invalidateSession("alice"); // nothing stored yet: 0 dropped, but the answer on its way is stale
    c.store(before.key, 200, [], Buffer.from("allow"), "alice", [], before.generation);
    expect(c.lookup(before.key)).toBeUndefined();
    const after = c.admit(req("/d", { "x-session-id": "alice" }))!;
    c.store(after.key, 200, [], Buffer.from("deny"), "alice", [], after.generation);
    expect(c.lookup(after.key)?.body.toString()).toBe("deny");
    c.invalidateAll();
    c.store(after.key, 200, [], Buffer.from("allow"), "alice", [], after.generation);
    expect(c.lookup(after.key)).toBeUndefined();
  });

  it("forgets an entry the upstream's newer answer could not replace", () => {
    const c = new DecisionCache(config());
    c.store("k", 200, [], Buffer.from("allow"), "s1");
    c.forget("k");
    expect(c.lookup("k")).toBeUndefined();
  });

  it("key_headers and session_header come from the config", () => {
    const c = new DecisionCache(config({ key_headers: ["x-tenant"], session_header: "x-user-session" }));
    const key = keyOf(c, req("/a", { "x-tenant": "t1", "x-user-session": "u1" }));
    expect(keyOf(c, req("/a", { "x-tenant": "t2", "x-user-session": "u1" }))).not.toBe(key);
    expect(keyOf(c, req("/a", { "x-tenant": "t1", "x-user-session": "u2" }))).not.toBe(key);
    // Not a key header any more, but Authorization is always keyed.
    expect(keyOf(c, req("/a", { "x-tenant": "t1", "x-user-session": "u1", cookie: "c" }))).toBe(key);
    expect(keyOf(c, req("/a", { "x-tenant": "t1", "x-user-session": "u1", authorization: "x" }))).not.toBe(
      key,
    );
  });

  it("answers a varying entry only to requests with the same values of its Vary headers", () => {
    const c = new DecisionCache(config());
    const filler = ["X-Tenant", "t1", "accept", "json"];
    c.store("k", 200, ["Vary", "x-tenant, Accept"], Buffer.from("t1"), "s1", filler);
    expect(c.lookup("k", ["accept", "json", "x-tenant", "t1"])?.body.toString()).toBe("t1");
    expect(c.lookup("k", ["X-Tenant", "t2", "accept", "json"])).toBeUndefined();
    expect(c.lookup("k", ["accept", "json"])).toBeUndefined();
    expect(c.lookup("k", [])).toBeUndefined();
    // The other variant's answer replaces the entry.
    const other = ["X-Tenant", "t2", "accept", "json"];
    c.store("k", 200, ["Vary", "x-tenant, Accept"], Buffer.from("t2"), "s1", other);
    expect(c.lookup("k", filler)).toBeUndefined();
    expect(c.lookup("k", other)?.body.toString()).toBe("t2");
    expect(c.stats).toMatchObject({ hits: 2, misses: 4, insertions: 2 });
  });

  it("never stores errors, Set-Cookie, no-store, no-cache, private or Vary: *", () => {
    const c = new DecisionCache(config());
    expect(c.cacheable(200, [])).toBe(true);
    expect(c.cacheable(503, [])).toBe(false);
    expect(c.cacheable(404, [])).toBe(false);
    expect(c.cacheable(200, ["Cache-Control", "no-store"])).toBe(false);
    const refused = [
      ["Set-Cookie", "SMSESSION=abc"],
      ["Cache-Control", "no-cache"],
      ["cache-control", "private, max-age=60"],
      ["Vary", "*"],
    ];
    for (const headers of refused) {
      expect(c.cacheable(200, headers)).toBe(false);
      // store() applies the same rules, whoever calls it.
      c.store("k", 200, headers, Buffer.from("x"), "s1");
    }
    c.store("e", 503, [], Buffer.from("x"), "s1");
    expect(c.size).toBe(0);
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

describe("NotificationStream (the policy server's notification stream)", () => {
  async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it("applies session and policy-changed events, skips heartbeats, reconnects with back-off and then drops everything", async () => {
    const streams: http.ServerResponse[] = [];
    let requests = 0;
    const server = http.createServer((req, res) => {
      requests++;
      // The first attempt is refused by the application: the subscription must retry.
      if (requests === 1 || req.url !== "/notifications/stream") {
        res.statusCode = 503;
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.flushHeaders();
      streams.push(res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const c = new DecisionCache(config());
    const sub = new NotificationStream(c, {
      open: () => http.request({ host: "127.0.0.1", port, path: "/notifications/stream", agent: false }),
      baseIntervalMs: 20,
      maxIntervalMs: 40,
      random: () => 0.5,
    });
    try {
      c.store("a", 200, [], Buffer.from("x"), "s1");
      c.store("b", 200, [], Buffer.from("x"), "s2");
      sub.start();
      await until("the stream to open after a refused attempt", () => streams.length === 1);
      expect(sub.stats.disconnects).toBe(1);
      await until("connected", () => sub.stats.connects === 1);
      // The first connection keeps what is cached.
      expect(c.size).toBe(2);
      streams[0]!.write('\n{"session": "s1"}\n');
      await until("session event", () => c.size === 1);
      expect(c.lookup("b")).toBeDefined();
      streams[0]!.write('not json\n{"sess');
      streams[0]!.write('ion": "nobody"}\n');
      await until("two events", () => sub.stats.events === 2);
      expect(sub.stats.bad_events).toBe(1);
      // The server drops the stream: events may be lost, so the reconnect invalidates everything.
      c.store("c", 200, [], Buffer.from("x"), "s3");
      streams[0]!.destroy();
      await until("reconnected", () => sub.stats.connects === 2 && streams.length === 2);
      expect(c.size).toBe(0);
      expect(c.stats.invalidated_policy).toBe(2);
      c.store("d", 200, [], Buffer.from("x"), "s4");
      streams[1]!.write('{"type": "policy-changed"}\n');
      await until("policy change", () => c.size === 0);
      streams[1]!.write('{"policy-changed": true}\n');
      await until("second form", () => sub.stats.events === 4);
    } finally {
      sub.stop();
      for (const s of streams) s.destroy();
      await new Promise((r) => server.close(r));
    }
    const before = requests;
    await new Promise((r) => setTimeout(r, 60)); // longer than the back-off: no reconnect after stop
    expect(requests).toBe(before);
  });

  it("parses the notification shapes", () => {
    expect(parseNotification({ session: "s" })).toEqual({ session: "s" });
    expect(parseNotification({ type: "policy-changed" })).toEqual({ policyChanged: true });
    expect(parseNotification({ "policy-changed": true })).toEqual({ policyChanged: true });
    expect(parseNotification({ session: "" })).toBeUndefined();
    expect(parseNotification({ type: "other" })).toBeUndefined();
    expect(parseNotification("x")).toBeUndefined();
  });
});
