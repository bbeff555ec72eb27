// NotificationSubscription against real loopback servers in this process: it opens the stream through
// the cluster, gives up on a server that never answers, and leaves no timer or socket behind on stop.
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseConfigText } from "../../config/load.ts";
import { decisionCacheSchema, type NotificationStreamConfig } from "@tether/envoy";
import { createLogger } from "../../log.ts";
import { ClusterManager } from "../../upstream/cluster-manager.ts";
import { DecisionCache } from "./decision-cache.ts";
import { NotificationSubscription } from "./notification-subscription.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) =>
        server.close(() => {
          r();
        }),
      ),
  );
  return (server.address() as AddressInfo).port;
}

async function clustersFor(port: number): Promise<ClusterManager> {
  const boot = parseConfigText(`
static_resources:
  clusters:
    - name: ps
      connect_timeout: 0.25s
      load_assignment:
        cluster_name: ps
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]
`).bootstrap;
  const clusters = new ClusterManager({ log: createLogger("silent"), random: () => 0.5, now: Date.now });
  clusters.commit(await clusters.prepare(boot.static_resources.clusters));
  cleanups.push(() => clusters.stop());
  return clusters;
}

function subscribe(
  clusters: ClusterManager,
  stream: Partial<NotificationStreamConfig> = {},
): { cache: DecisionCache; sub: NotificationSubscription } {
  const cache = new DecisionCache(
    decisionCacheSchema.parse({ "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache" }),
  );
  const config: NotificationStreamConfig = {
    cluster: "ps",
    path: "/notifications/stream",
    timeout: 5000,
    retry_back_off: { base_interval: 20, max_interval: 40 },
    ...stream,
  };
  const sub = new NotificationSubscription(
    cache,
    config,
    { clusters, log: createLogger("silent"), random: () => 0.5 },
    "test",
  );
  cleanups.push(() => {
    sub.stop();
  });
  return { cache, sub };
}

/** Polls `check` between event-loop turns (works while setTimeout is faked). */
async function settle(what: string, check: () => boolean, turns = 20_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (check()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

describe("NotificationSubscription", () => {
  it("opens the stream to the cluster's host on the configured path and applies its events", async () => {
    const streams: http.ServerResponse[] = [];
    const paths: string[] = [];
    const server = http.createServer((req, res) => {
      paths.push(`${req.method} ${req.url} host=${req.headers.host}`);
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.flushHeaders();
      streams.push(res);
    });
    const port = await listen(server);
    cleanups.push(() => {
      for (const s of streams) s.destroy();
    });
    const clusters = await clustersFor(port);
    const { cache, sub } = subscribe(clusters, { path: "/events" });
    sub.start();
    await until("connected", () => sub.stream.connected);
    expect(paths).toEqual([`GET /events host=127.0.0.1:${port}`]);
    expect(sub.upstream).toBe(`127.0.0.1:${port}`);
    // The connection is the cluster's: counted as an upstream connection of cluster ps.
    expect(clusters.get("ps")?.stats.upstream_cx_active).toBe(1);
    cache.store("k", 200, [], Buffer.from("allow"), "s1");
    streams[0]!.write('{"session":"s1"}\n');
    await until("invalidated", () => cache.size === 0);
  });

  it("gives up on a server that accepts and never answers, after `timeout`, and tries again", async () => {
    const held: net.Socket[] = [];
    const hung = net.createServer((socket) => held.push(socket));
    const port = await listen(hung);
    cleanups.push(() => {
      for (const s of held) s.destroy();
    });
    const { sub } = subscribe(await clustersFor(port), { timeout: 50 });
    sub.start();
    await until("two attempts timed out", () => sub.stream.stats.disconnects >= 2 && held.length >= 3);
    expect(sub.stream.stats.connects).toBe(0);
  });

  it("leaves no timer or socket behind on stop, whether open or waiting to reconnect", async () => {
    let serverSide = 0;
    const server = http.createServer((_req, res) => {
      res.writeHead(200);
      res.flushHeaders();
    });
    server.on("connection", (socket: net.Socket) => {
      serverSide++;
      socket.once("close", () => serverSide--);
    });
    const clusters = await clustersFor(await listen(server));
    const closed = net.createServer();
    const deadPort = await listen(closed);
    await new Promise<void>((r) =>
      closed.close(() => {
        r();
      }),
    );
    const deadClusters = await clustersFor(deadPort);
    // Only the code under test sets timers from here on; fake ones can be counted exactly.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const open = subscribe(clusters).sub;
      open.start();
      await settle("connected", () => open.stream.connected);
      expect(clusters.get("ps")?.stats.upstream_cx_active).toBe(1);
      expect(vi.getTimerCount()).toBe(0); // the response-head timer ended with the response
      open.stop();
      await settle(
        "both ends closed",
        () => serverSide === 0 && clusters.get("ps")?.stats.upstream_cx_active === 0,
      );
      expect(vi.getTimerCount()).toBe(0);

      // Nothing listens on deadPort: the attempt is refused and a reconnect timer waits.
      const waiting = subscribe(deadClusters).sub;
      waiting.start();
      await settle("refused once", () => waiting.stream.stats.disconnects === 1);
      expect(vi.getTimerCount()).toBe(1);
      waiting.stop();
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(60_000);
      expect(waiting.stream.stats.disconnects).toBe(1); // no attempt after stop
    } finally {
      vi.useRealTimers();
    }
  });
});
