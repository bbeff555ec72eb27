// Failover without waiting, through the built sidecar over real sockets:
// - 2 of 3 servers unreachable (their SYNs dropped on loopback, so a connect hangs until
//   connect_timeout): panic routing leaves them out, so no request waits for a connect to them;
// - the only server down 2 s and back: held requests (http) and held connections (tcp_proxy) resume
//   the moment it is back instead of sleeping out a back-off of up to 2 s.
// The unreachable case needs root and iptables; it is skipped with the reason otherwise.
import { execFileSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  httpListenerYaml,
  LineClient,
  routeYaml,
  Sidecar,
  tcpListenerYaml,
  Upstream,
  waitFor,
} from "./support/harness.ts";
import { steadyLoad } from "./support/load.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What the operator renders: fast checks while a host is down (docs/failover.md). */
const CHECK = `      health_checks:
        - timeout: 0.5s
          interval: 1s
          no_traffic_interval: 1s
          unhealthy_interval: 0.25s
          unhealthy_edge_interval: 0.25s
          healthy_edge_interval: 0.25s
          unhealthy_threshold: 2
          healthy_threshold: 1
          tcp_health_check: {}
`;
const BUDGET = `      circuit_breakers:
        thresholds:
          - retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: 16 }
`;
/** The operator's policy-server back-off: 250 ms doubling to 2 s. */
const BACKOFF_MAX = "2s";

async function upstream(port: number, name: string, mode: "http" | "tcp" = "http"): Promise<Upstream> {
  const u = await new Upstream(port, name, mode).start();
  cleanups.push(() => u.kill());
  return u;
}

async function sidecar(yaml: string, adminPort: number): Promise<Sidecar> {
  const s = new Sidecar(adminPort, Sidecar.writeConfig(yaml));
  cleanups.push(() => s.stop());
  return s.start();
}

/** A cluster of loopback servers with `connectTimeout` in place of the harness's 0.25 s. */
function cluster(ports: number[], connectTimeout: string): string {
  return clusterYaml({
    endpoints: ports.map((port) => ({ port })),
    healthCheck: CHECK,
    extra: BUDGET,
  }).replace("connect_timeout: 0.25s", `connect_timeout: ${connectTimeout}`);
}

function route(numRetries: number, timeout: string): string {
  return routeYaml({ retryOn: "connect-failure,reset", numRetries, timeout, backoff: "0.25s" }).replace(
    "max_interval: 0.2s",
    `max_interval: ${BACKOFF_MAX}`,
  );
}

// ---- iptables on loopback --------------------------------------------------------------------------

function iptablesUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return `needs Linux iptables (platform ${process.platform})`;
  if (process.getuid?.() !== 0) return "needs root to add an iptables rule on loopback";
  try {
    execFileSync("iptables", ["-w", "-L", "INPUT", "-n"], { stdio: "ignore" });
  } catch (err) {
    return `iptables is unavailable: ${(err as Error).message.split("\n")[0] ?? ""}`;
  }
  return undefined;
}

/** Drops new connections (SYNs) to 127.0.0.1:`port`, so a connect hangs; established ones still flow. */
function blackHole(port: number): void {
  const rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", String(port), "--syn", "-j", "DROP"];
  execFileSync("iptables", ["-w", "-I", ...rule]);
  cleanups.push(() => {
    execFileSync("iptables", ["-w", "-D", ...rule]);
  });
}

const noIptables = iptablesUnavailableReason();

describe.skipIf(noIptables !== undefined)(
  `2 of 3 servers unreachable${noIptables === undefined ? "" : ` — skipped: ${noIptables}`}`,
  () => {
    it("no request waits for a connect to them: none over 500 ms, 0 failed", async () => {
      const [pa, pb, pc, listen, admin] = await Promise.all([
        freePort(),
        freePort(),
        freePort(),
        freePort(),
        freePort(),
      ]);
      await upstream(pa, "a");
      await upstream(pb, "b");
      await upstream(pc, "c");
      const yaml = bootstrapYaml(
        admin,
        httpListenerYaml(listen, [route(5, "10s")]),
        cluster([pa, pb, pc], "1s"),
      );
      const s = await sidecar(yaml, admin);
      // A node lost: b and c still run, but nothing reaches them any more.
      blackHole(pb);
      blackHole(pc);
      await waitFor(
        "b and c out of rotation, known unreachable",
        async () =>
          (await s.healthFlags("backend", pb)).includes("/failed_active_hc") &&
          (await s.healthFlags("backend", pc)).includes("/failed_active_hc") &&
          (await s.metric("tether_upstream_hosts_unreachable", "backend")) === 2,
        10_000,
      );
      // 1 of 3 healthy is under the 50 % panic threshold: panic routing, which used to pick b and c.
      const load = steadyLoad(listen, 4);
      await waitFor(
        "400 requests answered",
        () => load.result.ok + load.result.failures.length >= 400,
        20_000,
      );
      const r = await load.stop();
      console.info(
        `2 of 3 unreachable: ${r.ok} ok, ${r.failures.length} failed, slowest ${Math.round(r.maxMs)} ms`,
      );
      expect(r.failures).toEqual([]);
      expect(r.maxMs).toBeLessThan(500);
      expect([...r.byUpstream.keys()]).toEqual(["a"]);
      expect(await s.metric("envoy_cluster_lb_healthy_panic", "backend")).toBeGreaterThan(0);
      expect(await s.metric("envoy_cluster_upstream_cx_connect_timeout", "backend")).toBe(0);
    });
  },
);

/** How long the server stays down: the scenario's outage, not a wait for an event. */
const OUTAGE_MS = 2000;

function outage(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
}

describe("the only server down 2 s and back", () => {
  it("http: the longest held request ends within outage + 300 ms, 0 failed", async () => {
    const [pa, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await upstream(pa, "a");
    const yaml = bootstrapYaml(admin, httpListenerYaml(listen, [route(100, "15s")]), cluster([pa], "1s"));
    const s = await sidecar(yaml, admin);
    // 12 clients: without the wake-up, one of them is all but sure to sleep > 300 ms past the restart.
    const load = steadyLoad(listen, 12);
    await waitFor("traffic", () => load.result.ok > 100);
    const killedAt = performance.now();
    await a.kill();
    await outage();
    await a.start();
    const restartedAt = performance.now();
    const okAtRestart = load.result.ok;
    await waitFor("traffic after the restart", () => load.result.ok > okAtRestart + 100);
    const r = await load.stop();
    const down = restartedAt - killedAt;
    console.info(
      `http, server down ${Math.round(down)} ms: ${r.ok} ok, ${r.failures.length} failed, longest ${Math.round(r.maxMs)} ms (outage + ${Math.round(r.maxMs - down)} ms), ${await s.metric("tether_held_requests_woken_total", "backend")} woken`,
    );
    expect(r.failures).toEqual([]);
    expect(r.maxMs).toBeLessThanOrEqual(down + 300);
    expect(await s.metric("tether_held_requests_woken_total", "backend")).toBeGreaterThan(0);
  });

  it("tcp_proxy: connections held in their connect back-off are relayed within 300 ms of the restart", async () => {
    const [pa, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await upstream(pa, "t0", "tcp");
    const yaml = bootstrapYaml(
      admin,
      tcpListenerYaml(
        listen,
        `\n                max_connect_attempts: 100\n                backoff_options: { base_interval: 0.25s, max_interval: ${BACKOFF_MAX} }`,
      ),
      cluster([pa], "1s"),
    );
    const s = await sidecar(yaml, admin);
    await a.kill();
    const clients = Array.from({ length: 5 }, () => new LineClient(listen, cleanups));
    await waitFor(
      "the held connections in their back-off",
      async () => (await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend")) >= 10,
    );
    await outage();
    await a.start();
    const restartedAt = performance.now();
    const answeredAfter = await Promise.all(
      clients.map(async (c) => {
        expect(await c.ask("whoami")).toBe("t0");
        return performance.now() - restartedAt;
      }),
    );
    const slowest = Math.max(...answeredAfter);
    console.info(`tcp_proxy: held connections answered ${Math.round(slowest)} ms after the restart at most`);
    expect(slowest).toBeLessThanOrEqual(300);
  });
});
