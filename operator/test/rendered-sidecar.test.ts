/**
 * What the operator renders, run by the built sidecar against real backends on loopback: a Broker's
 * `healthCheck.type: tls` fails a backend that does not speak TLS and passes one that does, and an
 * Agent's decision cache (cache.notifications) is invalidated by the policy server's stream. The
 * rendered files are used as they are, except that their listen and admin addresses move from
 * 0.0.0.0 to 127.0.0.1 (tests bind loopback only).
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

/** The rendered bootstrap with every listener and the admin listener on 127.0.0.1; `admin` moves its port. */
function onLoopback(cm: ConfigMap, admin?: number): string {
  const b = parse(cm.data["envoy.yaml"] ?? "") as {
    admin: Addressed;
    static_resources: { listeners: Addressed[] };
  };
  b.admin.address.socket_address.address = "127.0.0.1";
  if (admin !== undefined) b.admin.address.socket_address.port_value = admin;
  for (const l of b.static_resources.listeners) l.address.socket_address.address = "127.0.0.1";
  return stringify(b);
}

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
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
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
    // A Broker's admin port is fixed (9901); this run uses a free one.
    const s = await runSidecar(admin, onLoopback(cm.sidecarConfig, admin));

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
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const spec = agent({
      listener: { port: listen },
      sidecar: { adminPort: admin },
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
