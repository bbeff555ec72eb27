import { describe, expect, it } from "vitest";
import {
  CacheKeyRule,
  directiveNames,
  responseStorable,
  varyNames,
  varyValues,
  MAX_KEY_CHARS,
} from "./decision-cache-rules.ts";

const rule = new CacheKeyRule("X-Session-Id", ["authorization", "cookie", "x-tenant"]);
const keyOf = (raw: string[], target = "/decide", method = "GET"): string | undefined =>
  rule.request("", method, target, raw)?.key;

describe("CacheKeyRule (what the decision cache keys on)", () => {
  it("keys on method, request target, Host, the session header, Authorization and the key headers", () => {
    const base = ["Host", "ps", "x-session-id", "s1", "Cookie", "c=1", "x-tenant", "t1"];
    const key = keyOf(base);
    expect(keyOf(base)).toBe(key);
    expect(keyOf(base, "/decide?r=2")).not.toBe(key);
    expect(keyOf(base, "/decide", "HEAD")).not.toBe(key);
    expect(keyOf(["Host", "other", ...base.slice(2)])).not.toBe(key);
    expect(keyOf(["Host", "ps", "x-session-id", "s2", ...base.slice(4)])).not.toBe(key);
    expect(keyOf([...base.slice(0, 4), "Cookie", "c=2", "x-tenant", "t1"])).not.toBe(key);
    expect(keyOf([...base.slice(0, 6), "x-tenant", "t2"])).not.toBe(key);
    expect(keyOf([...base, "authorization", "Bearer a"])).not.toBe(key);
    // Header names are case-insensitive; headers outside the key do not matter.
    expect(
      keyOf(["HOST", "ps", "X-SESSION-ID", "s1", "cookie", "c=1", "X-Tenant", "t1", "accept", "x"]),
    ).toBe(key);
  });

  it("keys Authorization even when key_headers leaves it out", () => {
    const r = new CacheKeyRule("x-session-id", ["cookie"]);
    expect(r.names).toEqual(["host", "x-session-id", "authorization", "cookie"]);
    expect(r.request("", "GET", "/", ["authorization", "Bearer a"])?.key).not.toBe(
      r.request("", "GET", "/", ["authorization", "Bearer b"])?.key,
    );
  });

  it("keys a header sent twice as two values, never as one joined value", () => {
    const twice = keyOf(["x-tenant", "a", "x-tenant", "b"]);
    expect(twice).not.toBe(keyOf(["x-tenant", "a, b"]));
    expect(twice).not.toBe(keyOf(["x-tenant", "a,b"]));
    expect(twice).not.toBe(keyOf(["x-tenant", "b", "x-tenant", "a"]));
    // node keeps only the first Authorization in req.headers; the key sees both, as the upstream does.
    expect(keyOf(["authorization", "A", "authorization", "B"])).not.toBe(keyOf(["authorization", "A"]));
  });

  it("cannot be forged by a value carrying delimiters, quotes or another header's name", () => {
    const honest = keyOf(["cookie", "c=1", "x-tenant", "t1"]);
    const forged = [
      ["cookie", "c=1\nx-tenant:t1"],
      ["cookie", 'c=1"],["t1'],
      ["cookie", "c=1", "x-tenant", ""],
      ["cookie", "c=1,x-tenant:t1"],
      ["cookie", "c=1", "cookie", "x-tenant:t1"],
    ];
    for (const raw of forged) expect(keyOf(raw)).not.toBe(honest);
    // The target and a header value cannot trade places either.
    expect(keyOf(["host", "a b"], "/x")).not.toBe(keyOf(["host", "a"], "b /x"));
  });

  it("bypasses the cache when the session header is sent twice (no single session to invalidate)", () => {
    expect(rule.request("", "GET", "/", ["x-session-id", "a", "x-session-id", "b"])).toBeUndefined();
    expect(rule.request("", "GET", "/", ["x-session-id", "a"])?.session).toBe("a");
    expect(rule.request("", "GET", "/", [])?.session).toBeUndefined();
  });

  it("reads the request's Cache-Control: no-cache skips the lookup, no-store the insert", () => {
    const flags = (raw: string[]): [boolean, boolean] | undefined => {
      const r = rule.request("", "GET", "/", raw);
      return r === undefined ? undefined : [r.serve, r.store];
    };
    expect(flags([])).toEqual([true, true]);
    expect(flags(["Cache-Control", "no-cache"])).toEqual([false, true]);
    expect(flags(["Cache-Control", "max-age=0, No-Store"])).toEqual([true, false]);
    expect(flags(["cache-control", "no-cache", "cache-control", "no-store"])).toEqual([false, false]);
    expect(flags(["Pragma", "no-cache"])).toEqual([false, true]);
    // Pragma counts only without Cache-Control (RFC 9111 §5.4).
    expect(flags(["Pragma", "no-cache", "Cache-Control", "max-age=60"])).toEqual([true, true]);
    // The cache-control header value is keyed nowhere: it does not change the key.
    expect(rule.request("", "GET", "/", ["cache-control", "no-cache"])?.key).toBe(
      rule.request("", "GET", "/", [])?.key,
    );
  });
});

describe("responseStorable (what the decision cache may store)", () => {
  it("stores a plain 200 only", () => {
    expect(responseStorable(200, ["content-type", "text/plain", "cache-control", "max-age=60"])).toBe(true);
    expect(responseStorable(503, [])).toBe(false);
    expect(responseStorable(404, [])).toBe(false);
    expect(responseStorable(204, [])).toBe(false);
  });

  it("never stores Set-Cookie, no-store, no-cache, private or Vary: *", () => {
    expect(responseStorable(200, ["Set-Cookie", "s=1"])).toBe(false);
    expect(responseStorable(200, ["Cache-Control", "no-store"])).toBe(false);
    expect(responseStorable(200, ["Cache-Control", "max-age=60, No-Cache"])).toBe(false);
    expect(responseStorable(200, ["Cache-Control", 'no-cache="set-cookie"'])).toBe(false);
    expect(responseStorable(200, ["cache-control", "public", "cache-control", "private"])).toBe(false);
    expect(responseStorable(200, ["Vary", "*"])).toBe(false);
    expect(responseStorable(200, ["Vary", "accept, *"])).toBe(false);
    // A directive name is matched whole, not as a substring.
    expect(responseStorable(200, ["cache-control", "x-private-hint=1"])).toBe(true);
  });

  it("names the headers a response varies on, and encodes their values unambiguously", () => {
    expect(varyNames(["Vary", "X-Tenant, accept", "vary", "Accept", "content-type", "x"])).toEqual([
      "x-tenant",
      "accept",
    ]);
    const names = ["x-tenant", "accept"];
    const a = varyValues(names, ["X-Tenant", "t1", "Accept", "json"]);
    expect(varyValues(names, ["accept", "json", "x-tenant", "t1"])).toBe(a);
    expect(varyValues(names, ["X-Tenant", "t2", "Accept", "json"])).not.toBe(a);
    expect(varyValues(names, ["X-Tenant", "t1"])).not.toBe(a);
    expect(varyValues(names, ["X-Tenant", "t1", "X-Tenant", "t1", "Accept", "json"])).not.toBe(a);
    // A value that spells the encoding of another header does not forge it.
    expect(varyValues(names, ["X-Tenant", 't1"],["json'])).not.toBe(a);
  });

  it("parses directive names, arguments dropped", () => {
    expect(directiveNames(" Private, max-age=60 ,No-Store, ,")).toEqual(["private", "max-age", "no-store"]);
  });
});

describe("CacheKeyRule: what bypasses the cache", () => {
  const rule = new CacheKeyRule("x-session-id", []);

  it("a request with a body (its answer depends on what the key does not hold)", () => {
    expect(rule.request("", "GET", "/", ["content-length", "5"])).toBeUndefined();
    expect(rule.request("", "GET", "/", ["transfer-encoding", "chunked"])).toBeUndefined();
    expect(rule.request("", "GET", "/", ["content-length", "0"])).toBeDefined();
  });

  it("a key longer than MAX_KEY_CHARS (a huge credential): entries stay bounded in memory", () => {
    expect(rule.request("", "GET", "/", ["authorization", "a".repeat(MAX_KEY_CHARS)])).toBeUndefined();
    expect(rule.request("", "GET", "/", ["authorization", "a".repeat(1000)])).toBeDefined();
  });

  it("keys where the route sends the request: one target sent two ways is two entries", () => {
    expect(rule.request("ps-a /decide", "GET", "/d", [])?.key).not.toBe(
      rule.request("ps-b /decide", "GET", "/d", [])?.key,
    );
  });
});
