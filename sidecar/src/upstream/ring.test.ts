import { describe, expect, it } from "vitest";
import { buildRing, combineHashes, entriesPerHost, hash32, ringLookup } from "./ring.ts";

const hosts = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"].map((key) => ({ key }));

describe("ring hash", () => {
  it("maps a key to the same host every time and spreads keys over all hosts", () => {
    const ring = buildRing(hosts, entriesPerHost(3, 1024, 8_388_608));
    const seen = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const h = ringLookup(ring, hash32(`session-${i}`))!;
      expect(ringLookup(ring, hash32(`session-${i}`))).toBe(h);
      seen.set(h.key, (seen.get(h.key) ?? 0) + 1);
    }
    expect(seen.size).toBe(3);
    for (const n of seen.values()) expect(n).toBeGreaterThan(700);
  });

  it("moves only the keys of a removed host", () => {
    const full = buildRing(hosts, entriesPerHost(3, 1024, 8_388_608));
    const reduced = buildRing([hosts[0]!, hosts[2]!], entriesPerHost(3, 1024, 8_388_608));
    for (let i = 0; i < 2000; i++) {
      const h = hash32(`k${i}`);
      const before = ringLookup(full, h)!;
      const after = ringLookup(reduced, h)!;
      if (before !== hosts[1]) expect(after).toBe(before);
      else expect(after).not.toBe(hosts[1]);
    }
  });

  it("sizes the ring from the configured host count within the bounds", () => {
    expect(entriesPerHost(3, 1024, 8_388_608)).toBe(342);
    expect(entriesPerHost(4, 16, 8)).toBe(2);
    expect(entriesPerHost(0, 1024, 8_388_608)).toBe(1024);
  });

  it("is empty-safe and combines hashes like Envoy (rotate left, xor)", () => {
    const empty = buildRing<{ key: string }>([], 10);
    expect(empty.items.length).toBe(0);
    expect(ringLookup(empty, 5) === undefined).toBe(true);
    expect(combineHashes(undefined, 7)).toBe(7);
    expect(combineHashes(0x80000001, 0)).toBe(0x00000003);
  });
});
