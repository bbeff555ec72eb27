// Which upstream connection ends are signs of a server going away (passed to the cluster) and how
// they are counted: real sockets on 127.0.0.1.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../log.ts";
import { connectUpstream, type ConnectContext } from "./connect.ts";
import { Host } from "./host.ts";
import { ClusterStats, type ImmediateCheckReason } from "./stats.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function context(): ConnectContext & { signals: ImmediateCheckReason[] } {
  const signals: ImmediateCheckReason[] = [];
  return {
    clusterName: "backend",
    stats: new ClusterStats(),
    log: createLogger("silent"),
    connectTimeoutMs: 1000,
    keepAliveTimeS: undefined,
    signals,
    onUpstreamSignal: (_host, reason) => signals.push(reason),
  };
}

/** A server handing each accepted socket to the test. */
async function server(): Promise<{ port: number; accepted: () => Promise<net.Socket>; close(): void }> {
  const queue: net.Socket[] = [];
  const waiting: ((s: net.Socket) => void)[] = [];
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
    const w = waiting.shift();
    if (w) w(s);
    else queue.push(s);
  });
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const close = (): void => {
    for (const s of sockets) s.destroy();
    srv.close();
  };
  cleanups.push(close);
  return {
    port: (srv.address() as net.AddressInfo).port,
    accepted: () => {
      const s = queue.shift();
      return s ? Promise.resolve(s) : new Promise((resolve) => waiting.push(resolve));
    },
    close,
  };
}

function connect(ctx: ConnectContext, host: Host): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    connectUpstream(ctx, host, (err, socket) => {
      if (socket !== null) {
        cleanups.push(() => {
          socket.destroy();
        });
        resolve(socket);
      } else reject(err ?? new Error("no socket"));
    });
  });
}

function closed(socket: net.Socket): Promise<void> {
  return socket.closed
    ? Promise.resolve()
    : new Promise((resolve) => {
        socket.once("close", () => {
          resolve();
        });
      });
}

describe("upstream connection signals", () => {
  it("a server closing a connection we did not close: remote_close, counted as a remote destroy", async () => {
    const srv = await server();
    const ctx = context();
    const socket = await connect(ctx, new Host("127.0.0.1", srv.port, 0));
    socket.resume();
    (await srv.accepted()).end();
    await closed(socket);
    expect(ctx.signals).toEqual(["remote_close"]);
    expect(ctx.stats.counters.upstream_cx_destroy_remote).toBe(1);
    expect(ctx.stats.counters.upstream_cx_destroy_local).toBe(0);
  });

  it("a server resetting a connection: remote_reset", async () => {
    const srv = await server();
    const ctx = context();
    const socket = await connect(ctx, new Host("127.0.0.1", srv.port, 0));
    socket.resume();
    (await srv.accepted()).resetAndDestroy();
    await closed(socket);
    expect(ctx.signals).toEqual(["remote_reset"]);
    expect(ctx.stats.counters.upstream_cx_destroy_remote).toBe(1);
  });

  it("we close first (destroy, or our FIN answered by the server's): no signal, a local destroy", async () => {
    const srv = await server();
    const ctx = context();
    const host = new Host("127.0.0.1", srv.port, 0);
    const a = await connect(ctx, host);
    a.destroy();
    await closed(a);
    const b = await connect(ctx, host);
    b.resume();
    b.end(); // the server answers our FIN with its own
    await closed(b);
    expect(ctx.signals).toEqual([]);
    expect(ctx.stats.counters.upstream_cx_destroy_local).toBe(2);
    expect(ctx.stats.counters.upstream_cx_destroy_remote).toBe(0);
  });

  it("a refused connect: connect_refused, after the caller heard of the failure", async () => {
    const srv = await server();
    srv.close();
    const ctx = context();
    const order: string[] = [];
    ctx.onUpstreamSignal = (_host, reason) => order.push(reason);
    await new Promise<void>((resolve) => {
      connectUpstream(ctx, new Host("127.0.0.1", srv.port, 0), (err) => {
        order.push(err?.failureClass ?? "connected");
        setImmediate(resolve);
      });
    });
    expect(order).toEqual(["refused", "connect_refused"]);
    expect(ctx.stats.connectFailures.refused).toBe(1);
  });
});
