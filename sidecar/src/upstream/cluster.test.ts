// A cluster against a real server on 127.0.0.1: a sign that the server is going away checks it at
// once; a refused check takes it out of rotation at once, while its connections are cut
// (close_connections_on_host_health_failure) only when unhealthy_threshold checks have failed.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { clusterSchema } from "@tether/envoy";
import { createLogger } from "../log.ts";
import { Cluster } from "./cluster.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("cluster: a server going away", () => {
  it("is out of rotation after one refused check; its sessions are cut at unhealthy_threshold", async () => {
    const server = net.createServer((s) => s.on("error", () => undefined));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    cleanups.push(() => {
      server.close();
    });
    const cluster = new Cluster(
      clusterSchema.parse({
        name: "backend",
        type: "STATIC",
        connect_timeout: "0.25s",
        load_assignment: {
          cluster_name: "backend",
          endpoints: [
            {
              lb_endpoints: [
                { endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } },
              ],
            },
          ],
        },
        health_checks: [
          {
            timeout: "0.1s",
            interval: "0.2s",
            no_traffic_interval: "0.2s",
            unhealthy_threshold: 3,
            healthy_threshold: 1,
            tcp_health_check: {},
          },
        ],
        close_connections_on_host_health_failure: true,
      }),
      { log: createLogger("silent"), random: Math.random, now: Date.now },
    );
    cleanups.push(() => cluster.stop());
    await cluster.start();
    await cluster.warmed();
    const host = cluster.allHosts()[0]!;
    expect(host.isHealthy()).toBe(true);
    const cut: string[] = [];
    host.sessions.add({ close: (reason) => cut.push(reason) });

    server.close(); // draining: no new connections, the session stays
    const attempts = cluster.stats.counters.health_check_attempt;
    cluster.onUpstreamSignal(host, "connect_refused");
    expect(cluster.stats.counters.health_check_attempt).toBe(attempts + 1);
    expect(cluster.stats.immediateHealthChecks.connect_refused).toBe(1);
    await until("the host out of rotation", () => !host.isHealthy());
    expect(cluster.stats.counters.health_check_failure).toBe(1);
    expect(cluster.membership().healthy).toBe(0);
    expect(cut).toEqual([]);

    await until("the sessions cut", () => cut.length > 0);
    expect(cut).toEqual(["host_unhealthy"]);
    expect(cluster.stats.counters.health_check_failure).toBe(3);
  });
});
