// tcp_proxy through the built sidecar: relaying, closing connections to an endpoint that fails health
// checks (so the client reconnects and gets a fresh upstream), holding new connections while the
// endpoint restarts, and giving up after max_connect_attempts.
import { afterEach, describe, expect, it } from "vitest";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  healthCheckYaml,
  LineClient,
  Sidecar,
  tcpListenerYaml,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  tcpExtra: string,
  clusterExtra: string,
  endpoints = 2,
  check: "tcp" | "http" = "tcp",
): Promise<{ ups: Upstream[]; s: Sidecar; listen: number }> {
  const ports = await Promise.all(Array.from({ length: endpoints }, () => freePort()));
  const [listen, admin] = await Promise.all([freePort(), freePort()]);
  const ups: Upstream[] = [];
  for (const [i, p] of ports.entries()) {
    const u = await new Upstream(p, `t${i}`, "tcp").start();
    cleanups.push(() => u.kill());
    ups.push(u);
  }
  const yaml = bootstrapYaml(
    admin,
    tcpListenerYaml(listen, tcpExtra),
    clusterYaml({
      endpoints: ports.map((port) => ({ port })),
      healthCheck: healthCheckYaml(check, 0.2, 2, 1, 0.1),
      extra: clusterExtra,
    }),
  );
  const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
  cleanups.push(() => s.stop());
  await s.start();
  return { ups, s, listen };
}

describe("tcp_proxy", () => {
  it("closes connections to a hung endpoint within interval × unhealthy_threshold + interval; reconnects go to the other", async () => {
    const { ups, listen } = await setup(
      "",
      "      close_connections_on_host_health_failure: true\n",
      2,
      "http",
    );
    const clients = Array.from({ length: 6 }, () => new LineClient(listen, cleanups));
    cleanups.push(() => {
      clients.forEach((c) => c.socket.destroy());
    });
    const names = await Promise.all(clients.map((c) => c.ask("whoami")));
    expect(new Set(names)).toEqual(new Set(["t0", "t1"]));
    const onT0 = clients.filter((_, i) => names[i] === "t0");
    const onT1 = clients.filter((_, i) => names[i] === "t1");
    // A stopped process keeps its sockets open (no FIN, no RST): only health checking can tell.
    const t0 = ups[0]!;
    t0.pause();
    cleanups.push(() => {
      t0.resume();
    });
    const hungAt = performance.now();
    await Promise.all(onT0.map((c) => c.closed));
    // interval 0.2 s × unhealthy_threshold 2 + one interval, plus each check's 0.1 s timeout and slack.
    for (const c of onT0) expect(c.closedAt! - hungAt).toBeLessThan(200 * 2 + 200 + 2 * 100 + 250);
    for (const c of onT1) expect(c.closedAt).toBeUndefined();
    const again = new LineClient(listen, cleanups);
    cleanups.push(() => {
      again.socket.destroy();
    });
    expect(await again.ask("whoami")).toBe("t1");
  });

  it("relays until the endpoint is SIGKILLed, then a reconnect reaches the restarted endpoint", async () => {
    const { ups, listen } = await setup("", "      close_connections_on_host_health_failure: true\n", 1);
    const first = new LineClient(listen, cleanups);
    cleanups.push(() => {
      first.socket.destroy();
    });
    expect(await first.ask("whoami")).toBe("t0");
    await ups[0]!.kill();
    await first.closed;
    await ups[0]!.start();
    const second = await waitFor("a fresh connection through the sidecar", async () => {
      const c = new LineClient(listen, cleanups);
      cleanups.push(() => {
        c.socket.destroy();
      });
      return (await c.ask("whoami", 1000)) === "t0" ? c : undefined;
    });
    expect(await second.ask("hello")).toBe("hello");
  });

  it("holds a new connection while the only endpoint restarts (max_connect_attempts with back-off)", async () => {
    const { ups, s, listen } = await setup(
      "\n                max_connect_attempts: 40\n                backoff_options: { base_interval: 0.05s, max_interval: 0.2s }",
      "",
      1,
    );
    const u = ups[0]!;
    await u.kill();
    const client = new LineClient(listen, cleanups);
    cleanups.push(() => {
      client.socket.destroy();
    });
    await waitFor(
      "connect attempts failing",
      async () => (await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend")) >= 2,
    );
    await u.start();
    expect(await client.ask("whoami")).toBe("t0");
    expect(client.closedAt).toBeUndefined();
    const m = await s.metrics();
    expect(
      m.get('tether_upstream_connect_failures_total{envoy_cluster_name="backend",class="refused"}'),
    ).toBeGreaterThanOrEqual(2);
  });

  it("sends a PROXY protocol v2 header naming the real client (Broker)", async () => {
    const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const u = await new Upstream(pu, "pp", "tcp", undefined, ["--expect-proxy"]).start();
    cleanups.push(() => u.kill());
    const transport = `      transport_socket:
        name: envoy.transport_sockets.upstream_proxy_protocol
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport
          config: { version: V2 }
          transport_socket:
            name: envoy.transport_sockets.raw_buffer
            typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer }
`;
    const yaml = bootstrapYaml(
      admin,
      tcpListenerYaml(listen),
      clusterYaml({
        endpoints: [{ port: pu }],
        healthCheck: healthCheckYaml("tcp", 0.2, 2, 1, 0.1),
        extra: transport,
      }),
    );
    const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
    cleanups.push(() => s.stop());
    await s.start();
    const client = new LineClient(listen, cleanups);
    cleanups.push(() => {
      client.socket.destroy();
    });
    await new Promise((r) => client.socket.once("connect", r));
    expect(await client.ask("whoami")).toBe(`pp 127.0.0.1:${client.socket.localPort}`);
    expect(await client.ask("echo me")).toBe("echo me");
    // Health checks (LOCAL headers) kept the endpoint healthy.
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(1);
  });

  it("closes the downstream after max_connect_attempts fail", async () => {
    const { ups, s, listen } = await setup(
      "\n                max_connect_attempts: 3\n                backoff_options: { base_interval: 0.02s }",
      "",
      1,
    );
    await ups[0]!.kill();
    const client = new LineClient(listen, cleanups);
    await client.closed;
    expect(await s.metric("envoy_cluster_upstream_cx_connect_fail", "backend")).toBeGreaterThanOrEqual(3);
    const m = await s.metrics();
    expect(m.get('envoy_tcp_upstream_connect_attempts_exceeded{envoy_tcp_prefix="tcp"}')).toBe(1);
  });
});
