// The pool and its connections against a real socket server (no sidecar): reuse, queueing behind
// max connections, a server closing an idle connection, close-delimited bodies, back-pressure and
// streamed request bodies.
import net from "node:net";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { Pool, type ExchangeHandler, type UpstreamConnection, type UpstreamRequest } from "./pool.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

interface RawServer {
  readonly port: number;
  /** Each connection's received bytes, in order of connection. */
  readonly received: string[];
  readonly sockets: net.Socket[];
}

/** A server that calls `answer` for each complete request head (and body) on a connection. */
async function rawServer(
  answer: (socket: net.Socket, request: string, index: number) => void,
): Promise<RawServer> {
  const received: string[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    const index = received.length;
    received.push("");
    sockets.push(socket);
    socket.on("error", () => undefined);
    let pending = "";
    socket.on("data", (c: Buffer) => {
      received[index] = (received[index] ?? "") + c.toString("latin1");
      pending += c.toString("latin1");
      for (;;) {
        const end = pending.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = pending.slice(0, end);
        let used = end + 4;
        if (/transfer-encoding: chunked/i.test(head)) {
          const last = pending.indexOf("0\r\n\r\n", used);
          if (last === -1) return;
          used = last + 5;
        } else {
          const m = /content-length: (\d+)/i.exec(head);
          used += m === null ? 0 : Number(m[1]);
          if (pending.length < used) return;
        }
        const request = pending.slice(0, used);
        pending = pending.slice(used);
        answer(socket, request, index);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const address = server.address() as net.AddressInfo;
  return { port: address.port, received, sockets };
}

function pool(
  port: number,
  options: Partial<{ connections: number; maxRequests: number; idleTimeoutMs: number }> = {},
): Pool {
  const p = new Pool({
    connections: options.connections ?? 4,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    keepAliveThresholdMs: 1000,
    maxRequestsPerConnection: options.maxRequests ?? 0,
    maxHeadBytes: 16384,
    defaultHost: `127.0.0.1:${port}`,
    connect: (callback) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        callback(null, socket);
      });
      socket.once("error", (err) => {
        callback(err, null);
      });
    },
  });
  cleanups.push(() => void p.destroy());
  return p;
}

interface Outcome {
  status: number;
  body: string;
  error: Error | undefined;
  conn: UpstreamConnection | undefined;
  handler: ExchangeHandler | undefined;
}

/** Sends `req` and resolves with what came back; `onData` may pause the connection. */
async function send(
  p: Pool,
  req: Partial<UpstreamRequest>,
  onData?: (conn: UpstreamConnection, chunk: Buffer) => void,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { status: 0, body: "", error: undefined, conn: undefined, handler: undefined };
    const handler: ExchangeHandler = {
      onRequestStart: (conn) => {
        out.conn = conn;
        return true;
      },
      onResponseStart: (_c, status) => {
        if (status >= 200) out.status = status;
      },
      onResponseData: (conn, chunk) => {
        out.body += chunk.toString("latin1");
        onData?.(conn, chunk);
      },
      onResponseEnd: () => {
        resolve(out);
      },
      onResponseError: (_c, err) => {
        out.error = err;
        resolve(out);
      },
    };
    out.handler = handler;
    p.dispatch(
      { method: "GET", path: "/", headers: ["host", "a.test"], body: null, contentLength: undefined, ...req },
      handler,
    );
  });
}

const OK = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

async function pause(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once `done()` holds; fails after `ms`. */
async function until(done: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`not done within ${ms} ms`);
    await pause(5);
  }
}

describe("Pool", () => {
  it("reuses one keep-alive connection and writes each request head whole", async () => {
    const server = await rawServer((socket) => socket.write(OK));
    const p = pool(server.port);
    for (let i = 0; i < 3; i++)
      expect(await send(p, { path: `/r${i}` })).toMatchObject({ status: 200, body: "ok" });
    expect(server.received.length).toBe(1);
    expect(server.received[0]).toBe(
      [0, 1, 2].map((i) => `GET /r${i} HTTP/1.1\r\nhost: a.test\r\nconnection: keep-alive\r\n\r\n`).join(""),
    );
  });

  it("queues requests beyond max connections and serves them in order on the freed connection", async () => {
    const server = await rawServer((socket) => setTimeout(() => socket.write(OK), 20));
    const p = pool(server.port, { connections: 1 });
    const results = await Promise.all([
      send(p, { path: "/a" }),
      send(p, { path: "/b" }),
      send(p, { path: "/c" }),
    ]);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(server.received.length).toBe(1);
    expect(server.received[0]?.match(/^GET \/\w/gm)).toEqual(["GET /a", "GET /b", "GET /c"]);
  });

  it("drops a pooled connection the server closed while idle; the next request opens a new one", async () => {
    const server = await rawServer((socket) => socket.write(OK));
    const p = pool(server.port);
    expect((await send(p, {})).status).toBe(200);
    server.sockets[0]?.end();
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (p.size === 0) resolve();
        else setTimeout(check, 5);
      };
      check();
    });
    expect(await send(p, {})).toMatchObject({ status: 200, error: undefined });
    expect(server.received.length).toBe(2);
  });

  it("closes a connection idle for the idle timeout, and never with idle timeout 0", async () => {
    const server = await rawServer((socket) => socket.write(OK));
    const p = pool(server.port, { idleTimeoutMs: 150 });
    expect((await send(p, {})).status).toBe(200);
    // A request inside the idle timeout keeps the connection and moves its deadline.
    await pause(100);
    expect((await send(p, {})).status).toBe(200);
    await pause(100);
    expect(p.size).toBe(1);
    await until(() => p.size === 0, 2000);
    expect(server.received.length).toBe(1);

    const forever = await rawServer((socket) => socket.write(OK));
    const q = pool(forever.port, { idleTimeoutMs: 0 });
    expect((await send(q, {})).status).toBe(200);
    await pause(300);
    expect(q.size).toBe(1);
    expect((await send(q, {})).status).toBe(200);
    expect(forever.received.length).toBe(1);
  });

  it("closes an idle connection by the server's Keep-Alive hint when it is shorter, first sent on a later response", async () => {
    // timeout=2 less the pool's 1 s threshold: idle for 1 s at most, from the response that said so.
    let answered = 0;
    const server = await rawServer((socket) => {
      const hint = answered++ === 0 ? "" : "keep-alive: timeout=2\r\n";
      socket.write(`HTTP/1.1 200 OK\r\n${hint}content-length: 2\r\n\r\nok`);
    });
    const p = pool(server.port);
    expect((await send(p, {})).status).toBe(200);
    expect((await send(p, {})).status).toBe(200);
    const idleFrom = performance.now();
    await until(() => p.size === 0, 3000);
    expect(performance.now() - idleFrom).toBeGreaterThanOrEqual(950);
    expect(server.received.length).toBe(1);
  });

  it("never reuses a connection whose body ran until close, or after max requests", async () => {
    const server = await rawServer((socket, _r, index) => {
      if (index === 0) socket.end("HTTP/1.1 200 OK\r\n\r\nuntil close");
      else socket.write(OK);
    });
    const p = pool(server.port, { maxRequests: 2 });
    expect(await send(p, {})).toMatchObject({ status: 200, body: "until close" });
    expect(await send(p, {})).toMatchObject({ status: 200, body: "ok" });
    expect(await send(p, {})).toMatchObject({ status: 200, body: "ok" });
    expect(await send(p, {})).toMatchObject({ status: 200, body: "ok" });
    // 1 close-delimited; 2 requests each on the next two (the second saying connection: close).
    expect(server.received.length).toBe(3);
    expect(server.received[1]).toContain("connection: close\r\n\r\n");
  });

  it("reads the next response on a connection paused for back-pressure when the last one completed", async () => {
    const server = await rawServer((socket) => socket.write(OK));
    const p = pool(server.port);
    const first = await send(p, {}, (conn) => {
      conn.pause();
    });
    expect(first.status).toBe(200);
    const second = await send(p, {});
    expect(second).toMatchObject({ status: 200, body: "ok" });
    expect(second.conn).toBe(first.conn);
  });

  it("resumes a paused connection for its own exchange only, not for one that ended on it before", async () => {
    const server = await rawServer((socket, request) => {
      if (!request.startsWith("GET /second ")) {
        socket.write(OK);
        return;
      }
      socket.write("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab");
      setTimeout(() => socket.write("cd"), 50);
    });
    const p = pool(server.port);
    // The first pauses on its last bytes (a slow client) and completes in the same read.
    const first = await send(p, {}, (conn) => {
      conn.pause();
    });
    let paused: UpstreamConnection | undefined;
    const second = send(p, { path: "/second" }, (conn) => {
      if (paused !== undefined) return;
      paused = conn;
      conn.pause();
    });
    await until(() => paused !== undefined, 2000);
    expect(paused).toBe(first.conn);
    let done = false;
    void second.then(() => (done = true));
    // The first exchange's client drains late: its resume must not lift the second one's pause.
    paused?.resumeFor(first.handler as ExchangeHandler);
    await pause(200);
    expect(done).toBe(false);
    paused?.resume();
    expect(await second).toMatchObject({ status: 200, body: "abcd" });
  });

  it("reports a body delimited by the close that a reset cut short as an error, not a response", async () => {
    const server = await rawServer((socket) => {
      socket.write("HTTP/1.1 200 OK\r\n\r\npartial");
      setTimeout(() => socket.resetAndDestroy(), 50);
    });
    const p = pool(server.port);
    const out = await send(p, {});
    expect(out.body).toBe("partial");
    expect(out.error?.message).toMatch(/ECONNRESET/);
  });

  it("streams a body without a declared length chunked, and one with a length as is", async () => {
    const server = await rawServer((socket) => socket.write(OK));
    const p = pool(server.port);
    const body = new PassThrough();
    const pending = send(p, { method: "POST", body });
    body.write("abc");
    body.end("de");
    expect((await pending).status).toBe(200);
    const sized = new PassThrough();
    const pending2 = send(p, { method: "PUT", body: sized, contentLength: 4 });
    sized.end("wxyz");
    expect((await pending2).status).toBe(200);
    expect(server.received[0]).toContain(
      "transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    expect(server.received[0]).toContain("content-length: 4\r\nconnection: keep-alive\r\n\r\nwxyz");
  });

  it("refuses a request it cannot write before any connection is made", async () => {
    const server = await rawServer((socket) => socket.write(OK));
    const p = pool(server.port);
    const bad = await send(p, { path: "/a b" });
    expect(bad.error).toMatchObject({
      code: "TETHER_ERR_UPSTREAM_REQUEST_INVALID",
      message: "invalid request path",
    });
    const twoHosts = await send(p, { headers: ["Host", "a", "host", "b"] });
    expect(twoHosts.error?.message).toBe("duplicate host header");
    const injected = await send(p, { headers: ["x-a", "1\r\nx-b: 2"] });
    expect(injected.error?.message).toBe("invalid x-a header");
    // Entries after the ones the downstream parser vouched for are checked as ever.
    const added = await send(p, { headers: ["x-a", "1", "x-b", "2\n"], checkedHeaders: 2 });
    expect(added.error?.message).toBe("invalid x-b header");
    const badName = await send(p, { headers: ["x-a", "1", "x b", "2"], checkedHeaders: 2 });
    expect(badName.error?.message).toBe("invalid header name");
    expect(server.received.length).toBe(0);
    expect(p.size).toBe(0);
  });
});
