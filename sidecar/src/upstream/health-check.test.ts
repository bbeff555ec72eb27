// The health checker against real servers on 127.0.0.1, its schedule on an injected clock: a refused
// check takes a host out at once (other failure classes wait for unhealthy_threshold), and out-of-band
// checks run at once, never overlap, and are rate-limited per host.
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { healthCheckSchema } from "@tether/envoy";
import { createLogger } from "../log.ts";
import {
  HealthChecker,
  type CheckClock,
  type HealthCheckOwner,
  type HealthCheckTransition,
} from "./health-check.ts";
import { Host } from "./host.ts";
import { ClusterStats } from "./stats.ts";

/** Timers that fire only when the test advances the clock. */
class ManualClock implements CheckClock {
  t = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** When the armed timers fire. */
  due(): number[] {
    return [...this.timers.values()].map((x) => x.at).sort((a, b) => a - b);
  }

  /** Moves time to `to`, firing the timers due on the way in order. */
  advanceTo(to: number): void {
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (first === undefined || entry[1].at < first[1].at) first = entry;
      if (first === undefined || first[1].at > to) break;
      this.timers.delete(first[0]);
      this.t = first[1].at;
      first[1].fn();
    }
    this.t = to;
  }
}

interface Events {
  changes: { healthy: boolean; failure: HealthCheckTransition | undefined }[];
  confirmed: HealthCheckTransition[];
}

function owner(): HealthCheckOwner & Events {
  const changes: Events["changes"] = [];
  const confirmed: HealthCheckTransition[] = [];
  return {
    name: "backend",
    log: createLogger("silent"),
    stats: new ClusterStats(),
    hadTraffic: true,
    changes,
    confirmed,
    onActiveHealthChanged: (_host, healthy, failure) => changes.push({ healthy, failure }),
    onActiveHealthConfirmed: (_host, failure) => confirmed.push(failure),
    onActiveHealthPassed: () => undefined,
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function checker(config: object, o: HealthCheckOwner, clock: CheckClock): HealthChecker {
  const hc = new HealthChecker(healthCheckSchema.parse(config), o, undefined, clock);
  cleanups.push(() => {
    hc.stop();
  });
  return hc;
}

/** Polls `cond` until true; fails after 5 s. For results of real sockets. */
async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function checksDone(o: HealthCheckOwner): number {
  return o.stats.counters.health_check_success + o.stats.counters.health_check_failure;
}

type Mode = "ok" | "status" | "reset" | "hang";

/** An HTTP server whose /healthz answers per `mode`; counts TCP connections. */
interface TestServer {
  port: number;
  mode: Mode;
  connections: number;
  /** Connections open now. */
  open(): number;
  /** Closes every connection from the server's side (as an idle timeout does). */
  dropConnections(): void;
  stopListening(): void;
  listenAgain(): Promise<void>;
}

async function httpServer(): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const state: TestServer = {
    port: 0,
    mode: "ok",
    connections: 0,
    open: () => sockets.size,
    dropConnections: () => {
      for (const sock of sockets) sock.end();
    },
    stopListening: () => {
      server.close();
    },
    listenAgain: () =>
      new Promise<void>((resolve) => {
        server.listen(state.port, "127.0.0.1", resolve);
      }),
  };
  const server = http.createServer((req, res) => {
    if (state.mode === "ok") res.end("ok");
    else if (state.mode === "status") {
      res.statusCode = 503;
      res.end("draining");
    } else if (state.mode === "reset") req.socket.resetAndDestroy();
    // hang: never answer
  });
  server.on("connection", (s: net.Socket) => {
    state.connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.port = (server.address() as net.AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
        if (!server.listening) resolve();
      }),
  );
  return state;
}

const HTTP_CHECK = { path: "/healthz" };

/** A check config: 1 s timeout and interval, thresholds 2 and 1, unless `over` says otherwise. */
function hcConfig(kind: "http" | "tcp", over: Record<string, unknown> = {}): object {
  return {
    timeout: "1s",
    interval: "1s",
    unhealthy_threshold: 2,
    healthy_threshold: 1,
    ...(kind === "http" ? { http_health_check: HTTP_CHECK } : { tcp_health_check: {} }),
    ...over,
  };
}

/** A checker with one host on a fresh server, after that host's first (passing) check. */
async function checkedHost(config: object): Promise<{
  server: TestServer;
  clock: ManualClock;
  o: ReturnType<typeof owner>;
  host: Host;
  hc: HealthChecker;
}> {
  const server = await httpServer();
  const clock = new ManualClock();
  const o = owner();
  const host = new Host("127.0.0.1", server.port, 0);
  const hc = checker(config, o, clock);
  hc.addHost(host);
  await until("the first check", () => checksDone(o) === 1);
  return { server, clock, o, host, hc };
}

describe("health check: a refused check is definitive", () => {
  it("takes a healthy host out at the first refused check and confirms it at unhealthy_threshold", async () => {
    const { server, clock, o, host } = await checkedHost(hcConfig("http", { unhealthy_threshold: 3 }));
    const interval = 1000;
    expect(host.failedActiveHc).toBe(false);

    server.stopListening(); // nothing listens on the port any more: connects are refused
    clock.advanceTo(interval);
    await until("the second check", () => checksDone(o) === 2);
    expect(host.failedActiveHc).toBe(true);
    expect(
      o.changes.map((c) => [c.healthy, c.failure?.cls, c.failure?.consecutiveFailures, c.failure?.confirmed]),
    ).toEqual([
      [true, undefined, undefined, undefined],
      [false, "refused", 1, false],
    ]);
    expect(o.stats.healthCheckFailures.refused).toBe(1);

    clock.advanceTo(2 * interval);
    await until("the third check", () => checksDone(o) === 3);
    expect(o.confirmed).toEqual([]);
    clock.advanceTo(3 * interval);
    await until("the fourth check", () => checksDone(o) === 4);
    expect(o.confirmed.map((f) => [f.cls, f.consecutiveFailures, f.confirmed])).toEqual([
      ["refused", 3, true],
    ]);
    expect(o.changes).toHaveLength(2);
  });

  it.each([
    ["status", "status"],
    ["reset", "reset"],
    ["hang", "timeout"],
  ] as const)(
    "a %s failure keeps Envoy's threshold: out after unhealthy_threshold (class %s)",
    async (mode, cls) => {
      const { server, clock, o, host } = await checkedHost(
        hcConfig("http", { timeout: "0.1s", unhealthy_threshold: 3 }),
      );
      server.mode = mode;
      for (let i = 1; i <= 3; i++) {
        expect(host.failedActiveHc).toBe(false);
        clock.advanceTo(i * 1000);
        await until(`failure ${i}`, () => checksDone(o) === i + 1);
      }
      expect(host.failedActiveHc).toBe(true);
      expect(o.changes.at(-1)?.failure).toMatchObject({ cls, consecutiveFailures: 3, confirmed: true });
      expect(o.confirmed).toEqual([]);
    },
  );

  it("brings a host taken out by a refusal back after healthy_threshold passes", async () => {
    const { server, clock, o, host } = await checkedHost(hcConfig("tcp", { healthy_threshold: 2 }));
    server.stopListening();
    clock.advanceTo(1000);
    await until("the refused check", () => checksDone(o) === 2);
    expect(host.failedActiveHc).toBe(true);
    await server.listenAgain();
    clock.advanceTo(2000);
    await until("the first pass", () => checksDone(o) === 3);
    expect(host.failedActiveHc).toBe(true);
    clock.advanceTo(3000);
    await until("the second pass", () => checksDone(o) === 4);
    expect(host.failedActiveHc).toBe(false);
    expect(o.changes.map((c) => c.healthy)).toEqual([true, false, true]);
    expect(o.confirmed).toEqual([]);
  });

  it("leaves a host not yet admitted out on a refusal, reporting no change", async () => {
    const clock = new ManualClock();
    const o = owner();
    const closed = await httpServer();
    closed.stopListening();
    const host = new Host("127.0.0.1", closed.port, 0);
    checker(hcConfig("tcp"), o, clock).addHost(host);
    await until("the first check", () => checksDone(o) === 1);
    expect(host.failedActiveHc).toBe(true);
    expect(o.changes).toEqual([]);
  });
});

describe("health check: out-of-band checks", () => {
  it("run at once, never overlap a running check, and at most one per host per max(250 ms, interval / 4)", async () => {
    // interval 2 s → at most one out-of-band check per 500 ms.
    const { server, clock, o, host, hc } = await checkedHost(hcConfig("http", { interval: "2s" }));
    expect(clock.due()).toEqual([2000]);
    const attempts = (): number => o.stats.counters.health_check_attempt;
    const immediate = o.stats.immediateHealthChecks;

    clock.t = 1000;
    hc.checkSoon(host, "remote_close");
    expect(attempts()).toBe(2); // at once, without waiting for the 2 s schedule
    expect(immediate.remote_close).toBe(1);
    expect(clock.due()).toEqual([]); // the regular check waits for this one
    hc.checkSoon(host, "connect_refused"); // while it runs: no second check at the same time
    hc.checkSoon(host, "remote_reset");
    expect(attempts()).toBe(2);
    await until("the out-of-band check", () => checksDone(o) === 2);
    // The ask made while it ran: brought forward to 500 ms after the last out-of-band check.
    expect(clock.due()).toEqual([1500]);
    expect(server.connections).toBe(1); // both on one kept connection (reuse_connection)

    clock.advanceTo(1200);
    hc.checkSoon(host, "remote_reset"); // within the 500 ms: the armed check covers it
    expect(clock.due()).toEqual([1500]);
    clock.advanceTo(1499);
    expect(attempts()).toBe(2);
    clock.advanceTo(1500);
    expect(attempts()).toBe(3);
    expect({ ...immediate }).toEqual({
      remote_close: 1,
      remote_reset: 0,
      connect_refused: 1,
      connect_reset: 0,
    });
    await until("the deferred check", () => checksDone(o) === 3);
    expect(clock.due()).toEqual([3500]); // the regular schedule restarts from it

    clock.advanceTo(2100); // 600 ms after the last out-of-band check: at once again
    hc.checkSoon(host, "connect_reset");
    expect(attempts()).toBe(4);
    await until("the fourth check", () => checksDone(o) === 4);
    expect(o.stats.counters.health_check_success).toBe(4);

    // The server goes: the next out-of-band check is refused and takes the host out at once.
    server.stopListening();
    clock.advanceTo(2700);
    hc.checkSoon(host, "remote_close");
    await until("the refused check", () => checksDone(o) === 5);
    expect(host.failedActiveHc).toBe(true);
    expect(o.changes.at(-1)).toMatchObject({ healthy: false, failure: { cls: "refused", confirmed: false } });
    // Out of rotation: more signals ask for nothing; the schedule checks it.
    clock.advanceTo(3300);
    hc.checkSoon(host, "connect_refused");
    expect(attempts()).toBe(5);
    expect(clock.due()).toEqual([4700]);
  });

  it("with a short interval the 250 ms floor applies and a sooner regular check stands in", async () => {
    const { clock, o, host, hc } = await checkedHost(hcConfig("tcp", { timeout: "0.05s", interval: "0.1s" }));
    clock.t = 50;
    hc.checkSoon(host, "remote_close");
    await until("the out-of-band check", () => checksDone(o) === 2);
    expect(clock.due()).toEqual([150]);
    clock.advanceTo(100);
    hc.checkSoon(host, "remote_close"); // the floor would allow one at 300: the regular one at 150 is sooner
    expect(clock.due()).toEqual([150]);
    clock.advanceTo(150);
    await until("the regular check", () => checksDone(o) === 3);
    expect(o.stats.immediateHealthChecks.remote_close).toBe(1);
    expect(o.stats.counters.health_check_attempt).toBe(3);
    clock.advanceTo(250); // the next regular check
    await until("the next regular check", () => checksDone(o) === 4);
    clock.t = 320; // 270 ms after the last out-of-band check, before the regular one at 350
    hc.checkSoon(host, "remote_close");
    expect(o.stats.counters.health_check_attempt).toBe(5);
    expect(o.stats.immediateHealthChecks.remote_close).toBe(2);
    await until("the last check", () => checksDone(o) === 5);
  });

  it("follow a failed out-of-band check 50 ms later until the host passes or leaves rotation", async () => {
    const { server, clock, o, host, hc } = await checkedHost(
      hcConfig("http", { interval: "2s", unhealthy_threshold: 3 }),
    );
    server.mode = "status"; // e.g. a server answering 503 while it drains
    clock.t = 1000;
    hc.checkSoon(host, "remote_close");
    await until("the out-of-band check", () => checksDone(o) === 2);
    expect(clock.due()).toEqual([1050]); // in place of the regular check
    clock.advanceTo(1050);
    await until("the first follow-up", () => checksDone(o) === 3);
    expect(host.failedActiveHc).toBe(false);
    expect(clock.due()).toEqual([1100]);
    clock.advanceTo(1100);
    await until("the second follow-up", () => checksDone(o) === 4);
    expect(host.failedActiveHc).toBe(true); // unhealthy_threshold 3, in 100 ms instead of 3 intervals
    expect(o.changes.at(-1)?.failure).toMatchObject({ cls: "status", confirmed: true });
    expect(clock.due()).toEqual([3100]); // no more follow-ups: the schedule checks it
    expect(o.stats.immediateHealthChecks.remote_close).toBe(3);

    // A follow-up that passes ends it.
    server.mode = "ok";
    clock.advanceTo(3100);
    await until("the regular check", () => checksDone(o) === 5);
    expect(host.failedActiveHc).toBe(false);
    server.mode = "reset";
    clock.t = 3200;
    hc.checkSoon(host, "connect_reset");
    await until("a reset look", () => checksDone(o) === 6);
    server.mode = "ok";
    clock.advanceTo(3250);
    await until("its follow-up", () => checksDone(o) === 7);
    expect(o.stats.counters.health_check_success).toBe(3);
    expect(clock.due()).toEqual([5250]);
  });

  it("after a failed check, a sign checks at once, whatever the gap", async () => {
    const { server, clock, o, host, hc } = await checkedHost(hcConfig("http", { unhealthy_threshold: 3 }));
    // The race of a server closing its idle connections an instant before its listener: the first
    // look is reset; the refused connect that follows takes the host out at once.
    server.mode = "reset";
    clock.t = 100;
    hc.checkSoon(host, "remote_close");
    await until("the reset look", () => checksDone(o) === 2);
    expect(clock.due()).toEqual([150]);
    server.stopListening();
    clock.t = 120; // within the 250 ms gap and before the follow-up
    hc.checkSoon(host, "connect_refused");
    expect(o.stats.counters.health_check_attempt).toBe(3);
    await until("the refused check", () => checksDone(o) === 3);
    expect(host.failedActiveHc).toBe(true);
    expect(o.changes.at(-1)?.failure).toMatchObject({
      cls: "refused",
      consecutiveFailures: 2,
      confirmed: false,
    });
    expect(clock.due()).toEqual([1120]);
  });

  it("ignores asks for hosts it does not check and after stop", async () => {
    const server = await httpServer();
    const clock = new ManualClock();
    const o = owner();
    const host = new Host("127.0.0.1", server.port, 0);
    const hc = checker(hcConfig("tcp"), o, clock);
    hc.checkSoon(new Host("127.0.0.1", server.port, 0), "remote_close");
    expect(o.stats.counters.health_check_attempt).toBe(0);
    hc.addHost(host);
    await until("the first check", () => checksDone(o) === 1);
    hc.stop();
    hc.checkSoon(host, "remote_close");
    expect(o.stats.counters.health_check_attempt).toBe(1);
    expect(clock.due()).toEqual([]);
  });
});

describe("health check: one connection per host (reuse_connection)", () => {
  /** Runs checks 2..n on the clock, each waited for. */
  async function runChecks(clock: ManualClock, o: HealthCheckOwner, n: number): Promise<void> {
    for (let i = 2; i <= n; i++) {
      clock.advanceTo((i - 1) * 1000);
      await until(`check ${i}`, () => checksDone(o) === i);
    }
  }

  it("keeps one connection for every HTTP check by default", async () => {
    const { server, clock, o } = await checkedHost(hcConfig("http"));
    await runChecks(clock, o, 5);
    expect(o.stats.counters.health_check_success).toBe(5);
    expect(server.connections).toBe(1);
    expect(server.open()).toBe(1);
  });

  it("opens one connection per check with reuse_connection: false, and tcp checks never keep theirs", async () => {
    const http = await checkedHost(hcConfig("http", { reuse_connection: false }));
    await runChecks(http.clock, http.o, 5);
    expect(http.o.stats.counters.health_check_success).toBe(5);
    expect(http.server.connections).toBe(5);
    const tcp = await checkedHost(hcConfig("tcp"));
    await runChecks(tcp.clock, tcp.o, 3);
    expect(tcp.server.connections).toBe(3);
  });

  it("passes on a new connection when the server closed the kept one", async () => {
    const { server, clock, o } = await checkedHost(hcConfig("http"));
    server.dropConnections();
    await until("the server's close", () => server.open() === 0);
    await runChecks(clock, o, 2);
    // And when the close crosses the next request (no time to see the FIN first): still a pass.
    server.dropConnections();
    clock.advanceTo(2000);
    await until("check 3", () => checksDone(o) === 3);
    expect(o.stats.counters.health_check_failure).toBe(0);
    expect(server.connections).toBe(3);
  });

  it("closes the kept connection on a failed check, and when the host goes away", async () => {
    const { server, clock, o, host, hc } = await checkedHost(hcConfig("http"));
    server.mode = "status";
    await runChecks(clock, o, 2);
    expect(o.stats.counters.health_check_failure).toBe(1);
    await until("the failed check's connection to close", () => server.open() === 0);
    server.mode = "ok";
    await runChecks(clock, o, 3);
    expect(server.connections).toBe(2);
    expect(server.open()).toBe(1);
    hc.removeHost(host);
    await until("the kept connection to close", () => server.open() === 0);
  });
});
