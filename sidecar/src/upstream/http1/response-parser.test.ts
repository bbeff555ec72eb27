import { describe, expect, it } from "vitest";
import { ResponseParser, type ResponseSink } from "./response-parser.ts";

interface Recorded {
  interim: number[];
  status: number;
  headers: string[];
  /** The headers that go on to the client, as strings and as the bytes relayed. */
  relayed: string[];
  relayedBytes: string;
  hasDate: boolean;
  hasLength: boolean;
  contentLength: number;
  body: string;
  complete: boolean | undefined;
  error: string | undefined;
}

/** Feeds `parts` (each its own read) to a parser and records what it reported. */
function parse(
  parts: readonly string[],
  opts: { head?: boolean; maxHead?: number; eof?: boolean } = {},
): Recorded {
  const r: Recorded = {
    interim: [],
    status: 0,
    headers: [],
    relayed: [],
    relayedBytes: "",
    hasDate: false,
    hasLength: false,
    contentLength: -2,
    body: "",
    complete: undefined,
    error: undefined,
  };
  const sink: ResponseSink = {
    onInterim: (status) => r.interim.push(status),
    onHead: (status, head, contentLength) => {
      r.status = status;
      r.headers = head.list();
      r.relayed = head.relayedList();
      const bytes = Buffer.alloc(head.relayedLength());
      expect(head.writeRelayed(bytes, 0)).toBe(bytes.length);
      r.relayedBytes = bytes.toString("latin1");
      r.hasDate = head.hasDate;
      r.hasLength = head.hasLength;
      r.contentLength = contentLength;
    },
    onBody: (chunk) => (r.body += chunk.toString("latin1")),
    onComplete: (reusable) => (r.complete = reusable),
  };
  const parser = new ResponseParser(sink, opts.maxHead ?? 16384);
  parser.reset(opts.head === true);
  for (const part of parts) {
    const err = parser.execute(Buffer.from(part, "latin1"));
    if (err !== undefined) {
      r.error = err.message;
      return r;
    }
  }
  if (opts.eof === true) r.error = parser.finish()?.message;
  return r;
}

/** Every split of `text` into two reads gives the same result as one read. */
function everySplit(text: string): Recorded[] {
  const out: Recorded[] = [];
  for (let i = 1; i < text.length; i++) out.push(parse([text.slice(0, i), text.slice(i)]));
  return out;
}

describe("ResponseParser framing", () => {
  it("reads a Content-Length body and keeps the connection", () => {
    const r = parse(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b \r\n\r\nhello"]);
    expect(r).toMatchObject({ status: 200, contentLength: 5, body: "hello", complete: true });
    expect(r.headers).toEqual(["content-length", "5", "x-a", "b"]);
  });

  it("gives the same answer however the bytes are split across reads", () => {
    const text =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
    for (const r of everySplit(text)) expect(r).toMatchObject({ status: 200, body: "abcde", complete: true });
    for (const r of everySplit("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"))
      expect(r).toMatchObject({ body: "body", complete: true });
  });

  it("reads a body without framing until the connection closes, and never reuses it", () => {
    const r = parse(["HTTP/1.1 200 OK\r\n\r\nsome", " more"], { eof: true });
    expect(r).toMatchObject({ body: "some more", complete: false, error: undefined });
  });

  it("has no body for HEAD, 204 and 304 whatever the headers say", () => {
    expect(parse(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], { head: true })).toMatchObject({
      body: "",
      complete: true,
    });
    expect(parse(["HTTP/1.1 204 No Content\r\n\r\n"])).toMatchObject({ status: 204, complete: true });
    expect(parse(["HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n"])).toMatchObject({
      complete: true,
    });
  });

  it("does not reuse a connection after Connection: close, an HTTP/1.0 response, or extra bytes", () => {
    expect(parse(["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"]).complete).toBe(false);
    expect(parse(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"]).complete).toBe(false);
    expect(parse(["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"]).complete).toBe(
      true,
    );
    // A second response nobody asked for: where the first one ended is in doubt.
    expect(parse(["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n"]).complete).toBe(
      false,
    );
  });

  it("finds close and keep-alive among a Connection header's options, in any case and any header", () => {
    const reused = (head: string): boolean | undefined =>
      parse([`${head}Content-Length: 0\r\n\r\n`]).complete;
    expect(reused("HTTP/1.1 200 OK\r\nConnection: X-Opt , CLOSE\r\n")).toBe(false);
    expect(reused("HTTP/1.1 200 OK\r\nConnection: x-opt\r\nconnection:close\r\n")).toBe(false);
    expect(reused("HTTP/1.1 200 OK\r\nConnection: closed, x-close\r\n")).toBe(true);
    expect(reused("HTTP/1.0 200 OK\r\nConnection: Upgrade,\tKeep-Alive\r\n")).toBe(true);
    expect(reused("HTTP/1.0 200 OK\r\nConnection: keep-alive-ish\r\n")).toBe(false);
    expect(reused("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n")).toBe(true);
  });

  it("reads a status line with or without a reason phrase", () => {
    expect(parse(["HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"])).toMatchObject({
      status: 200,
      complete: true,
    });
    expect(parse(["HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"])).toMatchObject({
      status: 404,
      complete: true,
    });
    expect(parse(["HTTP/1.0 503 Service Unavailable\r\n\r\n"], { eof: true })).toMatchObject({
      status: 503,
      complete: false,
    });
  });

  it("lower-cases header names and keeps values as sent, without surrounding whitespace", () => {
    const r = parse([
      "HTTP/1.1 200 OK\r\nX-UPPER: MiXed\r\nX-Empty:\r\nX-Tab:\t v \t\r\nContent-Length: 0\r\n\r\n",
    ]);
    expect(r.headers).toEqual(["x-upper", "MiXed", "x-empty", "", "x-tab", "v", "content-length", "0"]);
  });

  it("relays every header but the hop-by-hop ones and a repeated Content-Length, names lower-cased", () => {
    const r = parse([
      "HTTP/1.1 200 OK\r\nX-UPPER: MiXed\r\nConnection: keep-alive, X-Drop\r\nKeep-Alive: timeout=5\r\n" +
        "Content-Length: 2\r\nDATE: Mon\r\nTE: x\r\nUpgrade: y\r\nTrailer: z\r\nExpect: e\r\n" +
        "Proxy-Connection: p\r\nHTTP2-Settings: s\r\ncontent-length:  2 \r\nX-Tab:\t v \t\r\n\r\nok",
    ]);
    expect(r).toMatchObject({ status: 200, body: "ok", complete: true, hasDate: true, hasLength: true });
    expect(r.relayed).toEqual(["x-upper", "MiXed", "content-length", "2", "date", "Mon", "x-tab", "v"]);
    expect(r.relayedBytes).toBe("x-upper: MiXed\r\ncontent-length: 2\r\ndate: Mon\r\nx-tab: v\r\n");
    // Listed: everything the upstream sent but the repeated Content-Length.
    expect(r.headers.filter((_, i) => i % 2 === 0)).toEqual([
      "x-upper",
      "connection",
      "keep-alive",
      "content-length",
      "date",
      "te",
      "upgrade",
      "trailer",
      "expect",
      "proxy-connection",
      "http2-settings",
      "x-tab",
    ]);
  });

  it("relays nothing of a head without headers, and says it has no Date or Content-Length", () => {
    const r = parse(["HTTP/1.1 204 No Content\r\n\r\n"]);
    expect(r).toMatchObject({ relayed: [], relayedBytes: "", hasDate: false, hasLength: false });
  });

  it("keeps Latin-1 bytes of values as sent, and the names after them, whatever their case", () => {
    const r = parse([
      "HTTP/1.1 200 OK\r\nX-Name: \u00c0\u00c9\u00de\u00ff\r\nX-After-It: Ok\r\nContent-Length: 0\r\n\r\n",
    ]);
    expect(r.headers).toEqual([
      "x-name",
      "\u00c0\u00c9\u00de\u00ff",
      "x-after-it",
      "Ok",
      "content-length",
      "0",
    ]);
    expect(r.relayedBytes).toBe(
      "x-name: \u00c0\u00c9\u00de\u00ff\r\nx-after-it: Ok\r\ncontent-length: 0\r\n",
    );
  });

  it("reads the server's Keep-Alive timeout hint in any of its spellings", () => {
    const hint = (value: string | undefined): number => {
      const sink: ResponseSink = { onInterim() {}, onHead() {}, onBody() {}, onComplete() {} };
      const p = new ResponseParser(sink, 1024);
      p.reset(false);
      const field = value === undefined ? "" : `Keep-Alive: ${value}\r\n`;
      expect(p.execute(Buffer.from(`HTTP/1.1 204 No Content\r\n${field}\r\n`))).toBeUndefined();
      return p.keepAliveHintS;
    };
    expect(hint("timeout=5")).toBe(5);
    expect(hint("timeout=15, max=100")).toBe(15);
    expect(hint("max=100, timeout=7")).toBe(7);
    expect(hint("Timeout = 3")).toBe(3);
    expect(hint("max=100")).toBe(-1);
    expect(hint(undefined)).toBe(-1);
  });

  it("skips interim responses and reads the final one in the same read", () => {
    const r = parse([
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ]);
    expect(r).toMatchObject({ interim: [100, 103], status: 200, body: "ok", complete: true });
  });

  it("reports a response cut short by the connection's close", () => {
    expect(parse(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], { eof: true }).error).toContain(
      "closed before the response was complete",
    );
    expect(
      parse(["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab"], { eof: true }).error,
    ).toContain("closed before");
  });
});

describe("ResponseParser strictness (request smuggling defences)", () => {
  const rejects: Record<string, string> = {
    "both Content-Length and Transfer-Encoding":
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "conflicting Content-Length headers": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    "a Content-Length list with different values": "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
    "a signed Content-Length": "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
    "a Content-Length too large": "HTTP/1.1 200 OK\r\nContent-Length: 12345678901234567\r\n\r\n",
    "obs-fold": "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "whitespace before the colon": "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
    "a header without a colon": "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n",
    "a bare LF in a header": "HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 0\r\n\r\n",
    "a NUL in a header value": "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n",
    "a bare CR in a header value": "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
    "a CR ending a header value before its CRLF": "HTTP/1.1 200 OK\r\nX-A: a\r\r\nContent-Length: 0\r\n\r\n",
    "a DEL in the last header value": "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: a\x7f\r\n\r\n",
    "a control character in a name's place": "HTTP/1.1 200 OK\r\nX\x01A: b\r\nContent-Length: 0\r\n\r\n",
    "a bad status line": "HTTP/1.1 2000 OK\r\n\r\n",
    "an HTTP/2 status line": "HTTP/2 200 OK\r\n\r\n",
    "a status below 100": "HTTP/1.1 099 Odd\r\n\r\n",
    "a 101 never asked for": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "a transfer-coding other than chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "chunked not last": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "Transfer-Encoding in HTTP/1.0": "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "a bad chunk size": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "a negative chunk size": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
    "a chunk size too large": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n",
    "chunk data longer than its size":
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    "a folded trailer": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\r\n b\r\n\r\n",
    "a separator in a header name": "HTTP/1.1 200 OK\r\nX@A: b\r\nContent-Length: 0\r\n\r\n",
    "an empty header name": "HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 0\r\n\r\n",
    "a control character in the reason phrase": "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
    "a bare CR in the reason phrase": "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n",
    "a bare CR ending the status line": "HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n",
    "an HTTP/1.2 status line": "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
    "a two-digit status": "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    "a status without a space before the reason": "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
    "an empty Content-Length": "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
  };
  for (const [what, text] of Object.entries(rejects)) {
    it(`rejects ${what}`, () => {
      const r = parse([text]);
      expect(r.error).toMatch(/^malformed upstream response: /);
      expect(r.complete).toBeUndefined();
    });
  }

  it("accepts repeated identical Content-Length values", () => {
    expect(parse(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"])).toMatchObject({
      body: "ok",
      complete: true,
      error: undefined,
    });
  });

  it("rejects a head larger than the limit, split or whole, and accepts one at the limit", () => {
    const big = `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(200)}\r\nContent-Length: 0\r\n\r\n`;
    expect(parse([big], { maxHead: big.length }).complete).toBe(true);
    expect(parse([big], { maxHead: big.length - 1 }).error).toContain("larger than");
    expect(parse([big.slice(0, 150), big.slice(150)], { maxHead: 100 }).error).toContain("larger than");
    expect(parse([big.slice(0, 90)], { maxHead: 100 }).error).toBeUndefined();
  });

  it("rejects bytes on an idle connection (no response was asked for)", () => {
    const r = parse(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]);
    expect(r.complete).toBe(true);
    const sink: ResponseSink = { onInterim() {}, onHead() {}, onBody() {}, onComplete() {} };
    const p = new ResponseParser(sink, 1024);
    p.reset(false);
    expect(p.execute(Buffer.from("HTTP/1.1 204 No Content\r\n\r\n"))).toBeUndefined();
    expect(p.execute(Buffer.from("HTTP/1.1 200 OK\r\n\r\n"))?.message).toContain("data after the end");
  });
});
