// HTTP through the built sidecar: failover when an endpoint dies under load, holding requests
// while the only endpoint restarts, priority failover and back.
import { afterEach, describe, expect, it } from "vitest";
import { Pool } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  healthCheckYaml,
  httpListenerYaml,
  routeYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";
import { steadyLoad } from "./support/load.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function upstream(port: number, name: string): Promise<Upstream> {
  const u = await new Upstream(port, name).start();
  cleanups.push(() => u.kill());
  return u;
}

async function sidecar(yaml: string, adminPort: number): Promise<Sidecar> {
  const s = new Sidecar(adminPort, Sidecar.writeConfig(yaml));
  cleanups.push(() => s.stop());
  return s.start();
}

describe("http failover", () => {
  it("keeps serving with 0 failures when one of two endpoints is killed under load", async () => {
    const [p1, p2, listen, admin] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const a = await upstream(p1, "a");
    await upstream(p2, "b");
    // The retry budget lets every in-flight request on the dead endpoint retry at once (the default
    // max_retries of 3 concurrent retries would fail the fourth).
    const outlier = `      outlier_detection: { consecutive_5xx: 2, interval: 0.1s, base_ejection_time: 1s, always_eject_one_host: true }
      circuit_breakers:
        thresholds:
          - retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: 8 }
`;
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, [routeYaml({ retryOn: "connect-failure,reset", numRetries: 5 })]),
      clusterYaml({
        endpoints: [{ port: p1 }, { port: p2 }],
        healthCheck: healthCheckYaml("tcp"),
        extra: outlier,
      }),
    );
    const s = await sidecar(yaml, admin);
    const load = steadyLoad(listen, 4);
    await waitFor(
      "traffic on both endpoints",
      () => (load.result.byUpstream.get("a") ?? 0) > 50 && (load.result.byUpstream.get("b") ?? 0) > 50,
    );
    await a.kill();
    const okAtKill = load.result.ok;
    await waitFor(
      "endpoint a marked unhealthy",
      async () => (await s.metric("envoy_cluster_membership_healthy", "backend")) === 1,
    );
    await waitFor("more traffic after the kill", () => load.result.ok > okAtKill + 300);
    const r = await load.stop();
    expect(r.failures).toEqual([]);
    expect(r.ok).toBeGreaterThan(400);
    expect(await s.metric("envoy_cluster_upstream_rq_retry_overflow", "backend")).toBe(0);
  });

  it("holds requests while the single endpoint restarts: 0 failures", async () => {
    const [p1, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await upstream(p1, "a");
    const budget = `      circuit_breakers:
        thresholds:
          - retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: 10 }
`;
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, [
        routeYaml({ retryOn: "connect-failure,reset", numRetries: 100, timeout: "10s", backoff: "0.02s" }),
      ]),
      clusterYaml({ endpoints: [{ port: p1 }], healthCheck: healthCheckYaml("tcp"), extra: budget }),
    );
    const s = await sidecar(yaml, admin);
    const load = steadyLoad(listen, 8);
    await waitFor("traffic", () => load.result.ok > 100);
    const killedAt = performance.now();
    await a.kill();
    // Let held requests pile up while nothing answers, then bring the endpoint back.
    await waitFor("requests held", async () => (await s.metric("tether_held_requests", "backend")) >= 4);
    await a.start();
    const restartedAt = performance.now();
    const okAtRestart = load.result.ok;
    await waitFor("traffic after restart", () => load.result.ok > okAtRestart + 100);
    const r = await load.stop();
    expect(r.failures).toEqual([]);
    // The longest request: the outage plus at most one back-off step (max 0.2 s), plus scheduling slack.
    expect(r.maxMs).toBeLessThan(restartedAt - killedAt + 200 + 400);
    expect(await s.metric("envoy_cluster_upstream_rq_retry", "backend")).toBeGreaterThan(0);
  });

  it("holds a burst of 300 concurrent requests through an outage with a retry budget", async () => {
    const [p1, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await upstream(p1, "a");
    const budget = `      circuit_breakers:
        thresholds:
          - retry_budget: { budget_percent: { value: 100 }, min_retry_concurrency: 3 }
`;
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, [
        routeYaml({ retryOn: "connect-failure,reset", numRetries: 1000, timeout: "20s", backoff: "0.05s" }),
      ]),
      clusterYaml({ endpoints: [{ port: p1 }], extra: budget }),
    );
    const s = await sidecar(yaml, admin);
    await a.kill();
    const client = new Pool(`http://127.0.0.1:${listen}`, { connections: 300 });
    cleanups.push(() => client.close());
    const burst = Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const res = await client.request({ path: `/held/${i}`, method: "GET" });
        await res.body.text();
        return res.statusCode;
      }),
    );
    // Every request is in the sidecar and has met the dead endpoint at least once.
    await waitFor(
      "all 300 requests in and retrying",
      async () => {
        const m = await s.metrics();
        return (
          m.get('envoy_http_downstream_rq_active{envoy_http_conn_manager_prefix="ingress_http"}') === 300 &&
          (m.get('envoy_cluster_upstream_rq_retry{envoy_cluster_name="backend"}') ?? 0) >= 300
        );
      },
      30_000,
    );
    expect(await s.metric("tether_held_requests", "backend")).toBeGreaterThan(0);
    await a.start();
    const statuses = await burst;
    expect(statuses.filter((x) => x !== 200)).toEqual([]);
    expect(await s.metric("envoy_cluster_upstream_rq_retry_overflow", "backend")).toBe(0);
  });

  it("ejects a dead endpoint by outlier detection alone (no health checks), with always_eject_one_host", async () => {
    const [p1, p2, listen, admin] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const a = await upstream(p1, "a");
    await upstream(p2, "b");
    const outlier = `      outlier_detection: { consecutive_5xx: 3, interval: 10s, base_ejection_time: 30s, always_eject_one_host: true }
`;
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, [routeYaml({ retryOn: "connect-failure", numRetries: 3 })]),
      clusterYaml({ endpoints: [{ port: p1 }, { port: p2 }], extra: outlier }),
    );
    const s = await sidecar(yaml, admin);
    const client = new Pool(`http://127.0.0.1:${listen}`, { connections: 1 });
    cleanups.push(() => client.close());
    const who = async (): Promise<string> => {
      const res = await client.request({ path: "/", method: "GET" });
      expect(res.statusCode).toBe(200);
      return (await res.body.text()).split(" ")[0] ?? "";
    };
    await a.kill();
    // Connect failures count as 503s: after three, a is ejected and every request goes to b.
    await waitFor("a ejected", async () => {
      await who();
      return (await s.metric("envoy_cluster_outlier_detection_ejections_active", "backend")) === 1;
    });
    const failsBefore = await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend");
    for (let i = 0; i < 20; i++) expect(await who()).toBe("b");
    expect(await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend")).toBe(failsBefore);
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(1);
  });

  it("fails over from priority 0 to priority 1 and back", async () => {
    const [p0, p1, listen, admin] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const primary = await upstream(p0, "primary");
    await upstream(p1, "secondary");
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, [routeYaml({ retryOn: "connect-failure,reset", numRetries: 5 })]),
      clusterYaml({
        endpoints: [
          { port: p0, priority: 0 },
          { port: p1, priority: 1 },
        ],
        healthCheck: healthCheckYaml("tcp", 0.1, 2, 2),
      }),
    );
    await sidecar(yaml, admin);
    const client = new Pool(`http://127.0.0.1:${listen}`, { connections: 1 });
    cleanups.push(() => client.close());
    const who = async (): Promise<string> => {
      const res = await client.request({ path: "/", method: "GET" });
      return (await res.body.text()).split(" ")[0] ?? "";
    };
    for (let i = 0; i < 20; i++) expect(await who()).toBe("primary");
    await primary.kill();
    await waitFor("traffic on secondary", async () => (await who()) === "secondary");
    for (let i = 0; i < 20; i++) expect(await who()).toBe("secondary");
    await primary.start();
    await waitFor("traffic back on primary", async () => (await who()) === "primary");
    for (let i = 0; i < 20; i++) expect(await who()).toBe("primary");
  });
});
