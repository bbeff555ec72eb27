// When a downstream session counts a message as begun (its request timers run, the connection is not
// idle): from the read that held its first byte. And what a request the session hands on looks like.
// Real sockets on loopback; the handler keeps every response open (or answers it, when asked) and
// records the requests and errors it is told of.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { DownstreamRequest } from "./request.ts";
import { Http1Session, type Http1Handler } from "./session.ts";

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Seen {
  states: string[];
  errors: string[];
  requests: { method: string; url: string; headers: string[]; body: string; ended: boolean }[];
}

/**
 * A loopback server whose connections each get a session with `handler`, and a client connected to
 * it; both are closed after the test. Resolves with the client and the server side's socket and session.
 */
async function connected(
  handler: Http1Handler,
): Promise<{ client: net.Socket; server: () => { socket: net.Socket; session: Http1Session } | undefined }> {
  let accepted: { socket: net.Socket; session: Http1Session } | undefined;
  const owner = { handler, onSessionClosed: () => undefined };
  const server = net.createServer((socket) => {
    accepted = { socket, session: new Http1Session(socket, owner, 16384) };
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  client.on("error", () => undefined);
  closers.push(() => {
    client.destroy();
    server.close();
  });
  await new Promise((resolve) => client.once("connect", resolve));
  return { client, server: () => accepted };
}

/**
 * Writes each of `reads` (one write each, 50 ms apart) and returns the session's state after each,
 * and what it handed on (each response answered at once when `answer` is set).
 */
async function statesAfter(reads: readonly string[], answer = false): Promise<Seen> {
  const errors: string[] = [];
  const requests: Seen["requests"] = [];
  const { client, server } = await connected({
    onConnection: () => undefined,
    onRequest: (req: DownstreamRequest, res) => {
      const seen = { method: req.method, url: req.url, headers: [...req.rawHeaders], body: "", ended: false };
      requests.push(seen);
      req.on("data", (chunk: Buffer) => (seen.body += chunk.toString("latin1")));
      req.on("end", () => (seen.ended = true));
      if (answer) {
        res.writeHead(200, ["content-length", "0"]);
        res.end();
      }
    },
    onClientError: (err) => errors.push(err.code ?? err.message),
    onConnect: () => undefined,
    onTimeoutCheck: () => undefined,
  });
  const states: string[] = [];
  for (const read of reads) {
    client.write(read);
    await pause(50);
    const session = server()?.session;
    states.push(`${session?.active === true ? "begun" : "-"}${session?.idle === true ? " idle" : ""}`);
  }
  return { states, errors, requests };
}

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

describe("Http1Session: when a message counts as begun", () => {
  it("from a head's first read, also when the head completes or ends a pipelined read", async () => {
    const r = await statesAfter([GET("/a"), "GET /b HT", "TP/1.1\r\nHost: x\r\n\r\n"]);
    // /a completed in its read (answered later: not idle); /b began in its own read and stays begun.
    expect(r.states).toEqual(["-", "begun", "-"]);
    expect((await statesAfter([`${GET("/a")}GET /b HT`])).states).toEqual(["begun"]);
  });

  it("not from the CR and LF allowed between requests", async () => {
    const r = await statesAfter([GET("/a"), "\r\n", "\r\nGE"]);
    expect(r.states).toEqual(["-", "-", "begun"]);
  });

  it("through a chunked body spread over reads, and not after it", async () => {
    const r = await statesAfter([
      "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
      "0\r\n\r\n",
    ]);
    expect(r.states).toEqual(["begun", "-"]);
  });

  it("from a read whose head is malformed: until its 400 is out the connection is not idle", async () => {
    const first = await statesAfter(["G@T / HTTP/1.1\r\n"]);
    expect(first).toEqual({ states: ["begun"], errors: ["HPE_INVALID_METHOD"], requests: [] });
    // Behind an open response, in a read of its own (reported after that response, so no error yet).
    expect((await statesAfter([GET("/a"), "G@T / HTTP/1.1\r\n"])).states).toEqual(["-", "begun"]);
  });
});

describe("Http1Session: the requests it hands on", () => {
  it("drops a chunked request's trailers: they never reach the request after it", async () => {
    const r = await statesAfter(
      [
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Injected: yes\r\n\r\n" +
          GET("/next"),
      ],
      true,
    );
    expect(r.errors).toEqual([]);
    expect(r.requests).toEqual([
      {
        method: "POST",
        url: "/c",
        headers: ["Host", "x", "Transfer-Encoding", "chunked"],
        body: "abc",
        ended: true,
      },
      { method: "GET", url: "/next", headers: ["Host", "x"], body: "", ended: true },
    ]);
  });

  it("hands on every method node:http lists by its name (QUERY too)", async () => {
    const r = await statesAfter(
      ["QUERY /q HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", GET("/g")],
      true,
    );
    expect(r.requests.map((q) => `${q.method} ${q.url} ${q.body}`)).toEqual(["QUERY /q {}", "GET /g "]);
  });

  it("reads a head and body split over many reads, the same as in one", async () => {
    const whole = "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    const r = await statesAfter(whole.match(/.{1,7}/gs) ?? [], true);
    expect(r.requests).toEqual([
      {
        method: "POST",
        url: "/s",
        headers: ["Host", "x", "Content-Length", "5"],
        body: "hello",
        ended: true,
      },
    ]);
  });

  it("reads an h2c upgrade request's body when it comes in later reads, and nothing after it", async () => {
    const head =
      "POST /up HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 4\r\n\r\n";
    // Its response stays open, as a proxied one would until the upstream answers.
    const r = await statesAfter([head, "bo", "dyGET /after HTTP/1.1\r\nHost: x\r\n\r\n"]);
    expect(r.errors).toEqual([]);
    expect(r.requests.map((q) => `${q.method} ${q.url} ${q.body} ${String(q.ended)}`)).toEqual([
      "POST /up body true",
    ]);
  });
});

describe("Http1Session: a CONNECT's socket handed to the handler", () => {
  it("stops reading while nobody takes what the client sends", async () => {
    let handedOver = false;
    const { client, server } = await connected({
      onConnection: () => undefined,
      onRequest: () => undefined,
      onClientError: () => undefined,
      // Takes the socket and reads nothing from it (the listener only writes its 403 and closes).
      onConnect: () => (handedOver = true),
      onTimeoutCheck: () => undefined,
    });
    client.write("CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n");
    await pause(100);
    expect(handedOver).toBe(true);
    const flood = Buffer.alloc(1024 * 1024, 0x61);
    for (let k = 0; k < 8; k++) client.write(flood);
    await pause(500);
    // What the socket holds unread stays near its high-water mark, not the 8 MiB sent.
    expect(server()?.socket.readableLength ?? -1).toBeGreaterThan(0);
    expect(server()?.socket.readableLength ?? Infinity).toBeLessThan(512 * 1024);
  });
});
