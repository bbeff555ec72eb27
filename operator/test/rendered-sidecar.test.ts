/**
 * What the operator renders, run by the built sidecar against real backends on loopback: a Broker's
 * `healthCheck.type: tls` fails a backend that does not speak TLS and passes one that does, an
 * Agent's decision cache (cache.notifications) is invalidated by the policy server's stream, and the
 * public admin port serves only GET /ready, /stats/prometheus and /metrics while the full admin stays
 * on loopback with secrets redacted. The rendered files are used as they are, except that their
 * listen addresses move from 0.0.0.0 to 127.0.0.1 (tests bind loopback only).
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { request } from "undici";
import { parse, stringify } from "yaml";
import {
  freePort,
  makeCertificates,
  PolicyServer,
  Sidecar,
  tlsPeerFingerprint,
  Upstream,
  waitFor,
} from "../../sidecar/test/support/harness.ts";
import { renderAgent } from "../src/render/agent.ts";
import { renderBroker } from "../src/render/broker.ts";
import type { ConfigMap } from "../src/render/configmap.ts";
import { LOCAL_ADMIN_CLUSTER, PUBLIC_ADMIN_LISTENER } from "../src/render/envoy.ts";
import { agent, broker, psc } from "./fixtures/specs.ts";

const options = { sidecarImage: "img", clusterDomain: "cluster.local" };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let certs: ReturnType<typeof makeCertificates>;
beforeAll(() => {
  certs = makeCertificates();
});

interface Addressed {
  address: { socket_address: { address: string; port_value: number } };
}

interface RenderedBootstrap {
  admin: Addressed;
  static_resources: {
    listeners: (Addressed & { name: string })[];
    clusters: {
      name: string;
      load_assignment: { endpoints: { lb_endpoints: { endpoint: Addressed }[] }[] };
    }[];
  };
}

/**
 * The rendered bootstrap with every listener on 127.0.0.1. `admin` moves the fixed admin ports of a
 * Broker to free ones: the public admin listener to `admin.public`, the loopback admin (and the
 * cluster that points at it) to `admin.local`.
 */
function onLoopback(cm: ConfigMap, admin?: { public: number; local: number }): string {
  const b = parse(cm.data["envoy.yaml"] ?? "") as RenderedBootstrap;
  expect(b.admin.address.socket_address.address).toBe("127.0.0.1");
  for (const l of b.static_resources.listeners) l.address.socket_address.address = "127.0.0.1";
  if (admin !== undefined) {
    b.admin.address.socket_address.port_value = admin.local;
    const listener = b.static_resources.listeners.find((l) => l.name === PUBLIC_ADMIN_LISTENER);
    listener!.address.socket_address.port_value = admin.public;
    const cluster = b.static_resources.clusters.find((c) => c.name === LOCAL_ADMIN_CLUSTER);
    cluster!.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.port_value =
      admin.local;
  }
  return stringify(b);
}

async function get(port: number, path: string, method = "GET"): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.statusCode, body: await res.body.text() };
}

/** The harness reads /ready, /clusters and metrics from `admin`: the loopback admin, for every path. */
async function runSidecar(admin: number, yaml: string): Promise<Sidecar> {
  const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
  cleanups.push(() => s.stop());
  await s.start();
  return s;
}

describe("a rendered Broker with healthCheck.type tls", () => {
  it("passes the TLS backend, fails the plain-TCP one with class tls, and relays TLS untouched", async () => {
    const secure = await new Upstream(await freePort(), "secure", "http", {
      cert: certs.cert,
      key: certs.key,
    }).start();
    cleanups.push(() => secure.kill());
    const plain = await new Upstream(await freePort(), "plain", "tcp").start();
    cleanups.push(() => plain.kill());
    const [listen, admin, publicAdmin] = await Promise.all([freePort(), freePort(), freePort()]);
    const spec = broker({
      port: listen,
      backends: {
        servers: [
          { host: "127.0.0.1", port: plain.port },
          { host: "127.0.0.1", port: secure.port },
        ],
      },
      healthCheck: { type: "tls", interval: "200ms", timeout: "150ms" },
    });
    const cm = renderBroker({
      owner: { kind: "Broker", name: "b", namespace: "t", uid: "u" },
      spec,
      options,
    });
    // A Broker's admin ports are fixed (9901, 15000 on loopback); this run uses free ones.
    const s = await runSidecar(admin, onLoopback(cm.sidecarConfig, { public: publicAdmin, local: admin }));
    expect((await get(publicAdmin, "/ready")).status).toBe(200);
    expect((await get(publicAdmin, "/clusters")).status).toBe(404);

    expect(await s.healthFlags("backends", secure.port)).toBe("healthy");
    expect(await s.healthFlags("backends", plain.port)).toContain("/failed_active_hc");
    const m = await s.metrics();
    expect(
      m.get('tether_health_check_failures_total{envoy_cluster_name="backends",class="tls"}'),
    ).toBeGreaterThanOrEqual(1);
    const backendCert = new X509Certificate(readFileSync(certs.cert)).fingerprint256;
    for (let i = 0; i < 3; i++) expect(await tlsPeerFingerprint(listen, certs.ca)).toBe(backendCert);
  });
});

describe("a rendered Agent with cache.notifications", () => {
  it("subscribes to the policy server's stream: a pushed notification invalidates the cached decision", async () => {
    const ps = await new PolicyServer(await freePort(), "ps1").start();
    cleanups.push(() => ps.kill());
    const [listen, admin, localAdmin] = await Promise.all([freePort(), freePort(), freePort()]);
    const spec = agent({
      listener: { port: listen },
      sidecar: { adminPort: admin, localAdminPort: localAdmin },
      cache: { enabled: true, ttl: "3m" },
      reconnect: { retryInterval: "100ms", maxRetryInterval: "500ms" },
    });
    const pscSpec = psc({
      protocol: "http",
      port: ps.port,
      managed: undefined,
      external: { servers: [{ host: "127.0.0.1" }] },
      healthCheck: { type: "http", path: "/healthz", interval: "200ms", timeout: "150ms" },
    });
    const cm = renderAgent({
      owner: { kind: "Agent", name: "web", namespace: "t", uid: "u" },
      spec,
      policyServers: { name: "ps", spec: pscSpec },
      routes: [],
      options,
    });
    const s = await runSidecar(admin, onLoopback(cm.sidecarConfig));
    const L = 'envoy_http_conn_manager_prefix="policy_server"';
    await waitFor(
      "stream open",
      async () => (await s.metrics()).get(`tether_decision_cache_stream_connected{${L}}`) === 1,
    );

    const decide = async (): Promise<{ cache: unknown; seq: number }> => {
      const res = await request(`http://127.0.0.1:${listen}/authorize?resource=/app&action=GET`, {
        headers: { "x-session-id": "s1", cookie: "SMSESSION=s1" },
      });
      const body = (await res.body.json()) as { seq: number };
      return { cache: res.headers["x-tether-cache"], seq: body.seq };
    };
    const first = await decide();
    expect(first.cache).toBeUndefined();
    expect(await decide()).toEqual({ cache: "hit", seq: first.seq });
    expect(await ps.publish({ session: "s1" })).toBe(1);
    await waitFor(
      "invalidated",
      async () => (await s.metrics()).get(`tether_decision_cache_entries{${L}}`) === 0,
    );
    const again = await decide();
    expect(again.cache).toBeUndefined();
    expect(again.seq).toBeGreaterThan(first.seq);
  });
});

describe("a rendered Agent's admin ports", () => {
  it("answers the kubelet and Prometheus on the public port, everything else only on loopback, keys redacted", async () => {
    // The policy server speaks TLS and the sidecar presents a client certificate, written inline.
    const ps = await new Upstream(await freePort(), "ps", "http", {
      cert: certs.cert,
      key: certs.key,
    }).start();
    cleanups.push(() => ps.kill());
    const [listen, publicAdmin, localAdmin] = await Promise.all([freePort(), freePort(), freePort()]);
    const spec = agent({
      listener: { port: listen },
      sidecar: { adminPort: publicAdmin, localAdminPort: localAdmin },
      cache: { enabled: true },
    });
    const pscSpec = psc({
      protocol: "http",
      port: ps.port,
      managed: undefined,
      external: { servers: [{ host: "127.0.0.1" }] },
      healthCheck: { type: "http", path: "/healthz", interval: "200ms", timeout: "150ms" },
      tls: {
        enabled: true,
        serverName: "policy.test",
        caSecretRef: { name: "ca" },
        clientCertSecretRef: { name: "client" },
      },
    });
    const cm = renderAgent({
      owner: { kind: "Agent", name: "web", namespace: "t", uid: "u" },
      spec,
      policyServers: { name: "ps", spec: pscSpec },
      routes: [],
      options,
    });
    const b = parse(onLoopback(cm.sidecarConfig)) as {
      static_resources: { clusters: { name: string; transport_socket?: { typed_config: TlsContext } }[] };
    };
    const tls = b.static_resources.clusters.find((c) => c.name === "policy-server")!.transport_socket!
      .typed_config;
    // The rendered Secret files, as the sidecar would read them, here from the test's own files.
    tls.common_tls_context.validation_context.trusted_ca = { filename: certs.ca };
    const key = readFileSync(certs.clientKey, "utf8");
    tls.common_tls_context.tls_certificates = [
      { certificate_chain: { filename: certs.clientCert }, private_key: { inline_string: key } },
    ];
    const s = await runSidecar(localAdmin, stringify(b));
    expect(await s.healthFlags("policy-server", ps.port)).toBe("healthy");

    // Public port: GET of exactly /ready, /stats/prometheus and /metrics.
    expect(await get(publicAdmin, "/ready")).toEqual({ status: 200, body: "LIVE\n" });
    const stats = await get(publicAdmin, "/stats/prometheus");
    expect(stats.status).toBe(200);
    expect(stats.body).toContain('envoy_cluster_membership_healthy{envoy_cluster_name="policy-server"} 1');
    expect((await get(publicAdmin, "/metrics")).body).toContain("envoy_server_live 1");
    // The public listener's own traffic is named for what it is, apart from the policy server's.
    expect(stats.body).toMatch(
      /envoy_cluster_upstream_rq_total\{envoy_cluster_name="tether-admin-local"\} [1-9]/,
    );
    expect(stats.body).toContain('envoy_http_conn_manager_prefix="tether_admin_public"');
    for (const path of ["/config_dump", "/clusters", "/clusters?format=json", "/ready/../config_dump"]) {
      expect(await get(publicAdmin, path), path).toEqual({ status: 404, body: "no route matched" });
    }
    expect((await get(publicAdmin, "/notifications", "POST")).status).toBe(404);
    expect((await get(publicAdmin, "/ready", "POST")).status).toBe(404);

    // Loopback: the full admin; the inline key is redacted, the file names are not.
    const dump = await get(localAdmin, "/config_dump");
    expect(dump.status).toBe(200);
    expect(dump.body).not.toContain("PRIVATE KEY");
    expect(dump.body).toContain('"private_key":{"inline_string":"[redacted]"}');
    expect(dump.body).toContain(JSON.stringify(certs.clientCert));
    expect((await get(localAdmin, "/clusters")).body).toContain("policy-server::127.0.0.1:");
    const notified = await request(`http://127.0.0.1:${localAdmin}/notifications`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "policy-changed" }),
    });
    expect(notified.statusCode).toBe(200);
    await notified.body.text();
  });
});

interface TlsContext {
  common_tls_context: {
    validation_context: { trusted_ca: { filename: string } };
    tls_certificates: {
      certificate_chain: { filename: string };
      private_key: { filename?: string; inline_string?: string };
    }[];
  };
}
