// Panic routing without the known-unreachable: the pure set, then a cluster's picks as hosts leave
// rotation, become unreachable and come back; a retry's previous host; the wait list.
import { describe, expect, it } from "vitest";
import { clusterSchema } from "@tether/envoy";
import { createLogger } from "../log.ts";
import { Cluster } from "./cluster.ts";
import { Host } from "./host.ts";
import { HostWaitList } from "./host-wait.ts";
import { panicSet, withoutHost } from "./panic-set.ts";

function host(n: number, flags: { out?: boolean; unreachable?: boolean } = {}): Host {
  const h = new Host(`10.0.0.${n}`, 80, 0);
  h.outlierEjected = flags.out === true;
  h.unreachable = flags.unreachable === true;
  return h;
}

describe("panic set", () => {
  it("keeps healthy hosts and hosts that fail only at the HTTP level; drops the unreachable out of rotation", () => {
    const healthy = host(1);
    const healthyButLastConnectFailed = host(2, { unreachable: true });
    const httpFailing = host(3, { out: true });
    const unreachable = host(4, { out: true, unreachable: true });
    expect(panicSet([healthy, healthyButLastConnectFailed, httpFailing, unreachable])).toEqual([
      healthy,
      healthyButLastConnectFailed,
      httpFailing,
    ]);
    expect(panicSet([unreachable])).toEqual([]);
  });

  it("withoutHost drops the previous host only when another candidate remains", () => {
    const [a, b] = [host(1), host(2)];
    expect(withoutHost([a, b], a)).toEqual([b]);
    expect(withoutHost([a], a)).toEqual([a]);
    expect(withoutHost([a, b], undefined)).toEqual([a, b]);
  });
});

function cluster(ports: number[], lb = "ROUND_ROBIN", priorities?: number[]): Cluster {
  const endpoints = ports.map((port, i) => ({
    priority: priorities?.[i] ?? 0,
    lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }],
  }));
  const c = new Cluster(
    clusterSchema.parse({
      name: "backend",
      type: "STATIC",
      lb_policy: lb,
      load_assignment: { cluster_name: "backend", endpoints },
    }),
    { log: createLogger("silent"), random: Math.random, now: Date.now },
  );
  return c;
}

/** Takes `h` out of rotation as outlier detection does (the cluster recomputes). */
function eject(c: Cluster, h: Host): void {
  h.outlierEjected = true;
  c.onOutlierChanged(h, true);
}

function picks(c: Cluster, n: number, lastFailed?: Host, hash?: number): Set<number> {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const h = c.chooseHost(
      undefined,
      0,
      hash === undefined ? undefined : (hash + i * 0x9e3779b1) >>> 0,
      lastFailed,
    );
    if (h !== undefined) seen.add(h.port);
  }
  return seen;
}

describe("cluster: panic routing", () => {
  for (const lb of ["ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH"]) {
    it(`${lb}: with 1 of 3 healthy, picks never go to the 2 known unreachable`, async () => {
      const c = cluster([1001, 1002, 1003], lb);
      await c.start();
      const [a, b, d] = c.allHosts() as Host[];
      eject(c, b!);
      eject(c, d!);
      expect(c.priorityPlan().panic).toEqual([true]);
      // Out of rotation but answering connections (a broken health endpoint): panic spreads over all.
      const hash = lb === "RING_HASH" ? 12345 : undefined;
      expect(picks(c, 200, undefined, hash)).toEqual(new Set([1001, 1002, 1003]));
      c.onConnectResult(b!, false, false);
      c.onConnectResult(d!, false, false);
      expect(c.unreachableCount()).toBe(2);
      expect(picks(c, 200, undefined, hash)).toEqual(new Set([1001]));
      // A completed TCP handshake (here a check's) puts the host back into the panic set.
      c.onCheckReachability(b!, true);
      expect(picks(c, 200, undefined, hash)).toEqual(new Set([1001, 1002]));
      expect(a!.isHealthy()).toBe(true);
      await c.stop();
    });
  }

  it("with every host unreachable, routes to all of them as before (the request is held by its retries)", async () => {
    const c = cluster([1001, 1002]);
    await c.start();
    for (const h of c.allHosts()) {
      eject(c, h);
      c.onConnectResult(h, false, false);
    }
    expect(picks(c, 20)).toEqual(new Set([1001, 1002]));
    await c.stop();
  });

  it("moves to another level's reachable hosts when every host of the picked level is unreachable", async () => {
    // Both levels in panic (total panic: load follows host counts); level 0 is all unreachable.
    const c = cluster([1001, 1002, 1003], "ROUND_ROBIN", [0, 0, 1]);
    await c.start();
    for (const h of c.allHosts()) eject(c, h);
    const [a, b] = c.allHosts() as Host[];
    c.onConnectResult(a!, false, false);
    c.onConnectResult(b!, false, false);
    expect(picks(c, 50)).toEqual(new Set([1003]));
    await c.stop();
  });

  for (const lb of ["ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH"]) {
    it(`${lb}: a retry never picks the host it just failed on while another is there`, async () => {
      const c = cluster([1001, 1002, 1003], lb);
      await c.start();
      const [a] = c.allHosts() as Host[];
      const hash = lb === "RING_HASH" ? 777 : undefined;
      expect(picks(c, 300, a, hash).has(1001)).toBe(false);
      await c.stop();
    });
  }

  it("a single host is picked again by its retry (no other candidate)", async () => {
    const c = cluster([1001]);
    await c.start();
    const [a] = c.allHosts() as Host[];
    expect(c.chooseHost(undefined, 0, undefined, a)).toBe(a);
    await c.stop();
  });
});

describe("cluster: host reselection", () => {
  it("picks once when every host is to be avoided, however many reselects are allowed", async () => {
    const c = cluster([1001, 1002]);
    await c.start();
    const [a, b] = c.allHosts() as Host[];
    // Round robin: each pick moves the cursor. Five reselects would move it to 1001 next.
    expect(c.chooseHost([a!, b!], 5)).toBe(a);
    expect(c.chooseHost(undefined, 0)).toBe(b);
    // A count with no bound (host_selection_retry_max_attempts) costs one pick, not a billion.
    c.chooseHost([a!, b!], 1_000_000_000);
    expect(c.chooseHost(undefined, 0)).toBe(b);
    // With a host left outside `avoid`, reselects go on until they find it.
    expect(c.chooseHost([a!], 5)).toBe(b);
    await c.stop();
  });

  it("reselects at most once per host when `avoid` covers every host in rotation but not the cluster", async () => {
    const c = cluster([1001, 1002, 1003], "ROUND_ROBIN", [0, 0, 1]);
    await c.start();
    const [a, b] = c.allHosts() as Host[];
    // Picks draw from priority 0 only: a billion reselects would all land in `avoid`. Three hosts:
    // one pick and three reselects, so the cursor moved four times and the next pick is 1001 again.
    expect([a, b]).toContain(c.chooseHost([a!, b!], 1_000_000_000));
    expect(c.chooseHost(undefined, 0)).toBe(a);
    await c.stop();
  });
});

describe("cluster: held requests woken", () => {
  it("wakes every waiter once, after the event, when a connect succeeds or a host returns", async () => {
    const c = cluster([1001, 1002]);
    await c.start();
    const [a, b] = c.allHosts() as Host[];
    const woken: string[] = [];
    const w1 = { onHostAvailable: () => woken.push("w1") };
    const w2 = { onHostAvailable: () => woken.push("w2") };
    c.waitForHost(w1);
    c.waitForHost(w2);
    c.stopWaiting(w2);
    c.onConnectResult(a!, false, false); // a failure wakes no one
    await Promise.resolve();
    expect(woken).toEqual([]);
    c.onConnectResult(b!, true, true);
    expect(woken).toEqual([]); // not inside the connect callback
    await Promise.resolve();
    expect(woken).toEqual(["w1"]);
    expect(c.stats.held_requests_woken).toBe(1);

    c.waitForHost(w2);
    eject(c, b!);
    b!.outlierEjected = false;
    c.onOutlierChanged(b!, false); // back in rotation
    await Promise.resolve();
    expect(woken).toEqual(["w1", "w2"]);
    await c.stop();
  });

  it("HostWaitList: a waiter that joins again while being woken waits for the next wake-up", () => {
    const list = new HostWaitList();
    let calls = 0;
    const again = {
      onHostAvailable: (): void => {
        calls++;
        list.add(again);
      },
    };
    list.add(again);
    expect(list.wakeAll()).toBe(1);
    expect(calls).toBe(1);
    expect(list.size).toBe(1);
    list.clear();
    expect(list.wakeAll()).toBe(0);
  });
});
