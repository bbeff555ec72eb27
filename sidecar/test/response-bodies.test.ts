// Response bodies through the built sidecar arrive byte for byte when the sidecar has to keep them:
// a slow client whose socket queue holds them, pipelined responses held behind a slow one. Upstream
// reads land in one buffer shared by every upstream connection (src/read-buffer.ts), so a body kept
// without a copy would be overwritten by the next read of any connection: each body here has its own
// byte pattern, spread over many reads, with other connections reading at the same time.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  httpListenerYaml,
  routeYaml,
  Sidecar,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The body for `seed`: no two seeds give the same bytes at the same offset for long. */
function pattern(seed: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff;
  return b;
}

/**
 * An upstream answering `GET /body?seed=N&size=S[&chunked][&delay=MS]` with pattern(N, S), written
 * in 16 KiB pieces a turn of the event loop apart (many reads on the sidecar's side), framed by
 * Content-Length or chunked. Keep-alive; requests on a connection are answered in order.
 */
async function patternUpstream(): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on("error", () => undefined);
    let pending = "";
    let chain = Promise.resolve();
    socket.on("data", (c: Buffer) => {
      pending += c.toString("latin1");
      for (;;) {
        const end = pending.indexOf("\r\n\r\n");
        if (end === -1) return;
        const line = pending.slice(0, pending.indexOf("\r\n"));
        pending = pending.slice(end + 4);
        chain = chain.then(() => answer(socket, new URL(line.split(" ")[1] ?? "/", "http://u")));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

async function answer(socket: net.Socket, url: URL): Promise<void> {
  const body = pattern(Number(url.searchParams.get("seed")), Number(url.searchParams.get("size")));
  const chunked = url.searchParams.has("chunked");
  const delay = Number(url.searchParams.get("delay") ?? 0);
  if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  const framing = chunked ? "transfer-encoding: chunked" : `content-length: ${body.length}`;
  socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n${framing}\r\n\r\n`);
  for (let at = 0; at < body.length; at += 16384) {
    const piece = body.subarray(at, Math.min(body.length, at + 16384));
    socket.write(
      chunked
        ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")])
        : piece,
    );
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (chunked) socket.write("0\r\n\r\n");
}

/** The bodies of the first `count` responses in `data` (Content-Length or chunked), or undefined while incomplete. */
function bodies(data: Buffer, count: number): Buffer[] | undefined {
  const out: Buffer[] = [];
  let at = 0;
  while (out.length < count) {
    const headEnd = data.indexOf("\r\n\r\n", at);
    if (headEnd === -1) return undefined;
    const head = data.toString("latin1", at, headEnd);
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    let p = headEnd + 4;
    const length = /\r\ncontent-length: (\d+)/i.exec(head);
    if (length !== null) {
      const end = p + Number(length[1]);
      if (data.length < end) return undefined;
      out.push(data.subarray(p, end));
      at = end;
      continue;
    }
    expect(head).toMatch(/\r\ntransfer-encoding: chunked/i);
    const parts: Buffer[] = [];
    for (;;) {
      const eol = data.indexOf("\r\n", p);
      if (eol === -1) return undefined;
      const size = parseInt(data.toString("latin1", p, eol), 16);
      if (size === 0) {
        if (data.length < eol + 4) return undefined;
        at = eol + 4;
        break;
      }
      if (data.length < eol + 2 + size + 2) return undefined;
      parts.push(data.subarray(eol + 2, eol + 2 + size));
      p = eol + 2 + size + 2;
    }
    out.push(Buffer.concat(parts));
  }
  return out;
}

/** A client connection that reads only when told to, collecting every byte. */
class Client {
  readonly socket: net.Socket;
  private readonly chunks: Buffer[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.on("error", () => undefined);
    this.socket.on("data", (c: Buffer) => this.chunks.push(c));
    cleanups.push(() => {
      this.socket.destroy();
    });
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Waits for `count` complete responses; fails after `ms`. */
  async responses(count: number, ms = 15_000): Promise<Buffer[]> {
    return await waitFor(`${count} complete responses`, () => bodies(this.data, count), ms);
  }
}

async function sidecar(): Promise<number> {
  const [upstream, listen, admin] = await Promise.all([patternUpstream(), freePort(), freePort()]);
  const yaml = bootstrapYaml(
    admin,
    httpListenerYaml(listen, [routeYaml({ timeout: "20s" })]),
    clusterYaml({ endpoints: [{ port: upstream }] }),
  );
  const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
  cleanups.push(() => s.stop());
  await s.start();
  return listen;
}

describe("response bodies the sidecar keeps", () => {
  it("reach slow clients intact while other connections' reads go on", async () => {
    const listen = await sidecar();
    const size = 8 * 1024 * 1024;
    const clients = [1, 2, 3, 4].map((seed) => {
      const c = new Client(listen);
      // Not read for a while: the sidecar's writes to it wait in its socket's queue.
      c.socket.pause();
      const framing = seed % 2 === 0 ? "&chunked" : "";
      c.socket.write(`GET /body?seed=${seed}&size=${size}${framing} HTTP/1.1\r\nHost: test\r\n\r\n`);
      return { seed, c };
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const { c } of clients) c.socket.resume();
    for (const { seed, c } of clients) {
      const [body] = await c.responses(1);
      expect(body?.length).toBe(size);
      expect(body?.equals(pattern(seed, size))).toBe(true);
    }
  });

  it("reach a pipelining client intact when held behind a slow response", async () => {
    const listen = await sidecar();
    const c = new Client(listen);
    // The first is late; the next three (one read, several reads, chunked) are ready before it and
    // wait in order, while the upstream connections carrying them go on reading.
    const asks = [
      { seed: 10, size: 2000, extra: "&delay=300" },
      { seed: 11, size: 1500, extra: "" },
      { seed: 12, size: 200_000, extra: "" },
      { seed: 13, size: 100_000, extra: "&chunked" },
    ];
    c.socket.write(
      asks
        .map((a) => `GET /body?seed=${a.seed}&size=${a.size}${a.extra} HTTP/1.1\r\nHost: test\r\n\r\n`)
        .join(""),
    );
    const got = await c.responses(asks.length);
    asks.forEach((a, i) => {
      expect(got[i]?.length).toBe(a.size);
      expect(got[i]?.equals(pattern(a.seed, a.size))).toBe(true);
    });
  });
});
