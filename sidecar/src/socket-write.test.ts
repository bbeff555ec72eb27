import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { writeOut } from "./socket-write.ts";

interface Pair {
  readonly client: net.Socket;
  readonly peer: net.Socket;
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A connected loopback pair: `client` is written, `peer` is the accepted end. */
async function pair(): Promise<Pair> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  const client = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve) => client.once("connect", resolve));
  const peer = await accepted;
  closers.push(() => {
    client.destroy();
    peer.destroy();
    server.close();
  });
  return { client, peer };
}

/** Everything `peer` receives until the other side ends. */
function received(peer: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  peer.on("data", (c: Buffer) => chunks.push(c));
  return new Promise((resolve) =>
    peer.once("end", () => {
      resolve(Buffer.concat(chunks));
    }),
  );
}

describe("writeOut", () => {
  it("writes in order with socket.write and end, counts bytes, and calls back on a later tick", async () => {
    const { client, peer } = await pair();
    const got = received(peer);
    let calledBack = false;
    let returned = false;
    expect(
      writeOut(client, "head:", (err) => {
        expect(err).toBeNull();
        expect(returned).toBe(true);
        calledBack = true;
      }),
    ).toBe(true);
    returned = true;
    writeOut(client, Buffer.from("body;"));
    client.write("written;");
    writeOut(client, "after");
    client.end("!");
    expect((await got).toString()).toBe("head:body;written;after!");
    expect(calledBack).toBe(true);
    expect(client.bytesWritten).toBe("head:body;written;after!".length);
  });

  it("keeps its place behind corked writes", async () => {
    const { client, peer } = await pair();
    const got = received(peer);
    client.cork();
    client.write("first,");
    writeOut(client, "second,");
    client.uncork();
    writeOut(client, "third");
    client.end();
    expect((await got).toString()).toBe("first,second,third");
  });

  it("keeps every byte in order and reports back-pressure when the peer stops reading", async () => {
    const { client, peer } = await pair();
    peer.pause();
    const piece = 8 * 1024;
    let written = 0;
    // Up to 16 MiB, far beyond the loopback socket's buffers: writes start to wait in libuv, and
    // the caller must be told to stop (as socket.write tells it) instead of queueing without end.
    while (written < 2048 && writeOut(client, Buffer.alloc(piece, written % 251))) written++;
    expect(written).toBeLessThan(2048);
    written++; // the write that returned false was still taken
    await new Promise((resolve) => setTimeout(resolve, 50));
    const got = received(peer);
    const drained = new Promise((resolve) => client.once("drain", resolve));
    peer.resume();
    await drained;
    client.end();
    const all = await got;
    expect(all.length).toBe(piece * written);
    for (let i = 0; i < written; i++) {
      const at = i * piece;
      if (all[at] !== i % 251 || all[at + piece - 1] !== i % 251) throw new Error(`piece ${i} out of place`);
    }
    expect(client.bytesWritten).toBe(piece * written);
  });

  it("destroys the socket with the write's error when the peer is gone", async () => {
    const { client, peer } = await pair();
    const errored = new Promise<NodeJS.ErrnoException>((resolve) => client.once("error", resolve));
    // Reads stopped on the handle, as the HTTP session stops them for back-pressure: the reset is
    // found by the write, not by a read.
    (client as unknown as { _handle: { readStop(): number } })._handle.readStop();
    peer.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const called = new Promise<Error | null>((resolve) => writeOut(client, "too late", resolve));
    const err = await errored;
    expect(err.syscall).toBe("write");
    expect(["EPIPE", "ECONNRESET"]).toContain(err.code);
    expect(err.message).toBe(`write ${err.code}`);
    expect(client.destroyed).toBe(true);
    expect(await called).toBe(err);
  });
});
