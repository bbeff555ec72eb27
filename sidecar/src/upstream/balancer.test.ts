import { describe, expect, it } from "vitest";
import { pickHost, type BalancerState } from "./balancer.ts";
import { Host } from "./host.ts";

const hosts = [new Host("10.0.0.1", 80, 0), new Host("10.0.0.2", 80, 0), new Host("10.0.0.3", 80, 0)];

describe("balancer", () => {
  it("round robin cycles through candidates per level", () => {
    const state: BalancerState = { rrCursor: [] };
    const picked = Array.from(
      { length: 6 },
      () => pickHost("ROUND_ROBIN", hosts, 0, state, Math.random, 2)?.address,
    );
    expect(picked).toEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    expect(pickHost("ROUND_ROBIN", hosts, 1, state, Math.random, 2)?.address).toBe("10.0.0.1");
  });

  it("least request picks the less loaded of the sampled hosts", () => {
    hosts[0]!.stats.rq_active = 5;
    hosts[1]!.stats.rq_active = 1;
    const draws = [0.0, 0.4]; // samples hosts[0] and hosts[1]
    let i = 0;
    const random = (): number => draws[i++ % draws.length]!;
    expect(pickHost("LEAST_REQUEST", hosts, 0, { rrCursor: [] }, random, 2)?.address).toBe("10.0.0.2");
    hosts[0]!.stats.rq_active = 0;
    hosts[1]!.stats.rq_active = 0;
  });

  it("least request with as many choices as hosts or more takes the least loaded of all, at once", () => {
    hosts[0]!.stats.rq_active = 3;
    hosts[1]!.stats.rq_active = 2;
    hosts[2]!.stats.rq_active = 1;
    // Draws that would sample hosts[0] every time: only a scan of all finds hosts[2].
    for (const count of [3, 1_000_000_000])
      expect(pickHost("LEAST_REQUEST", hosts, 0, { rrCursor: [] }, () => 0, count)?.address).toBe("10.0.0.3");
    for (const h of hosts) h.stats.rq_active = 0;
  });

  it("least request counts open tcp_proxy sessions too (least connections for brokers)", () => {
    const session = { close: () => undefined };
    hosts[0]!.sessions.add(session);
    const draws = [0.0, 0.4];
    let i = 0;
    const random = (): number => draws[i++ % draws.length]!;
    expect(pickHost("LEAST_REQUEST", hosts, 0, { rrCursor: [] }, random, 2)?.address).toBe("10.0.0.2");
    hosts[0]!.sessions.delete(session);
  });

  it("returns undefined with no candidates and the only host with one", () => {
    expect(pickHost("ROUND_ROBIN", [], 0, { rrCursor: [] }, Math.random, 2)).toBeUndefined();
    expect(pickHost("LEAST_REQUEST", [hosts[2]!], 0, { rrCursor: [] }, Math.random, 2)).toBe(hosts[2]);
  });
});
