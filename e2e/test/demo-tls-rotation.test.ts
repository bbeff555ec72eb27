// S13 on this machine: two demo policy servers over HTTPS behind the real tether-sidecar, which
// verifies them against a CA bundle (trusted_ca, SNI and the subject alt name, as the operator
// renders a PolicyServerCluster with tls.enabled). Both the bundle and the servers' certificate live
// in Secret-style volumes (`..data` swaps), and rotate as cert-manager rotates a CA, under constant
// traffic: (a) bundle old + new CA, (b) the servers' certificate from the new CA, (c) bundle new CA
// only. No request may fail, and after (b) every server answers under the new certificate.
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";
import { loadDemoConfig, type DemoConfig } from "../src/demo/demo-config.ts";
import { summarizeLoad } from "../src/demo/load.ts";
import { ChildHandle } from "../src/demo/processes.ts";
import { SidecarProcess } from "../src/demo/sidecar.ts";
import { ConstantRateTraffic } from "../src/demo/traffic.ts";
import { jsonLines } from "../src/scenarios/client.ts";
import { makeTestCerts, type TestCerts } from "../src/scenarios/tls-certs.ts";
import { ENTRY } from "./support/image-commands.ts";
import { SecretVolume } from "./support/secret-volume.ts";

const VERIFY_NAME = "ps.tether.test";
const SERVERS = ["ps-0", "ps-1"] as const;

/**
 * The example's HTTP cluster over TLS as the operator renders it for a PolicyServerCluster with
 * tls.enabled (operator/src/render/envoy.ts tlsTransportSocket), with connections renewed every 20
 * requests so that steady traffic keeps making new handshakes.
 */
function withTls(yamlText: string, caFile: string): unknown {
  const doc = parse(yamlText) as { static_resources: { clusters: Record<string, unknown>[] } };
  const cluster = doc.static_resources.clusters[0]!;
  cluster["transport_socket"] = {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      sni: VERIFY_NAME,
      common_tls_context: {
        validation_context: {
          trusted_ca: { filename: caFile },
          match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: VERIFY_NAME } }],
        },
      },
    },
  };
  const options = cluster["typed_extension_protocol_options"] as Record<
    string,
    { common_http_protocol_options: Record<string, unknown> }
  >;
  const common = Object.values(options)[0]!.common_http_protocol_options;
  common["max_requests_per_connection"] = 20;
  common["idle_timeout"] = "5s";
  return doc;
}

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber.toUpperCase();

/** Polls `done` every 50 ms until it holds; throws naming `what` at the deadline. */
async function until(what: string, done: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("demo HTTPS policy servers behind the sidecar: CA and certificates rotate under traffic", () => {
  let oldPki: TestCerts;
  let newPki: TestCerts;
  let caVolume: SecretVolume;
  let certVolume: SecretVolume;
  let config: DemoConfig;
  const servers: ChildHandle[] = [];
  let sidecar: SidecarProcess | undefined;
  const pair = (pki: TestCerts): Record<string, string> => ({
    "tls.crt": pki.servers[0]!.certPem,
    "tls.key": pki.servers[0]!.keyPem,
  });

  beforeAll(async () => {
    oldPki = await makeTestCerts(VERIFY_NAME, ["ps-main"]);
    newPki = await makeTestCerts(VERIFY_NAME, ["ps-main"]);
    caVolume = new SecretVolume({ "ca.crt": oldPki.caPem });
    certVolume = new SecretVolume(pair(oldPki));
    config = await loadDemoConfig(join(REPO_ROOT, "examples/sidecar/envoy-http.yaml"), { freshPorts: true });
    writeFileSync(
      config.configPath,
      stringify(withTls(readFileSync(config.configPath, "utf8"), caVolume.path("ca.crt"))),
    );
    for (const [i, name] of SERVERS.entries()) {
      const server = new ChildHandle({
        name: `policy-server ${name}`,
        command: process.execPath,
        args: [ENTRY, "policy-server", "--port", String(config.endpoints[i]!.port), "--name", name].concat([
          "--tls-cert",
          certVolume.path("tls.crt"),
          "--tls-key",
          certVolume.path("tls.key"),
        ]),
      });
      servers.push(server);
      await server.waitForLine(
        (line) => (jsonLines(line)[0]?.["event"] === "listening" ? true : undefined),
        10_000,
      );
    }
    sidecar = new SidecarProcess({ configPath: config.configPath, admin: config.admin });
    await sidecar.start();
  });

  afterAll(async () => {
    await sidecar?.stop();
    await Promise.all(servers.map((s) => s.kill()));
    caVolume.remove();
    certVolume.remove();
    await oldPki.remove();
    await newPki.remove();
  });

  it("bundle old+new, new server certificate, bundle new only: no failed request, every server on the new certificate", async () => {
    const oldSerial = serialOf(oldPki.servers[0]!.certPem);
    const newSerial = serialOf(newPki.servers[0]!.certPem);
    const log = sidecar!.handle!;
    // The sidecar's log line for new TLS files taken into use (from the next line it prints).
    const sidecarRotated = (): Promise<boolean> =>
      log.waitForLine((line) => (line.includes("TLS material rotated") ? true : undefined), 15_000);
    const serverRotated = (server: ChildHandle): Promise<boolean> =>
      server.waitForLine((line) => {
        const event = jsonLines(line)[0];
        return event?.["event"] === "tls-rotated" && event["serial"] === newSerial ? true : undefined;
      }, 15_000);

    const traffic = new ConstantRateTraffic({
      origin: `http://${config.listener.host}:${config.listener.port}`,
      path: "/authorize?resource=/app&action=GET",
      ratePerSecond: 100,
      requestTimeoutMs: 15_000,
    });
    const startAt = performance.now();
    traffic.start();
    const answeredUnder = (serial: string, server: string, since = 0): boolean =>
      traffic.records.some(
        (r) => r.ok && r.certSerial === serial && r.server === server && r.doneAt >= since,
      );
    try {
      await until("both servers answered under the old certificate", () =>
        SERVERS.every((s) => answeredUnder(oldSerial, s)),
      );
      // (a) The bundle grows to old + new.
      const bundled = sidecarRotated();
      caVolume.update({ "ca.crt": oldPki.caPem + newPki.caPem });
      await bundled;
      // (b) The servers' certificate from the new CA: new handshakes present it.
      const rotated = Promise.all(servers.map(serverRotated));
      const updatedAt = performance.now();
      certVolume.update(pair(newPki));
      await rotated;
      const rotatedAt = performance.now();
      await until("every server answered under the new certificate", () =>
        SERVERS.every((s) => answeredUnder(newSerial, s, rotatedAt)),
      );
      // (c) The old CA leaves the bundle; a second of traffic after the sidecar took it.
      const reduced = sidecarRotated();
      caVolume.update({ "ca.crt": newPki.caPem });
      await reduced;
      const reducedAt = performance.now();
      await until("a second of traffic on the new CA alone", () =>
        traffic.records.some((r) => r.intendedAt >= reducedAt + 1000),
      );
      await traffic.stop();
      const summary = summarizeLoad(
        traffic.records,
        { startAt, endAt: performance.now() },
        { slowMs: 1000, target: "sidecar", ratePerSecond: 100 },
      );
      const seen = summary.certificates ?? {};
      expect(summary.failures, JSON.stringify(summary.failureSamples)).toBe(0);
      expect(Object.keys(seen[newSerial]?.firstByServer ?? {}).sort()).toEqual([...SERVERS]);
      // No answer under the new certificate before the servers had it, and the old one gone soon after.
      expect(seen[newSerial]!.firstAtMs).toBeGreaterThanOrEqual(updatedAt - startAt);
      expect(seen[oldSerial]!.lastAtMs).toBeLessThan(rotatedAt - startAt + 10_000);
    } finally {
      await traffic.stop();
    }
  });
});
