import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { hashPolicySchema } from "@tether/envoy";
import { hash32 } from "../../upstream/ring.ts";
import { cookieValue, requestHash } from "./hash-policy.ts";

function req(
  headers: Record<string, string>,
  remoteAddress = "10.1.2.3",
  remotePort = 5000,
): IncomingMessage {
  return { headers, socket: { remoteAddress, remotePort } } as unknown as IncomingMessage;
}
const policies = (...p: unknown[]) => p.map((x) => hashPolicySchema.parse(x));

describe("hash_policy", () => {
  it("parses cookies, quoted or not", () => {
    expect(cookieValue('a=1; JSESSIONID="abc"; b=2', "JSESSIONID")).toBe("abc");
    expect(cookieValue("JSESSIONID=xyz", "JSESSIONID")).toBe("xyz");
    expect(cookieValue("XJSESSIONID=1", "JSESSIONID")).toBeUndefined();
    expect(cookieValue(undefined, "a")).toBeUndefined();
  });

  it("hashes a header or cookie; no value → no hash", () => {
    expect(requestHash(policies({ header: { header_name: "x-user" } }), req({ "x-user": "u1" })).hash).toBe(
      hash32("u1"),
    );
    expect(requestHash(policies({ header: { header_name: "x-user" } }), req({})).hash).toBeUndefined();
    expect(requestHash(policies({ cookie: { name: "S" } }), req({ cookie: "S=v" })).hash).toBe(hash32("v"));
  });

  it("generates the cookie when absent and a ttl is set, from the client address", () => {
    const r = requestHash(policies({ cookie: { name: "S", ttl: "0s" } }), req({}));
    const value = hash32("10.1.2.3:5000").toString(16).padStart(8, "0");
    expect(r.setCookie).toBe(`S="${value}"; HttpOnly`);
    expect(r.hash).toBe(hash32(value));
    // The generated cookie, sent back, hashes the same.
    expect(
      requestHash(policies({ cookie: { name: "S", ttl: "0s" } }), req({ cookie: `S="${value}"` })).hash,
    ).toBe(r.hash);
  });

  it("writes the cookie's Max-Age in whole seconds, and none under one second (Max-Age=0 deletes it)", () => {
    const value = hash32("10.1.2.3:5000").toString(16).padStart(8, "0");
    expect(requestHash(policies({ cookie: { name: "S", ttl: "90.5s", path: "/" } }), req({})).setCookie).toBe(
      `S="${value}"; Max-Age=90; Path=/; HttpOnly`,
    );
    expect(requestHash(policies({ cookie: { name: "S", ttl: "0.5s" } }), req({})).setCookie).toBe(
      `S="${value}"; HttpOnly`,
    );
  });

  it("combines policies and stops at a terminal one that produced a hash", () => {
    const both = requestHash(
      policies({ header: { header_name: "a" } }, { header: { header_name: "b" } }),
      req({ a: "1", b: "2" }),
    );
    const onlyA = requestHash(
      policies({ header: { header_name: "a" }, terminal: true }, { header: { header_name: "b" } }),
      req({ a: "1", b: "2" }),
    );
    expect(onlyA.hash).toBe(hash32("1"));
    expect(both.hash).not.toBe(onlyA.hash);
  });
});
