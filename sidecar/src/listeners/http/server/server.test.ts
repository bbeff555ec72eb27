// The downstream HTTP/1.1 server on real sockets: a keep-alive connection that stays idle gives its
// parser back and takes one again at its next request, and reads still stop for a body nobody reads.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { DownstreamRequest } from "./request.ts";
import type { DownstreamResponse } from "./response.ts";
import { Http1Server } from "./server.ts";
import { sessionOf, type Http1Handler } from "./session.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

async function until<T>(what: string, check: () => T | undefined | false, ms = 4000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Answers "ok"; a POST to /hold is held unread until the test reads it. */
class Handler implements Http1Handler {
  readonly sockets: net.Socket[] = [];
  held: { req: DownstreamRequest; res: DownstreamResponse } | undefined;
  onConnection(socket: net.Socket): void {
    this.sockets.push(socket);
  }
  onRequest(req: DownstreamRequest, res: DownstreamResponse): void {
    if (req.url === "/hold") {
      this.held = { req, res };
      return;
    }
    req.resume();
    res.writeHead(200, ["Content-Length", "2"]);
    res.end("ok");
  }
  onClientError(_err: NodeJS.ErrnoException, socket: net.Socket): void {
    socket.destroy();
  }
  onTimeout(): void {}
  onConnect(_req: DownstreamRequest, socket: net.Socket): void {
    socket.destroy();
  }
  onTimeoutCheck(): void {}
}

async function start(): Promise<{ handler: Handler; port: number }> {
  const handler = new Handler();
  const server = new Http1Server(handler, {
    headersTimeout: 0,
    requestTimeout: 0,
    maxHeaderSize: 16 * 1024,
    checkIntervalMs: 20,
  });
  await new Promise<void>((resolve) => server.net.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    server.close();
    server.closeAllConnections();
  });
  return { handler, port: (server.net.address() as net.AddressInfo).port };
}

function connect(port: number): { socket: net.Socket; received: () => string } {
  const socket = net.connect(port, "127.0.0.1");
  let text = "";
  socket.on("data", (c: Buffer) => (text += c.toString("latin1")));
  socket.on("error", () => undefined);
  cleanups.push(() => socket.destroy());
  return { socket, received: () => text };
}

describe("Http1Server idle connections", () => {
  it("gives an idle keep-alive connection's parser back and takes one at its next request", async () => {
    const { handler, port } = await start();
    const c = connect(port);
    c.socket.write("GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
    await until("the first answer", () => c.received().endsWith("\r\n\r\nok"));
    const session = await until("the session", () => sessionOf(handler.sockets[0] as net.Socket));
    await until("the idle connection to give its parser back", () => !session.hasParser);

    c.socket.write("GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
    await until("the second answer", () => c.received().split("\r\n\r\nok").length === 3);
    expect(session.hasParser).toBe(true);
  });

  it("still stops reading a body nobody reads after the connection was idle", async () => {
    const { handler, port } = await start();
    const c = connect(port);
    c.socket.write("GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
    await until("the first answer", () => c.received().endsWith("\r\n\r\nok"));
    const session = await until("the session", () => sessionOf(handler.sockets[0] as net.Socket));
    await until("the idle connection to give its parser back", () => !session.hasParser);

    const chunk = Buffer.alloc(1024 * 1024, 0x62);
    const size = 64 * chunk.length;
    c.socket.write(`POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: ${size}\r\n\r\n`);
    for (let i = 0; i < 64; i++) c.socket.write(chunk);
    const held = await until("the held request", () => handler.held);
    let last = -1;
    let still = 0;
    const taken = await until("the client's writes to stall", () => {
      const now = size - c.socket.writableLength;
      still = now === last ? still + 1 : 0;
      last = now;
      return still >= 50 ? now : undefined; // unchanged for 50 polls (~0.5 s)
    });
    // Kernel buffers and the request's 64 KiB hold a few MB; reading on would take it all.
    expect(taken).toBeLessThan(size / 4);

    let body = 0;
    held.req.on("data", (d: Buffer) => (body += d.length));
    held.req.on("end", () => {
      held.res.writeHead(200, ["Content-Length", String(String(body).length)]);
      held.res.end(String(body));
    });
    await until("the upload's answer", () => c.received().endsWith(`\r\n\r\n${size}`), 20_000);
  }, 30_000);
});
