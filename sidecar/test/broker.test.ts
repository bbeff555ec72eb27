// The sidecar as a Broker: a tcp_proxy in front of health-checked backends, shaped as the
// operator renders it. Covered elsewhere and not repeated here: TLS passthrough with the backend's
// certificate seen by the client (tls.test.ts "broker TLS passthrough"), the PROXY v2 header parsed
// by a backend (tcp-proxy.test.ts), a hung backend's sessions cut by health checking (tcp-proxy.test.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { classifyConnectError } from "../src/upstream/connect.ts";
import {
  bootstrapYaml,
  clusterYaml,
  exited,
  freePort,
  healthCheckYaml,
  LineClient,
  makeCertificates,
  Sidecar,
  tcpListenerYaml,
  tlsPeerFingerprint,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let certs: ReturnType<typeof makeCertificates>;
beforeAll(() => {
  certs = makeCertificates();
});

interface LogLine {
  msg: string;
  conn?: string;
  upstream?: string;
  reason?: string;
  errorClass?: string;
  elapsedMs?: number;
  connectAttempts?: number;
  transportSocket?: string;
}

function logLines(s: Sidecar): LogLine[] {
  return s.logs
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
}

async function startTcpBackends(n: number): Promise<Upstream[]> {
  const ups: Upstream[] = [];
  for (let i = 0; i < n; i++) {
    const u = await new Upstream(await freePort(), `b${i}`, "tcp").start();
    cleanups.push(() => u.kill());
    ups.push(u);
  }
  return ups;
}

async function startBroker(clusters: string, tcpExtra = ""): Promise<{ s: Sidecar; listen: number }> {
  const [listen, admin] = await Promise.all([freePort(), freePort()]);
  const s = new Sidecar(
    admin,
    Sidecar.writeConfig(bootstrapYaml(admin, tcpListenerYaml(listen, tcpExtra), clusters)),
  );
  cleanups.push(() => s.stop());
  await s.start();
  return { s, listen };
}

describe("broker", () => {
  it("sends new connections to the surviving backend when one of two is SIGKILLed", async () => {
    const ups = await startTcpBackends(2);
    const { s, listen } = await startBroker(
      clusterYaml({
        endpoints: ups.map((u) => ({ port: u.port })),
        healthCheck: healthCheckYaml("tcp", 0.2, 2, 1, 0.1),
        extra: "      close_connections_on_host_health_failure: true\n",
      }),
      "\n                max_connect_attempts: 2",
    );
    const before = await Promise.all([0, 1, 2, 3].map(() => new LineClient(listen, cleanups).ask("whoami")));
    expect(new Set(before)).toEqual(new Set(["b0", "b1"]));
    const onB0 = new LineClient(listen, cleanups);
    const onB1 = new LineClient(listen, cleanups);
    // Round robin alternates; find which client landed where.
    const [n0, n1] = await Promise.all([onB0.ask("whoami"), onB1.ask("whoami")]);
    const victim = n0 === "b0" ? onB0 : onB1;
    const survivor = n0 === "b0" ? onB1 : onB0;
    expect(new Set([n0, n1])).toEqual(new Set(["b0", "b1"]));

    await ups[0]!.kill();
    await victim.closed;
    // Before health checking notices, a refused attempt is retried on the other backend (sequential
    // connections, so round robin cannot hand two attempts of one connection the same host).
    for (let i = 0; i < 6; i++) expect(await new LineClient(listen, cleanups).ask("whoami")).toBe("b1");
    await waitFor(
      "b0 marked unhealthy",
      async () => (await s.metric("envoy_cluster_membership_healthy", "backend")) === 1,
    );
    expect(await s.healthFlags("backend", ups[0]!.port)).toContain("/failed_active_hc");
    const failsBefore = await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend");
    const after = await Promise.all(
      Array.from({ length: 8 }, () => new LineClient(listen, cleanups).ask("whoami")),
    );
    expect(after.every((n) => n === "b1")).toBe(true);
    // Once out of rotation the dead backend is not even tried.
    expect(await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend")).toBe(failsBefore);
    expect(await survivor.ask("still here")).toBe("still here");
  });

  it("a health check over TLS (full handshake) fails a backend that accepts TCP but not TLS", async () => {
    // The check runs over the cluster's transport socket. A plain TCP echo server accepts the
    // connection and answers the ClientHello with garbage: unhealthy. A real TLS server: healthy.
    const plain = (await startTcpBackends(1))[0]!;
    const secure = await new Upstream(await freePort(), "secure", "http", {
      cert: certs.cert,
      key: certs.key,
    }).start();
    cleanups.push(() => secure.kill());
    const transport = `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: policy.test
          common_tls_context:
            validation_context: { trusted_ca: { filename: ${certs.ca} } }
`;
    const { s } = await startBroker(
      clusterYaml({
        endpoints: [{ port: plain.port }, { port: secure.port }],
        healthCheck: healthCheckYaml("tcp", 0.1, 2, 1, 0.5),
        extra: transport,
      }),
    );
    expect(await s.healthFlags("backend", secure.port)).toBe("healthy");
    expect(await s.healthFlags("backend", plain.port)).toContain("/failed_active_hc");
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(1);
    expect(await s.metric("envoy_cluster_health_check_failure", "backend")).toBeGreaterThanOrEqual(1);
  });

  it("logs each session's open, upstream and close lines under its id, with attempts and close reason", async () => {
    const dead = await freePort();
    const ups = await startTcpBackends(1);
    // No health checks: both endpoints are in rotation, so the first attempt can meet the dead one.
    const { s, listen } = await startBroker(
      clusterYaml({ endpoints: [{ port: dead }, { port: ups[0]!.port }] }),
      "\n                max_connect_attempts: 2",
    );
    for (let i = 0; i < 2; i++) {
      const c = new LineClient(listen, cleanups);
      expect(await c.ask("whoami")).toBe("b0");
      c.socket.end();
      await c.closed;
    }
    await waitFor("two closed sessions", () =>
      logLines(s).filter((l) => l.msg === "downstream connection closed").length === 2 ? true : undefined,
    );
    const lines = logLines(s);
    const opens = lines.filter((l) => l.msg === "downstream connection open");
    expect(opens).toHaveLength(2);
    for (const open of opens) {
      const id = open.conn!;
      expect(id).toMatch(/^d\d+$/);
      const mine = lines
        .filter((l) => l.conn === id && l.msg !== "upstream connect failed")
        .map((l) => l.msg);
      expect(mine).toEqual([
        "downstream connection open",
        "upstream connected",
        "downstream connection closed",
      ]);
      const closed = lines.find((l) => l.conn === id && l.msg === "downstream connection closed")!;
      expect(closed.upstream).toBe(`127.0.0.1:${ups[0]!.port}`);
      expect(closed.reason).toBe("downstream_close");
    }
    // Round robin hands the dead endpoint out too: sessions that met it first needed a second attempt.
    const attempts = lines
      .filter((l) => l.msg === "downstream connection closed")
      .map((l) => l.connectAttempts ?? 0);
    for (const n of attempts) expect([1, 2]).toContain(n);
    // Each failed first attempt is logged under the session it was for.
    const failed = lines.filter((l) => l.msg === "upstream connect failed");
    expect(failed.length).toBe(attempts[0]! + attempts[1]! - 2);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const f of failed) expect(f).toMatchObject({ upstream: `127.0.0.1:${dead}`, errorClass: "refused" });
    for (const open of opens) {
      const closed = lines.find((l) => l.conn === open.conn && l.msg === "downstream connection closed")!;
      const mineFailed = failed.filter((f) => f.conn === open.conn).length;
      expect(mineFailed).toBe((closed.connectAttempts ?? 1) - 1);
    }
  });
});

/**
 * A passthrough cluster (no transport socket: traffic is raw TCP) whose tcp health check picks a TLS
 * transport socket through transport_socket_match_criteria: the check is a full handshake.
 */
function tlsCheckedCluster(ports: number[], ca: string): string {
  return clusterYaml({
    endpoints: ports.map((port) => ({ port })),
    healthCheck: `      health_checks:
        - timeout: 0.5s
          interval: 0.1s
          no_traffic_interval: 0.1s
          unhealthy_threshold: 2
          healthy_threshold: 1
          tcp_health_check: {}
          transport_socket_match_criteria: { tether_health_check: tls }
`,
    extra: `      close_connections_on_host_health_failure: true
      transport_socket_matches:
        - name: tls-health-check
          match: { tether_health_check: tls }
          transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
              sni: policy.test
              common_tls_context:
                validation_context: { trusted_ca: { filename: ${ca} } }
`,
  });
}

async function startTlsBackend(name: string, port?: number): Promise<Upstream> {
  const u = await new Upstream(port ?? (await freePort()), name, "http", {
    cert: certs.cert,
    key: certs.key,
  }).start();
  cleanups.push(() => u.kill());
  return u;
}

describe("broker tls health check (transport_socket_matches + transport_socket_match_criteria)", () => {
  it("passes a TLS backend, fails a plain-TCP one with class tls, and keeps the data path passthrough", async () => {
    const secure = await startTlsBackend("secure");
    const plain = (await startTcpBackends(1))[0]!;
    const { s, listen } = await startBroker(tlsCheckedCluster([plain.port, secure.port], certs.ca));
    expect(await s.healthFlags("backend", secure.port)).toBe("healthy");
    // The plain backend accepts the TCP connection (a tcp connect check would pass it) but echoes
    // the ClientHello back instead of answering it: the handshake fails.
    expect(await s.healthFlags("backend", plain.port)).toContain("/failed_active_hc");
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(1);
    const m = await s.metrics();
    expect(
      m.get('tether_health_check_failures_total{envoy_cluster_name="backend",class="tls"}'),
    ).toBeGreaterThanOrEqual(1);
    const failed = logLines(s).find((l) => l.msg === "health check failed");
    expect(failed).toMatchObject({
      upstream: `127.0.0.1:${plain.port}`,
      errorClass: "tls",
      transportSocket: "tls-health-check",
    });
    // Traffic is raw TCP: each client's own TLS session ends at the healthy backend, whose
    // certificate it sees; none is sent to the plain backend.
    const backendCert = new X509Certificate(readFileSync(certs.cert)).fingerprint256;
    for (let i = 0; i < 4; i++) expect(await tlsPeerFingerprint(listen, certs.ca)).toBe(backendCert);
    expect(await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend")).toBe(0);
  });

  it("ejects a backend that stops speaking TLS, logging class tls on the way out", async () => {
    const a = await startTlsBackend("a");
    // A backend on a real loopback socket that speaks TLS until told to answer plain TCP (an echo,
    // as a misconfigured server would): connects keep succeeding, handshakes stop.
    let speaksTls = true;
    const material = { cert: readFileSync(certs.cert), key: readFileSync(certs.key) };
    const b = net.createServer((socket) => {
      socket.on("error", () => undefined);
      if (!speaksTls) {
        socket.pipe(socket);
        return;
      }
      const secure = new tls.TLSSocket(socket, { isServer: true, ...material });
      secure.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => b.listen(0, "127.0.0.1", resolve));
    cleanups.push(async () => {
      b.close();
      await Promise.resolve();
    });
    const bPort = (b.address() as net.AddressInfo).port;
    const { s, listen } = await startBroker(tlsCheckedCluster([a.port, bPort], certs.ca));
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(2);
    speaksTls = false;
    const out = await waitFor("b marked unhealthy", () =>
      logLines(s).find((l) => l.msg === "host unhealthy" && l.upstream === `127.0.0.1:${bPort}`),
    );
    expect(out.errorClass).toBe("tls");
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(1);
    expect(await s.healthFlags("backend", bPort)).toContain("/failed_active_hc");
    // Round robin over both would hand b every other client, whose handshake would then fail.
    const backendCert = new X509Certificate(readFileSync(certs.cert)).fingerprint256;
    for (let i = 0; i < 4; i++) expect(await tlsPeerFingerprint(listen, certs.ca)).toBe(backendCert);
  });

  it("fails the check with class tls when the backend's certificate is not signed by the given CA", async () => {
    const secure = await startTlsBackend("secure");
    const { s } = await startBroker(tlsCheckedCluster([secure.port], certs.wrongCa));
    expect(await s.healthFlags("backend", secure.port)).toContain("/failed_active_hc");
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(0);
    const m = await s.metrics();
    expect(
      m.get('tether_health_check_failures_total{envoy_cluster_name="backend",class="tls"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(logLines(s).find((l) => l.msg === "health check failed")).toMatchObject({
      upstream: `127.0.0.1:${secure.port}`,
      errorClass: "tls",
    });
  });
});

describe("broker connect errors", () => {
  it("says refused at once for a closed port", async () => {
    const dead = await freePort();
    const { s, listen } = await startBroker(clusterYaml({ endpoints: [{ port: dead }] }));
    const c = new LineClient(listen, cleanups);
    await c.closed;
    await waitFor("close line", () => s.logs.includes('"msg":"downstream connection closed"'));
    const lines = logLines(s);
    const failed = lines.find((l) => l.msg === "upstream connect failed")!;
    expect(failed.errorClass).toBe("refused");
    expect(failed.elapsedMs).toBeLessThan(200);
    const closed = lines.find((l) => l.msg === "downstream connection closed");
    expect(closed?.reason).toBe("connect_failed:refused");
    // The failed attempt names the downstream connection it was for.
    expect(failed.conn).toBeDefined();
    expect(failed.conn).toBe(closed?.conn);
    const m = await s.metrics();
    expect(
      m.get('tether_upstream_connect_failures_total{envoy_cluster_name="backend",class="refused"}'),
    ).toBe(1);
  });

  it("says timeout after connect_timeout when the backend never completes the handshake", async () => {
    // A stopped process whose accept queue (backlog 1) is full: the kernel drops further SYNs, so a
    // connect neither succeeds nor is refused — the loopback stand-in for a black-holed address.
    const port = await freePort();
    const script = `require("net").createServer().listen({ port: ${port}, host: "127.0.0.1", backlog: 1 }, () => {
      process.stdout.write("up\\n"); process.kill(process.pid, "SIGSTOP"); });`;
    const blackhole: ChildProcess = spawn(process.execPath, ["-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    cleanups.push(async () => {
      blackhole.kill("SIGKILL");
      await exited(blackhole);
    });
    await new Promise((r) => blackhole.stdout?.once("data", r));
    // Fill the accept queue; these complete in the kernel although nobody accepts them.
    for (let i = 0; i < 2; i++) {
      const f = net.connect(port, "127.0.0.1");
      f.on("error", () => undefined);
      cleanups.push(() => {
        f.destroy();
      });
      await new Promise((r) => f.once("connect", r));
    }
    const { s, listen } = await startBroker(clusterYaml({ endpoints: [{ port }] }));
    const c = new LineClient(listen, cleanups);
    const t0 = performance.now();
    await c.closed;
    const heldMs = performance.now() - t0;
    expect(heldMs).toBeGreaterThanOrEqual(200); // connect_timeout 0.25 s (timer slack allowed)
    await waitFor("close line", () => s.logs.includes('"msg":"downstream connection closed"'));
    const lines = logLines(s);
    const failed = lines.find((l) => l.msg === "upstream connect failed")!;
    expect(failed.errorClass).toBe("timeout");
    expect(failed.elapsedMs).toBeGreaterThanOrEqual(240);
    expect(lines.find((l) => l.msg === "downstream connection closed")?.reason).toBe(
      "connect_failed:timeout",
    );
    const m = await s.metrics();
    expect(
      m.get('tether_upstream_connect_failures_total{envoy_cluster_name="backend",class="timeout"}'),
    ).toBe(1);
    expect(await s.metric("envoy_cluster_upstream_cx_connect_timeout", "backend")).toBe(1);
  });

  it("classifies unreachable networks apart from refused and timeout", () => {
    // Loopback cannot produce EHOSTUNREACH; the classification itself is checked.
    expect(classifyConnectError({ code: "EHOSTUNREACH" })).toBe("unreachable");
    expect(classifyConnectError({ code: "ENETUNREACH" })).toBe("unreachable");
    expect(classifyConnectError({ code: "ECONNREFUSED" })).toBe("refused");
    expect(classifyConnectError({ code: "ETIMEDOUT" })).toBe("timeout");
  });
});
