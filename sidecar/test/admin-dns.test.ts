// Admin endpoints, Envoy-named metrics, connection logs, and a STRICT_DNS cluster.
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import { ADMIN_KEEP_ALIVE_MS } from "../src/admin/server.ts";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  healthCheckYaml,
  httpListenerYaml,
  makeCertificates,
  oneRouteYaml,
  routeYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Sends `text` on a fresh connection; what came back, and how long after the send it closed. */
function rawExchange(port: number, text: string): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    let got = "";
    let sentAt = 0;
    const c = net.connect(port, "127.0.0.1", () => {
      sentAt = performance.now();
      c.write(text);
    });
    c.on("data", (d: Buffer) => (got += d.toString()));
    c.on("error", reject);
    c.on("close", () => {
      resolve({ text: got, closedAfterMs: performance.now() - sentAt });
    });
  });
}

describe("admin", () => {
  it("serves /ready, /clusters (text and JSON), /config_dump and Envoy-named metrics", async () => {
    const [pa, pdead, listen, admin] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    cleanups.push(() => a.kill());
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        bootstrapYaml(
          admin,
          httpListenerYaml(listen, [routeYaml({ retryOn: "connect-failure", numRetries: 3 })]),
          clusterYaml({ endpoints: [{ port: pa }, { port: pdead }], healthCheck: healthCheckYaml("http") }),
        ),
      ),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const ready = await request(`http://127.0.0.1:${admin}/ready`);
    expect(ready.statusCode).toBe(200);
    expect(await ready.body.text()).toBe("LIVE\n");

    for (let i = 0; i < 10; i++) expect((await request(`http://127.0.0.1:${listen}/`)).statusCode).toBe(200);

    const text = await (await request(`http://127.0.0.1:${admin}/clusters`)).body.text();
    expect(text).toContain(`backend::127.0.0.1:${pa}::health_flags::healthy`);
    expect(text).toContain(`backend::127.0.0.1:${pdead}::health_flags::/failed_active_hc`);
    expect(text).toMatch(new RegExp(`backend::127.0.0.1:${pa}::rq_total::(\\d+)`));
    const json = (await (await request(`http://127.0.0.1:${admin}/clusters?format=json`)).body.json()) as {
      cluster_statuses: {
        name: string;
        host_statuses: { healthy: boolean; stats: { name: string; value: number }[] }[];
      }[];
    };
    const hosts = json.cluster_statuses[0]!.host_statuses;
    expect(hosts.map((h) => h.healthy)).toEqual([true, false]);
    expect(hosts[0]!.stats.find((x) => x.name === "rq_total")!.value).toBe(10);

    const dump = (await (await request(`http://127.0.0.1:${admin}/config_dump`)).body.json()) as {
      configs: { bootstrap: { static_resources: { clusters: { name: string }[] } } }[];
    };
    expect(dump.configs[0]!.bootstrap.static_resources.clusters[0]!.name).toBe("backend");

    const m = await s.metrics();
    expect(m.get('envoy_cluster_membership_healthy{envoy_cluster_name="backend"}')).toBe(1);
    expect(m.get('envoy_cluster_membership_total{envoy_cluster_name="backend"}')).toBe(2);
    expect(
      m.get('envoy_cluster_upstream_rq_xx{envoy_cluster_name="backend",envoy_response_code_class="2"}'),
    ).toBe(10);
    expect(m.get('envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_http"}')).toBe(10);
    expect(m.get('envoy_cluster_upstream_rq_time_count{envoy_cluster_name="backend"}')).toBe(10);
    expect(
      m.get(
        'envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="ingress_http",envoy_response_code_class="2"}',
      ),
    ).toBe(10);
    expect(m.has("process_resident_memory_bytes")).toBe(true);
    // The loop sampled every 50 ms: each interval is the 50 ms plus however late the loop ran it.
    await waitFor("an event loop sample", async () =>
      (await s.metrics()).has("nodejs_eventloop_lag_p50_seconds"),
    );
    const lag = await s.metrics();
    expect(lag.get("nodejs_eventloop_lag_min_seconds")).toBeGreaterThanOrEqual(0.045);
    expect(lag.get("nodejs_eventloop_lag_p50_seconds")).toBeGreaterThanOrEqual(
      lag.get("nodejs_eventloop_lag_min_seconds")!,
    );
    expect(lag.get("nodejs_eventloop_lag_max_seconds")).toBeGreaterThanOrEqual(
      lag.get("nodejs_eventloop_lag_p99_seconds")!,
    );
    const same = await (await request(`http://127.0.0.1:${admin}/metrics`)).body.text();
    expect(same).toContain("# TYPE envoy_cluster_upstream_cx_active gauge");

    // Logs: JSON lines with connection ids.
    await waitFor("connection log lines", () => s.logs.includes('"msg":"downstream connection open"'));
    const open = s.logs.split("\n").find((l) => l.includes('"msg":"upstream connection open"'));
    const openLog = JSON.parse(open!) as { conn: string; upstream: string };
    expect(openLog.conn).toMatch(/^u\d+$/);
    expect(openLog.upstream).toBe(`127.0.0.1:${pa}`);
  });

  it("answers unknown paths 404, wrong methods 405 with Allow, HEAD like GET, and refuses bad bodies", async () => {
    const [pa, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    cleanups.push(() => a.kill());
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(oneRouteYaml(admin, listen, { endpoints: [{ port: pa }] })),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const call = async (
      method: "GET" | "HEAD" | "POST" | "PUT",
      path: string,
      init: { body?: string; type?: string } = {},
    ): Promise<{ status: number; headers: Record<string, unknown>; body: string }> => {
      const res = await request(`http://127.0.0.1:${admin}${path}`, {
        method,
        ...(init.body === undefined ? {} : { body: init.body }),
        ...(init.type === undefined ? {} : { headers: { "content-type": init.type } }),
      });
      return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
    };
    const missing = await call("GET", "/nope");
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toEqual({
      statusCode: 404,
      error: "Not Found",
      message: "Route GET:/nope not found",
    });
    const wrong = await call("POST", "/ready");
    expect(wrong.status).toBe(405);
    expect(wrong.headers["allow"]).toBe("GET, HEAD");
    expect(JSON.parse(wrong.body)).toMatchObject({ statusCode: 405, error: "Method Not Allowed" });
    expect((await call("GET", "/notifications")).headers["allow"]).toBe("POST");
    const head = await call("HEAD", "/ready");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe("5");
    expect(head.body).toBe("");
    const metrics = await call("GET", "/stats/prometheus?usedonly");
    expect(metrics.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(metrics.body).toMatch(/^process_cpu_seconds_total \d/m);
    expect(metrics.body).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
    // No decision cache with notifications here: the body is read and checked before that answer.
    expect((await call("POST", "/notifications", { body: "x=1", type: "text/plain" })).status).toBe(415);
    expect((await call("POST", "/notifications", { body: "{", type: "application/json" })).status).toBe(400);
    const big = await call("POST", "/notifications", {
      body: "x".repeat(1024 * 1024 + 1),
      type: "application/json",
    });
    expect(big.status).toBe(413);
    expect((await call("POST", "/notifications", { body: "{}", type: "application/json" })).status).toBe(404);
    expect((await call("GET", "/ready")).body).toBe("LIVE\n");
    // A request target that is no URL at all: the client's error (400), not the server's.
    const raw = await new Promise<string>((resolve) => {
      let got = "";
      const c = net.connect(admin, "127.0.0.1", () =>
        c.write("GET http://[/ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
      );
      c.on("data", (d: Buffer) => (got += d.toString()));
      c.on("close", () => {
        resolve(got);
      });
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(raw).toContain('"message":"the request target is not a valid path"');
    // A head the parser refuses: node:http's bare answer, then the connection closes.
    const malformed = await rawExchange(admin, "GET /ready HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n");
    expect(malformed.text).toBe("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    // Keep-alive: answered, then closed after ADMIN_KEEP_ALIVE_MS with no further request.
    const kept = await rawExchange(admin, "GET /ready HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(kept.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*LIVE\n$/);
    expect(kept.text).toContain("Connection: keep-alive\r\n");
    expect(kept.closedAfterMs).toBeGreaterThanOrEqual(ADMIN_KEEP_ALIVE_MS - 100);
    expect(kept.closedAfterMs).toBeLessThan(ADMIN_KEEP_ALIVE_MS + 2500);
  });

  it("sums the stats of listeners that share a stat_prefix into one series, as Envoy shares them", async () => {
    const [pa, one, two, admin] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    cleanups.push(() => a.kill());
    // Both listeners keep the helper's stat_prefix (ingress_http).
    const listeners = `${httpListenerYaml(one, [routeYaml({})], "one")}\n${httpListenerYaml(two, [routeYaml({})], "two")}`;
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(bootstrapYaml(admin, listeners, clusterYaml({ endpoints: [{ port: pa }] }))),
    );
    cleanups.push(() => s.stop());
    await s.start();
    for (const [port, n] of [
      [one, 2],
      [two, 3],
    ] as const) {
      for (let i = 0; i < n; i++) {
        const res = await request(`http://127.0.0.1:${port}/x`);
        await res.body.text();
      }
    }
    const text = await (await request(`http://127.0.0.1:${admin}/stats/prometheus`)).body.text();
    const rqTotal = text.split("\n").filter((l) => l.startsWith("envoy_http_downstream_rq_total{"));
    expect(rqTotal).toEqual([
      'envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_http"} 5',
    ]);
    const count = text.split("\n").filter((l) => l.startsWith("envoy_http_downstream_rq_time_count{"));
    expect(count).toEqual([
      'envoy_http_downstream_rq_time_count{envoy_http_conn_manager_prefix="ingress_http"} 5',
    ]);
    // A reload that removes one of them leaves the counts it added: a counter never goes back.
    writeFileSync(
      s.configFile,
      bootstrapYaml(
        admin,
        httpListenerYaml(one, [routeYaml({})], "one"),
        clusterYaml({ endpoints: [{ port: pa }] }),
      ),
    );
    await waitFor("the reload applied", async () =>
      (await s.metrics()).get('tether_config_reload_total{result="success"}') === 1 ? true : undefined,
    );
    expect(
      (await s.metrics()).get(
        'envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_http"}',
      ),
    ).toBe(5);
  });

  it("/config_dump shows [redacted] in place of an inline private key", async () => {
    const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const certs = makeCertificates();
    const key = readFileSync(certs.clientKey, "utf8");
    const cert = readFileSync(certs.clientCert, "utf8");
    const tls = `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          common_tls_context:
            tls_certificates:
              - certificate_chain: { inline_string: ${JSON.stringify(cert)} }
                private_key: { inline_string: ${JSON.stringify(key)} }
`;
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(oneRouteYaml(admin, listen, { endpoints: [{ port: pu }], extra: tls })),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const text = await (await request(`http://127.0.0.1:${admin}/config_dump`)).body.text();
    expect(text).not.toContain("PRIVATE KEY");
    const dump = JSON.parse(text) as {
      configs: {
        bootstrap: {
          static_resources: {
            clusters: {
              transport_socket: {
                typed_config: {
                  common_tls_context: {
                    tls_certificates: {
                      certificate_chain: { inline_string: string };
                      private_key: { inline_string: string };
                    }[];
                  };
                };
              };
            }[];
          };
        };
      }[];
    };
    const pair =
      dump.configs[0]!.bootstrap.static_resources.clusters[0]!.transport_socket.typed_config
        .common_tls_context.tls_certificates[0]!;
    expect(pair.private_key).toEqual({ inline_string: "[redacted]" });
    // The certificate is public and stays as written.
    expect(pair.certificate_chain.inline_string).toBe(cert);
  });

  it("logs failed connects with their class and elapsed time", async () => {
    const [pdead, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(oneRouteYaml(admin, listen, { endpoints: [{ port: pdead }] })),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const res = await request(`http://127.0.0.1:${listen}/`);
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toContain("reset reason: connection failure");
    await waitFor("connect failure log", () => s.logs.includes('"msg":"upstream connect failed"'));
    const line = s.logs.split("\n").find((l) => l.includes('"msg":"upstream connect failed"'))!;
    const failLog = JSON.parse(line) as { errorClass: string; upstream: string; elapsedMs: number };
    expect(failLog.errorClass).toBe("refused");
    expect(failLog.upstream).toBe(`127.0.0.1:${pdead}`);
    expect(failLog.elapsedMs).toBeGreaterThanOrEqual(0);
    const m = await s.metrics();
    expect(
      m.get('tether_upstream_connect_failures_total{envoy_cluster_name="backend",class="refused"}'),
    ).toBe(1);
  });
});

describe("STRICT_DNS", () => {
  it("resolves endpoint names and proxies to them", async () => {
    const [pa, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    cleanups.push(() => a.kill());
    const cluster = clusterYaml({ endpoints: [{ port: pa }] })
      .replace(
        "type: STATIC",
        "type: STRICT_DNS\n      dns_lookup_family: V4_ONLY\n      dns_refresh_rate: 0.5s",
      )
      .replace("address: 127.0.0.1", "address: localhost");
    const s = new Sidecar(admin, Sidecar.writeConfig(oneRouteYaml(admin, listen, cluster)));
    cleanups.push(() => s.stop());
    await s.start();
    const res = await request(`http://127.0.0.1:${listen}/dns`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain("a GET /dns");
    const text = await (await request(`http://127.0.0.1:${admin}/clusters`)).body.text();
    expect(text).toContain(`backend::127.0.0.1:${pa}::hostname::localhost`);
  });
});
