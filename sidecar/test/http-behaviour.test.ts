// HTTP behaviours through the built sidecar: pooling, idle close, safe retries, circuit breaking,
// malformed requests, timeouts.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Client, Pool, request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  httpListenerYaml,
  protocolOptionsYaml,
  routeYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  routes: string[],
  extra = "",
  endpoints = 1,
): Promise<{ ups: Upstream[]; s: Sidecar; listen: number }> {
  const ports = await Promise.all(Array.from({ length: endpoints }, () => freePort()));
  const [listen, admin] = await Promise.all([freePort(), freePort()]);
  const ups: Upstream[] = [];
  for (const [i, p] of ports.entries()) {
    const u = await new Upstream(p, `u${i}`).start();
    cleanups.push(() => u.kill());
    ups.push(u);
  }
  const yaml = bootstrapYaml(
    admin,
    httpListenerYaml(listen, routes),
    clusterYaml({ endpoints: ports.map((port) => ({ port })), extra }),
  );
  const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
  cleanups.push(() => s.stop());
  await s.start();
  return { ups, s, listen };
}

describe("http pooling", () => {
  it("serves 2000 sequential requests over 4 client connections with a handful of upstream connections", async () => {
    const { ups, s, listen } = await setup([routeYaml({})], protocolOptionsYaml("30s"));
    const clients = Array.from({ length: 4 }, () => new Client(`http://127.0.0.1:${listen}`));
    cleanups.push(async () => {
      await Promise.all(clients.map((c) => c.close()));
    });
    for (let i = 0; i < 2000; i++) {
      const res = await clients[i % 4]!.request({ path: `/r${i}`, method: "GET" });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    }
    const stats = await ups[0]!.stats();
    // Sequential requests need one pooled connection; allow a few for timing, plus the stats probe.
    expect(stats.connections).toBeLessThanOrEqual(5);
    expect(await s.metric("envoy_cluster_upstream_cx_total", "backend")).toBeLessThanOrEqual(4);
    expect(await s.metric("envoy_cluster_upstream_rq_total", "backend")).toBe(2000);
  });

  it("closes idle upstream connections after idle_timeout", async () => {
    const { ups, s, listen } = await setup([routeYaml({})], protocolOptionsYaml("0.3s"));
    const res = await request(`http://127.0.0.1:${listen}/x`);
    await res.body.text();
    expect(await s.metric("envoy_cluster_upstream_cx_active", "backend")).toBe(1);
    const t0 = performance.now();
    await waitFor(
      "upstream connection closed",
      async () => (await s.metric("envoy_cluster_upstream_cx_active", "backend")) === 0,
      5000,
    );
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThan(150);
    expect(await s.metric("envoy_cluster_upstream_cx_destroy_local", "backend")).toBe(1);
    await waitFor("upstream saw the close", async () => (await ups[0]!.stats()).openConnections === 1); // only the stats probe
  });

  it("sends a new connection after max_requests_per_connection", async () => {
    const { s, listen } = await setup([routeYaml({})], protocolOptionsYaml("30s", 10));
    const client = new Client(`http://127.0.0.1:${listen}`);
    cleanups.push(() => client.close());
    for (let i = 0; i < 30; i++) await (await client.request({ path: "/", method: "GET" })).body.text();
    expect(await s.metric("envoy_cluster_upstream_cx_total", "backend")).toBe(3);
  });
});

describe("safe retries", () => {
  it("never sends a POST twice on a reset-before-request route, but retries a GET on a reset route", async () => {
    const { ups, s, listen } = await setup([
      routeYaml({ method: "GET", retryOn: "connect-failure,reset", numRetries: 3 }),
      routeYaml({ retryOn: "connect-failure,reset-before-request", numRetries: 3 }),
    ]);
    const post = await request(`http://127.0.0.1:${listen}/reset`, { method: "POST", body: "decision=1" });
    expect(post.statusCode).toBe(503);
    expect(await post.body.text()).toContain("reset reason: connection termination");
    const get = await request(`http://127.0.0.1:${listen}/flaky`);
    expect(get.statusCode).toBe(200);
    await get.body.text();
    const paths = (await ups[0]!.stats()).paths;
    expect(paths["POST /reset"]).toBe(1);
    expect(paths["GET /flaky"]).toBe(2);
    expect(await s.metric("envoy_cluster_upstream_rq_retry", "backend")).toBe(1);
  });

  it("hides the stale keep-alive race from idempotent requests", async () => {
    const { ups, s, listen } = await setup([
      routeYaml({ method: "GET", retryOn: "connect-failure,reset", numRetries: 2 }),
    ]);
    const client = new Client(`http://127.0.0.1:${listen}`);
    cleanups.push(() => client.close());
    for (let i = 0; i < 20; i++) {
      const res = await client.request({ path: "/stale", method: "GET" });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    }
    // Every request after the first met a dead pooled connection and was retried on a fresh one.
    expect((await ups[0]!.stats()).paths["GET /stale"]).toBe(39);
    expect(await s.metric("envoy_cluster_upstream_rq_retry", "backend")).toBe(19);
  });

  it("retries a POST whose connection was refused (nothing was sent)", async () => {
    const { ups, s, listen } = await setup([
      routeYaml({ retryOn: "connect-failure,reset-before-request", numRetries: 50, backoff: "0.02s" }),
    ]);
    const u = ups[0]!;
    await u.kill();
    const pending = request(`http://127.0.0.1:${listen}/submit`, { method: "POST", body: "x" });
    await waitFor(
      "a refused connect",
      async () => (await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend")) >= 2,
    );
    await u.start();
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain("POST /submit 1");
    expect((await u.stats()).paths["POST /submit"]).toBe(1);
  });

  it("retries on 5xx status and honours per_try_timeout and the route timeout", async () => {
    const { ups, s, listen } = await setup([
      routeYaml({ retryOn: "5xx", numRetries: 2, perTryTimeout: "0.2s", timeout: "2s" }),
    ]);
    const st = await request(`http://127.0.0.1:${listen}/status?code=503`);
    expect(st.statusCode).toBe(503);
    await st.body.text();
    expect((await ups[0]!.stats()).paths["GET /status"]).toBe(3);
    const slow = await request(`http://127.0.0.1:${listen}/slow?ms=1000`);
    expect(slow.statusCode).toBe(504);
    await slow.body.text();
    expect(await s.metric("envoy_cluster_upstream_rq_per_try_timeout", "backend")).toBe(3);
  });

  it("answers 504 when the route timeout passes", async () => {
    const { s, listen } = await setup([routeYaml({ timeout: "0.2s" })]);
    const res = await request(`http://127.0.0.1:${listen}/slow?ms=2000`);
    expect(res.statusCode).toBe(504);
    expect(await res.body.text()).toBe("upstream request timeout");
    expect(await s.metric("envoy_cluster_upstream_rq_timeout", "backend")).toBe(1);
  });
});

describe("routing", () => {
  it("rewrites paths and sends retries to other hosts with previous_hosts", async () => {
    const ports = await Promise.all([freePort(), freePort()]);
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    for (const [i, p] of ports.entries()) {
      const u = await new Upstream(p, `u${i}`).start();
      cleanups.push(() => u.kill());
    }
    const routes = `                      - match: { prefix: "/weblogic/" }
                        route:
                          cluster: backend
                          prefix_rewrite: "/"
                      - match: { safe_regex: { regex: '.*\\.jsp' } }
                        route:
                          cluster: backend
                          regex_rewrite: { pattern: { regex: "^/(.*)$" }, substitution: '/jspfiles/\\1' }
                      - match: { prefix: "/" }
                        route:
                          cluster: backend
                          retry_policy:
                            retry_on: 5xx
                            num_retries: 1
                            retry_host_predicate:
                              - name: envoy.retry_host_predicates.previous_hosts
                                typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate }
                            host_selection_retry_max_attempts: 20`;
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, [routes]),
      clusterYaml({ endpoints: ports.map((port) => ({ port })), lbPolicy: "LEAST_REQUEST" }),
    );
    const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
    cleanups.push(() => s.stop());
    await s.start();
    const text = async (p: string): Promise<string> =>
      await (await request(`http://127.0.0.1:${listen}${p}`)).body.text();
    expect(await text("/weblogic/console?x=1")).toMatch(/ GET \/console /);
    expect(await text("/dir/page.jsp")).toMatch(/ GET \/jspfiles\/dir\/page.jsp /);
    for (let i = 0; i < 40; i++) {
      const res = await request(`http://127.0.0.1:${listen}/fail-on?name=u0`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe("u1");
    }
  });
});

describe("circuit breakers and bad input", () => {
  it("answers 503 with x-envoy-overloaded and counts pending overflow", async () => {
    const breakers = `      circuit_breakers:
        thresholds:
          - { max_connections: 2, max_pending_requests: 1, max_requests: 2 }
`;
    const { s, listen } = await setup([routeYaml({})], breakers);
    const pool = new Pool(`http://127.0.0.1:${listen}`, { connections: 6 });
    cleanups.push(() => pool.close());
    const results = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const res = await pool.request({ path: "/slow?ms=400", method: "GET" });
        await res.body.text();
        return { status: res.statusCode, overloaded: res.headers["x-envoy-overloaded"] };
      }),
    );
    const ok = results.filter((r) => r.status === 200).length;
    const overflow = results.filter((r) => r.status === 503);
    expect(ok).toBe(3); // 2 active + 1 pending
    expect(overflow.length).toBe(3);
    expect(overflow.every((r) => r.overloaded === "true")).toBe(true);
    expect(await s.metric("envoy_cluster_upstream_rq_pending_overflow", "backend")).toBe(3);
  });

  it("answers malformed HTTP with 400 and keeps serving", async () => {
    const { s, listen } = await setup([routeYaml({})]);
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(listen, "127.0.0.1", () => sock.write("GARBAGE\x01 / HTTP/9.9\r\n\r\n"));
      let data = "";
      sock.on("data", (c) => (data += c.toString()));
      sock.on("close", () => {
        resolve(data);
      });
      sock.on("error", reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    const res = await request(`http://127.0.0.1:${listen}/after`);
    expect(res.statusCode).toBe(200);
    await res.body.text();
    const m = await s.metrics();
    expect(
      m.get('envoy_http_downstream_cx_protocol_error{envoy_http_conn_manager_prefix="ingress_http"}'),
    ).toBe(1);
  });

  it("answers 404 when no route matches", async () => {
    const { listen } = await setup([routeYaml({ method: "GET" })]);
    const res = await request(`http://127.0.0.1:${listen}/x`, { method: "DELETE" });
    expect(res.statusCode).toBe(404);
    await res.body.text();
  });
});
