// The ADS client's own HTTP/2 + gRPC stream against servers it did not write: node:http2 (nghttp2)
// for flow control, CONTINUATION, GOAWAY and RST_STREAM, and raw TCP peers for what no real server
// sends. (go-control-plane's server and @grpc/grpc-js' are its peers in xds-check.test.ts and
// ads.test.ts.)
import http2 from "node:http2";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { openAdsStream } from "../src/h2stream.ts";
import type { AdsStreamHandle, StreamOptions } from "../src/h2stream.ts";
import { ADS_METHOD_PATH, decodeRequest, encodeResponse } from "../src/wire.ts";
import type { DiscoveryRequest, DiscoveryResponse } from "../src/wire.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

async function listen(server: net.Server | http2.Http2Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

const REQUEST: DiscoveryRequest = {
  version_info: "",
  node: { id: "ns/pod-0", cluster: "ns/Agent/web" },
  resource_names: [],
  type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  response_nonce: "",
};

interface Outcome {
  readonly opened: boolean;
  readonly messages: DiscoveryResponse[];
  readonly closed: Promise<string>;
  readonly handle: AdsStreamHandle;
}

function open(port: number, extra: Partial<StreamOptions> = {}): Outcome {
  const messages: DiscoveryResponse[] = [];
  let opened = false;
  let resolveClosed: (reason: string) => void = () => undefined;
  const closed = new Promise<string>((resolve) => {
    resolveClosed = resolve;
  });
  const handle = openAdsStream(
    {
      host: "127.0.0.1",
      port,
      keepalive: { timeMs: 0, timeoutMs: 0 },
      connectTimeoutMs: 5000,
      userAgent: "test",
      ...extra,
    },
    {
      onOpen: () => {
        opened = true;
      },
      onMessage: (m) => messages.push(m),
      onClose: (reason) => {
        resolveClosed(reason);
      },
    },
  );
  cleanup.push(() => {
    handle.cancel();
  });
  return {
    get opened() {
      return opened;
    },
    messages,
    closed,
    handle,
  };
}

/** A node:http2 server answering the ADS path with `respond(stream, firstRequest)`. */
async function h2Server(
  respond: (
    stream: http2.ServerHttp2Stream,
    request: DiscoveryRequest,
    headers: http2.IncomingHttpHeaders,
  ) => void,
): Promise<number> {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    let buffer = Buffer.alloc(0);
    let answered = false;
    stream.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (answered || buffer.length < 5 || buffer.length < 5 + buffer.readUInt32BE(1)) return;
      answered = true;
      respond(stream, decodeRequest(buffer.subarray(5, 5 + buffer.readUInt32BE(1))), headers);
    });
    stream.on("error", () => undefined);
  });
  return listen(server);
}

describe("the ADS client's HTTP/2 stream", () => {
  it("sends gRPC request headers and the request; takes 3 MiB messages past the initial window", async () => {
    let seen: { headers: http2.IncomingHttpHeaders; request: DiscoveryRequest } | undefined;
    const big = (nonce: string): DiscoveryResponse => ({
      version_info: "1",
      resources: [{ type_url: "t", value: Buffer.alloc(3 * 1024 * 1024, nonce) }],
      type_url: "t",
      nonce,
    });
    const port = await h2Server((stream, request, headers) => {
      seen = { headers, request };
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      // 6 MiB in all: more than the 4 MiB window we open with, so it needs our WINDOW_UPDATEs.
      stream.write(grpcFrame(encodeResponse(big("a"))));
      stream.write(grpcFrame(encodeResponse(big("b"))));
    });
    const s = open(port, { metadata: { authorization: "Bearer t0k" } });
    s.handle.write(REQUEST);
    const deadline = Date.now() + 10_000;
    while (s.messages.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.opened).toBe(true);
    expect(s.messages.map((m) => [m.nonce, m.resources[0]?.value.length])).toEqual([
      ["a", 3 * 1024 * 1024],
      ["b", 3 * 1024 * 1024],
    ]);
    expect(seen?.request).toEqual(REQUEST);
    expect(seen?.headers).toMatchObject({
      ":method": "POST",
      ":path": ADS_METHOD_PATH,
      ":scheme": "http",
      ":authority": `127.0.0.1:${port}`,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: "Bearer t0k",
      "user-agent": "test",
    });
  });

  it("reads trailers spread over CONTINUATION frames as the call's status", async () => {
    const message = "x".repeat(40_000);
    const port = await h2Server((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => {
        stream.sendTrailers({ "grpc-status": "14", "grpc-message": `going%20away ${message}` });
      });
      stream.end();
    });
    const s = open(port);
    s.handle.write(REQUEST);
    expect(await s.closed).toBe(`UNAVAILABLE: going away ${message}`);
    expect(s.opened).toBe(true);
  });

  it("tells a GOAWAY's code and debug data, and a RST_STREAM's code", async () => {
    const goaway = await h2Server((stream) => {
      stream.session?.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from("too_many_pings"));
    });
    const a = open(goaway);
    a.handle.write(REQUEST);
    expect(await a.closed).toBe(
      "the server closed the connection (GOAWAY, ENHANCE_YOUR_CALM: too_many_pings)",
    );
    const reset = await h2Server((stream) => {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    });
    const b = open(reset);
    b.handle.write(REQUEST);
    expect(await b.closed).toBe("the server reset the stream (REFUSED_STREAM)");
  });

  it("says so when the server does not speak HTTP/2", async () => {
    const port = await listen(
      net.createServer((socket) => {
        socket.once("data", () => socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
      }),
    );
    const s = open(port);
    expect(await s.closed).toMatch(
      /^HTTP\/2 protocol error: the server did not answer with HTTP\/2 \(first bytes "HTTP\/1\.1/,
    );
  });

  it("ends the connection, never the process, on frames no server may send", async () => {
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const cases: [string, Buffer, RegExp][] = [
      [
        "HEADERS on a stream never opened",
        Buffer.from([0, 0, 1, 1, 4, 0, 0, 0, 3, 0x82]),
        /HEADERS on stream 3/,
      ],
      ["a frame over 16384 bytes", Buffer.from([0, 0x40, 1, 0, 0, 0, 0, 0, 1]), /a frame of 16385 bytes/],
      ["an HPACK index not in the table", Buffer.from([0, 0, 1, 1, 4, 0, 0, 0, 1, 0xbe]), /index 62/],
      ["a WINDOW_UPDATE of 0", Buffer.from([0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]), /WINDOW_UPDATE of 0/],
      ["DATA before the response headers", Buffer.from([0, 0, 1, 0, 0, 0, 0, 0, 1, 0]), /DATA before/],
      ["PUSH_PROMISE", Buffer.from([0, 0, 4, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2]), /PUSH_PROMISE/],
    ];
    for (const [what, bytes, reason] of cases) {
      const port = await listen(
        net.createServer((socket) => {
          socket.on("error", () => undefined);
          socket.once("data", () => socket.write(Buffer.concat([settings, bytes])));
        }),
      );
      const s = open(port);
      expect(await s.closed, what).toMatch(reason);
    }
  });
});
describe("the ADS client's HTTP/2 stream against a hostile or odd server", () => {
  const raw = (type: number, flags: number, stream: number, payload: Buffer | number[] = []): Buffer => {
    const body = Buffer.from(payload);
    const head = Buffer.alloc(9);
    head.writeUIntBE(body.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    return Buffer.concat([head, body]);
  };
  const SETTINGS = raw(4, 0, 0);
  const OK_HEADERS = raw(1, 4, 1, [0x88]); // :status 200 (static index 8), END_HEADERS

  /** A raw server: after the client's first bytes, `serve(socket)`; it reports how the client closed. */
  async function rawPeer(serve: (socket: net.Socket) => void): Promise<number> {
    return listen(
      net.createServer((socket) => {
        socket.on("error", () => undefined);
        socket.once("data", () => {
          serve(socket);
        });
      }),
    );
  }

  it("ends a flood of empty DATA or CONTINUATION frames", async () => {
    const emptyData = await rawPeer((socket) => {
      socket.write(Buffer.concat([SETTINGS, OK_HEADERS, ...new Array<Buffer>(2000).fill(raw(0, 0, 1))]));
    });
    expect(await open(emptyData).closed).toMatch(/more than 1000 empty frames in a row/);
    const continuation = await rawPeer((socket) => {
      socket.write(
        Buffer.concat([SETTINGS, raw(1, 0, 1, [0x88]), ...new Array<Buffer>(2000).fill(raw(9, 0, 1))]),
      );
    });
    expect(await open(continuation).closed).toMatch(/more than 1000 empty frames in a row/);
  });

  it("ends floods of informational (1xx) answers and of padding-only DATA frames", async () => {
    const informational = await rawPeer((socket) => {
      const info = raw(1, 4, 1, [0x08, 3, 0x31, 0x30, 0x30]); // :status 100, END_HEADERS
      socket.write(Buffer.concat([SETTINGS, ...new Array<Buffer>(100).fill(info)]));
    });
    expect(await open(informational).closed).toMatch(/more than 8 informational \(1xx\) answers/);
    const padding = await rawPeer((socket) => {
      const padded = raw(0, 0x8, 1, [4, 0, 0, 0, 0]); // PADDED: 4 bytes of padding, no data
      socket.write(Buffer.concat([SETTINGS, OK_HEADERS, ...new Array<Buffer>(2000).fill(padded)]));
    });
    expect(await open(padding).closed).toMatch(/more than 1000 empty frames in a row/);
  });

  it("lets requests wait for a window the server holds at 0, up to 64 MiB of them", async () => {
    // SETTINGS_INITIAL_WINDOW_SIZE 0: no DATA may go out until a WINDOW_UPDATE, which never comes.
    const port = await rawPeer((socket) => {
      socket.write(Buffer.concat([raw(4, 0, 0, [0, 4, 0, 0, 0, 0]), OK_HEADERS]));
    });
    const s = open(port);
    let closedWith: string | undefined;
    void s.closed.then((reason) => (closedWith = reason));
    while (!s.opened) await new Promise((r) => setTimeout(r, 10));
    const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i}`.padEnd(1000, "x"));
    // 12 MB of ACKs and NACKs held back by the window is not a server that stopped reading.
    for (let i = 0; i < 3; i++) s.handle.write({ ...REQUEST, resource_names: names(4000) });
    await new Promise((r) => setTimeout(r, 300));
    expect(closedWith).toBeUndefined();
    for (let i = 0; i < 15; i++) s.handle.write({ ...REQUEST, resource_names: names(4000) });
    expect(await s.closed).toMatch(/^the server's flow-control window has held back \d+ bytes of requests$/);
  });

  it("ends the connection when the server sends PINGs but reads none of the answers", async () => {
    const port = await rawPeer((socket) => {
      socket.pause(); // reads nothing more: our PING ACKs pile up
      const ping = Buffer.concat(new Array<Buffer>(4096).fill(raw(6, 0, 0, Buffer.alloc(8))));
      let sent = 0;
      const more = (): void => {
        while (!socket.destroyed && sent < 64 * 1024 * 1024) {
          sent += ping.length;
          if (!socket.write(ping)) {
            socket.once("drain", more);
            return;
          }
        }
      };
      socket.write(SETTINGS);
      more();
    });
    expect(await open(port).closed).toMatch(/^the server does not read what we send \(\d+ bytes queued\)$/);
  });

  it("puts a message together however it is split: 1-byte DATA frames, 1-byte TCP chunks", async () => {
    const response: DiscoveryResponse = {
      version_info: "7",
      resources: [{ type_url: "t", value: Buffer.alloc(3000, 7) }],
      type_url: "t",
      nonce: "n",
    };
    const message = grpcFrame(encodeResponse(response));
    const frames = [...message].map((b) => raw(0, 0, 1, [b]));
    const port = await rawPeer((socket) => {
      const all = Buffer.concat([SETTINGS, OK_HEADERS, ...frames]);
      let at = 0;
      const drip = (): void => {
        // The first 20 000 bytes a byte at a time, the rest at once.
        if (at < 20_000) {
          socket.write(all.subarray(at, at + 1));
          at++;
          setImmediate(drip);
        } else {
          socket.write(all.subarray(at));
        }
      };
      drip();
    });
    const s = open(port);
    const deadline = Date.now() + 20_000;
    while (s.messages.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.messages).toEqual([response]);
  });

  it("skips an informational (1xx) answer before the response", async () => {
    const port = await rawPeer((socket) => {
      // :status 100 as a literal with the static name (index 8): 0x08, length 3, "100".
      socket.write(Buffer.concat([SETTINGS, raw(1, 4, 1, [0x08, 3, 0x31, 0x30, 0x30]), OK_HEADERS]));
    });
    const s = open(port);
    const deadline = Date.now() + 5000;
    while (!s.opened && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.opened).toBe(true);
  });
});
