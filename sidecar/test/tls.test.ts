// TLS to upstreams (UpstreamTlsContext): a good CA passes, a wrong CA fails with error class tls,
// SNI reaches the server, health checks do the handshake too; match_typed_subject_alt_names refuse a
// certificate for another name (with or without a trusted_ca, as Envoy), and nothing else checks names.
import { execSync, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  healthCheckYaml,
  makeCertificates,
  oneRouteYaml,
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
  const s = new Sidecar(admin, Sidecar.writeConfig(oneRouteYaml(admin, listen, cluster)));
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
    const file = Sidecar.writeConfig(oneRouteYaml(admin, listen, cluster));
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

/** A server certificate for `san` (openssl subjectAltName syntax) signed by the test CA. */
function issue(name: string, san: string): { cert: string; key: string } {
  const f = (n: string): string => path.join(certs.dir, n);
  writeFileSync(f(`${name}.ext`), `subjectAltName=${san}\n`);
  const run = (args: string): void => {
    execSync(`openssl ${args}`, { cwd: certs.dir, stdio: "ignore" });
  };
  run(
    `req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=${name} -keyout ${name}.key -out ${name}.csr`,
  );
  run(
    `x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ${name}.ext -out ${name}.pem`,
  );
  return { cert: f(`${name}.pem`), key: f(`${name}.key`) };
}

/** A TLS transport socket: `ca` (or none), SNI, and SAN matchers as YAML flow mappings. */
function sanTlsYaml(ca: string | undefined, sni: string, matchers: readonly string[]): string {
  const trusted = ca === undefined ? "" : `              trusted_ca: { filename: ${ca} }\n`;
  const sans =
    matchers.length === 0
      ? ""
      : `              match_typed_subject_alt_names:\n${matchers.map((m) => `                - ${m}\n`).join("")}`;
  return `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: ${sni}
          common_tls_context:
            validation_context:
${trusted}${sans}`.replace(/validation_context:\n$/, "validation_context: {}\n");
}

async function sanSetup(
  serverCert: { cert: string; key: string },
  transport: string,
): Promise<{ u: Upstream; s: Sidecar; listen: number }> {
  const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  const u = await new Upstream(pu, "secure", "http", serverCert).start();
  cleanups.push(() => u.kill());
  const cluster = clusterYaml({ endpoints: [{ port: pu }], extra: transport });
  const s = new Sidecar(admin, Sidecar.writeConfig(oneRouteYaml(admin, listen, cluster)));
  cleanups.push(() => s.stop());
  await s.start();
  return { u, s, listen };
}

describe("match_typed_subject_alt_names", () => {
  const DNS_POLICY = "{ san_type: DNS, matcher: { exact: policy.test } }";

  it.each([
    ["with trusted_ca", true],
    ["without trusted_ca (Envoy still checks the names)", false],
  ] as const)(
    "refuses a certificate for another name %s: a tls connect failure, counted, the request never sent",
    async (_label, withCa) => {
      const other = issue("other", "DNS:other.test");
      const { u, s, listen } = await sanSetup(
        other,
        sanTlsYaml(withCa ? certs.ca : undefined, "policy.test", [DNS_POLICY]),
      );
      const res = await request(`http://127.0.0.1:${listen}/must-not-arrive`);
      expect(res.statusCode).toBe(503);
      await res.body.text();
      const m = await s.metrics();
      expect(m.get('envoy_cluster_ssl_fail_verify_san{envoy_cluster_name="backend"}')).toBeGreaterThanOrEqual(
        1,
      );
      expect(m.get('tether_upstream_connect_failures_total{envoy_cluster_name="backend",class="tls"}')).toBe(
        m.get('envoy_cluster_ssl_fail_verify_san{envoy_cluster_name="backend"}'),
      );
      expect(s.logs).toContain("upstream connect failed");
      expect(s.logs).toContain("verify cert failed: SAN matcher, certificate SANs are [DNS:other.test]");
      expect(s.logs).toContain('DNS exact \\"policy.test\\"');
      expect((await u.stats()).paths["GET /must-not-arrive"]).toBeUndefined();
    },
  );

  it.each([
    ["an exact DNS name", "DNS:policy.test", DNS_POLICY],
    [
      "a wildcard certificate for an exact DNS name",
      "DNS:*.svc.test",
      "{ san_type: DNS, matcher: { exact: a.svc.test } }",
    ],
    ["a DNS suffix", "DNS:ps-0.policy.test", "{ san_type: DNS, matcher: { suffix: .policy.test } }"],
    ["an IP address", "IP:127.0.0.1", "{ san_type: IP_ADDRESS, matcher: { exact: 127.0.0.1 } }"],
  ])("accepts the right name: %s", async (_label, san, matcher) => {
    const right = issue(`right-${san.replace(/[^a-z0-9]/gi, "")}`, san);
    const { s, listen } = await sanSetup(right, sanTlsYaml(certs.ca, "policy.test", [matcher]));
    const res = await request(`http://127.0.0.1:${listen}/named`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain("secure GET /named");
    expect(await s.metric("envoy_cluster_ssl_fail_verify_san", "backend")).toBe(0);
  });

  it("a wildcard covers one label only", async () => {
    const wildcard = issue("wildcard", "DNS:*.svc.test");
    const { s, listen } = await sanSetup(
      wildcard,
      sanTlsYaml(certs.ca, "a.b.svc.test", ["{ san_type: DNS, matcher: { exact: a.b.svc.test } }"]),
    );
    const res = await request(`http://127.0.0.1:${listen}/deep`);
    expect(res.statusCode).toBe(503);
    await res.body.text();
    expect(await s.metric("envoy_cluster_ssl_fail_verify_san", "backend")).toBeGreaterThanOrEqual(1);
  });

  it("without matchers checks no name, as Envoy: SNI that the certificate does not name still connects", async () => {
    const { u, listen } = await sanSetup(
      { cert: certs.cert, key: certs.key },
      sanTlsYaml(certs.ca, "elsewhere.test", []),
    );
    const res = await request(`http://127.0.0.1:${listen}/unnamed`);
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect((await u.stats()).lastServername).toBe("elsewhere.test");
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
      Sidecar.writeConfig(oneRouteYaml(admin, listen, { endpoints: [{ port: pu }], extra: withClientCert })),
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
