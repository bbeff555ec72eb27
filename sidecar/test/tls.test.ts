// TLS to upstreams (UpstreamTlsContext): a good CA passes, a wrong CA fails with error class tls,
// SNI reaches the server, health checks do the handshake too.
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  healthCheckYaml,
  httpListenerYaml,
  makeCertificates,
  routeYaml,
  Sidecar,
  tcpListenerYaml,
  Upstream,
} from "./support/harness.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let certs: ReturnType<typeof makeCertificates>;
beforeAll(() => {
  certs = makeCertificates();
});

function tlsYaml(ca: string, sni = "policy.test"): string {
  return `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: ${sni}
          common_tls_context:
            validation_context:
              trusted_ca: { filename: ${ca} }
              match_typed_subject_alt_names:
                - san_type: DNS
                  matcher: { exact: policy.test }
`;
}

async function setup(ca: string, check = false): Promise<{ u: Upstream; s: Sidecar; listen: number }> {
  const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  const u = await new Upstream(pu, "secure", "http", { cert: certs.cert, key: certs.key }).start();
  cleanups.push(() => u.kill());
  const cluster = clusterYaml({
    endpoints: [{ port: pu }],
    extra: tlsYaml(ca),
    healthCheck: check ? healthCheckYaml("http") : "",
  });
  const s = new Sidecar(
    admin,
    Sidecar.writeConfig(bootstrapYaml(admin, httpListenerYaml(listen, [routeYaml({})]), cluster)),
  );
  cleanups.push(() => s.stop());
  await s.start();
  return { u, s, listen };
}

describe("upstream TLS", () => {
  it("verifies the server with trusted_ca, sends SNI, and health-checks over TLS", async () => {
    const { u, s, listen } = await setup(certs.ca, true);
    const res = await request(`http://127.0.0.1:${listen}/over-tls`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain("secure GET /over-tls");
    expect((await u.stats()).lastServername).toBe("policy.test");
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(1);
  });

  it("fails the connect with class tls when the CA does not match", async () => {
    const { s, listen } = await setup(certs.wrongCa);
    const res = await request(`http://127.0.0.1:${listen}/x`);
    expect(res.statusCode).toBe(503);
    await res.body.text();
    const m = await s.metrics();
    expect(m.get('tether_upstream_connect_failures_total{envoy_cluster_name="backend",class="tls"}')).toBe(1);
    expect(s.logs).toContain('"errorClass":"tls"');
  });

  it("refuses to start when a referenced file cannot be read, naming the path", async () => {
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const cluster = clusterYaml({ endpoints: [{ port: 1 }], extra: tlsYaml("/nonexistent/ca.pem") });
    const file = Sidecar.writeConfig(
      bootstrapYaml(admin, httpListenerYaml(listen, [routeYaml({})]), cluster),
    );
    const bin = fileURLToPath(new URL("../bin/tether-sidecar.js", import.meta.url));
    const r = spawnSync(process.execPath, [bin, "--config", file, "--mode", "validate"], {
      encoding: "utf8",
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "static_resources.clusters[0].transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename: cannot read /nonexistent/ca.pem",
    );
  });
});

describe("client certificates", () => {
  it("presents tls_certificates to a server that requires them", async () => {
    const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const u = await new Upstream(pu, "mtls", "http", { cert: certs.cert, key: certs.key }, [
      "--tls-client-ca",
      certs.ca,
    ]).start();
    cleanups.push(() => u.kill());
    const withClientCert = tlsYaml(certs.ca).replace(
      "          common_tls_context:\n",
      `          common_tls_context:
            tls_certificates:
              - certificate_chain: { filename: ${certs.clientCert} }
                private_key: { filename: ${certs.clientKey} }
`,
    );
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        bootstrapYaml(
          admin,
          httpListenerYaml(listen, [routeYaml({})]),
          clusterYaml({ endpoints: [{ port: pu }], extra: withClientCert }),
        ),
      ),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const res = await request(`http://127.0.0.1:${listen}/mutual`);
    expect(res.statusCode).toBe(200);
    await res.body.text();
    const dispatcher = new Agent({
      connect: {
        rejectUnauthorized: false,
        cert: readFileSync(certs.clientCert),
        key: readFileSync(certs.clientKey),
      },
    });
    const stats = (await (await request(`https://127.0.0.1:${pu}/__stats`, { dispatcher })).body.json()) as {
      paths: Record<string, number>;
    };
    await dispatcher.close();
    expect(stats.paths["GET /mutual"]).toBe(1);
  });
});

describe("broker TLS passthrough", () => {
  it("relays a client's TLS session untouched to a TLS backend", async () => {
    const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const u = await new Upstream(pu, "backend", "http", { cert: certs.cert, key: certs.key }).start();
    cleanups.push(() => u.kill());
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        bootstrapYaml(admin, tcpListenerYaml(listen), clusterYaml({ endpoints: [{ port: pu }] })),
      ),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const socket = tls.connect({
      host: "127.0.0.1",
      port: listen,
      servername: "policy.test",
      ca: readFileSync(certs.ca),
    });
    cleanups.push(async () => {
      socket.destroy();
      await Promise.resolve();
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    });
    expect(socket.authorized).toBe(true);
    const seen = socket.getPeerX509Certificate();
    expect(seen?.fingerprint256).toBe(new X509Certificate(readFileSync(certs.cert)).fingerprint256);
    socket.write("GET /through HTTP/1.1\r\nhost: policy.test\r\nconnection: close\r\n\r\n");
    let reply = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => (reply += c));
    await new Promise((r) => socket.once("end", r));
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    expect(reply).toContain("backend GET /through");
    expect((await u.stats()).lastServername).toBe("policy.test");
  });
});
