// S6 on this machine: two demo TLS backends (the image's `tls-backend`, certificates from a test CA
// made with openssl) behind the real tether-sidecar as a TCP broker (tcp_proxy, bytes untouched,
// configured as the operator renders the quick-start Broker: one priority, least connections, three
// connect attempts, health checks and outlier detection), and the image's `load` and `request`
// commands as real TLS clients. The client verifies the chain and the name, and sees the backend's
// own certificate; when a backend is killed, new connections go to the other.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";
import { loadDemoConfig, type DemoConfig } from "../src/demo/demo-config.ts";
import { ChildHandle } from "../src/demo/processes.ts";
import { SidecarProcess } from "../src/demo/sidecar.ts";
import { jsonLines } from "../src/scenarios/client.ts";
import { makeTestCerts, type TestCerts } from "../src/scenarios/tls-certs.ts";
import { ENTRY, progress, request, startLoad } from "./support/image-commands.ts";
const VERIFY_NAME = "appserver.tether.test";

function listening(line: string): { port: number; server: string } | undefined {
  const event = jsonLines(line)[0];
  return event?.["event"] === "listening" && typeof event["port"] === "number"
    ? { port: event["port"], server: String(event["server"]) }
    : undefined;
}

async function startBackend(certs: TestCerts, name: string, port: number): Promise<ChildHandle> {
  const child = new ChildHandle({
    name: `tls-backend ${name}`,
    command: process.execPath,
    args: [ENTRY, "tls-backend", "--port", String(port), "--host", "127.0.0.1", "--name", name].concat([
      "--cert",
      join(certs.dir, `${name}.crt`),
      "--key",
      join(certs.dir, `${name}.key`),
    ]),
  });
  expect(await child.waitForLine(listening, 10_000)).toEqual({ port, server: name });
  return child;
}

/**
 * The example's tcp_proxy turned into what the operator renders for the quick-start Broker
 * (operator/src/render/broker.ts): both backends in one priority, LEAST_REQUEST, three connect
 * attempts with 100 ms–1 s back-off, tcp health checks every second, outlier detection.
 */
function asBroker(yamlText: string): unknown {
  const doc = parse(yamlText) as {
    static_resources: {
      listeners: { filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[] }[];
      clusters: Record<string, unknown>[];
    };
  };
  const proxy = doc.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
  proxy["max_connect_attempts"] = 3;
  proxy["backoff_options"] = { base_interval: "0.100s", max_interval: "1s" };
  const cluster = doc.static_resources.clusters[0]!;
  const assignment = cluster["load_assignment"] as {
    endpoints: { priority?: number; lb_endpoints: unknown[] }[];
  };
  assignment.endpoints = [{ priority: 0, lb_endpoints: assignment.endpoints.flatMap((e) => e.lb_endpoints) }];
  cluster["lb_policy"] = "LEAST_REQUEST";
  cluster["connect_timeout"] = "5s";
  cluster["health_checks"] = [
    {
      timeout: "0.5s",
      interval: "1s",
      no_traffic_interval: "1s",
      unhealthy_threshold: 2,
      healthy_threshold: 1,
      tcp_health_check: {},
    },
  ];
  cluster["outlier_detection"] = {
    consecutive_5xx: 5,
    consecutive_gateway_failure: 3,
    enforcing_consecutive_gateway_failure: 100,
    consecutive_local_origin_failure: 3,
    interval: "5s",
    base_ejection_time: "10s",
    max_ejection_time: "60s",
    max_ejection_percent: 100,
    always_eject_one_host: true,
  };
  delete cluster["upstream_connection_options"];
  return doc;
}

describe("TLS backends behind the sidecar as a passthrough broker", () => {
  let certs: TestCerts;
  let config: DemoConfig;
  const backends: ChildHandle[] = [];
  let sidecar: SidecarProcess | undefined;
  let fingerprints: Record<string, string> = {};

  beforeAll(async () => {
    certs = await makeTestCerts(VERIFY_NAME, ["appserver-0", "appserver-1"]);
    fingerprints = Object.fromEntries(certs.servers.map((s) => [s.name, s.fingerprint256]));
    config = await loadDemoConfig(join(REPO_ROOT, "examples/sidecar/envoy-tcp.yaml"), { freshPorts: true });
    const [first, second] = config.endpoints;
    writeFileSync(config.configPath, stringify(asBroker(readFileSync(config.configPath, "utf8"))));
    backends.push(await startBackend(certs, "appserver-0", first!.port));
    backends.push(await startBackend(certs, "appserver-1", second!.port));
    sidecar = new SidecarProcess({ configPath: config.configPath, admin: config.admin });
    await sidecar.start();
  });

  afterAll(async () => {
    await sidecar?.stop();
    await Promise.all(backends.map((b) => b.kill()));
    await certs.remove();
  });

  const broker = (): string => `tls://${config.listener.host}:${config.listener.port}`;

  it("request: the certificate the client sees through the broker is the backend's own", async () => {
    const { code, line } = await request([
      "--url",
      broker(),
      "--ca",
      certs.caFile,
      "--servername",
      VERIFY_NAME,
    ]);
    expect(code).toBe(0);
    expect(line).toMatchObject({ event: "tls" });
    const server = String(line["server"]);
    expect(["appserver-0", "appserver-1"]).toContain(server);
    expect(line["subject"]).toBe(server);
    expect(line["fingerprint256"]).toBe(fingerprints[server]);
  });

  it("request: a wrong name or another CA fails verification, with the reason", async () => {
    const direct = `tls://127.0.0.1:${config.endpoints[0]!.port}`;
    const wrongName = await request([
      "--url",
      direct,
      "--ca",
      certs.caFile,
      "--servername",
      "other.tether.test",
    ]);
    expect(wrongName.code).toBe(1);
    expect(wrongName.line["event"]).toBe("error");
    expect(String(wrongName.line["error"])).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
    const other = await makeTestCerts(VERIFY_NAME, []);
    try {
      const wrongCa = await request(["--url", direct, "--ca", other.caFile, "--servername", VERIFY_NAME]);
      expect(wrongCa.code).toBe(1);
      expect(String(wrongCa.line["error"])).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i);
    } finally {
      await other.remove();
    }
  });

  it("load: one TLS connection per request; appserver-0 killed → new connections go to appserver-1", async () => {
    const spec = {
      target: broker(),
      ratePerSecond: 40,
      ca: certs.caFile,
      servername: VERIFY_NAME,
      timeoutMs: 15_000,
    };
    const { load, child } = await startLoad(spec, "load tls");
    await progress(
      child,
      (p) => (p.servedBy["appserver-0"] ?? 0) >= 10 && (p.servedBy["appserver-1"] ?? 0) >= 10,
    );
    await backends[0]!.kill();
    const killedAt = (await progress(child, () => true)).requests;
    await progress(child, (p) => p.requests >= killedAt + 80, 30_000);
    const summary = await load.stop();
    expect(Object.keys(summary.servedBy).sort()).toEqual(["appserver-0", "appserver-1"]);
    expect(summary.peers).toEqual(fingerprints);
    // Only a connection open at the instant of the kill can fail (the TLS session ends at that backend).
    expect(summary.failures, JSON.stringify(summary.failureSamples)).toBeLessThanOrEqual(2);

    const after = await startLoad(spec, "load tls");
    await progress(after.child, (p) => p.requests >= 40);
    const survivor = await after.load.stop();
    expect(survivor.failures, JSON.stringify(survivor.failureSamples)).toBe(0);
    expect(Object.keys(survivor.servedBy)).toEqual(["appserver-1"]);
    expect(survivor.peers).toEqual({ "appserver-1": fingerprints["appserver-1"] });
  });
});
