// The downstream side of the listeners through the built sidecar, over raw sockets: connections
// that never finish a request are closed by the HttpConnectionManager timeouts, connections over a
// connection_limit are closed at once, and request heads the listener refuses never reach a cluster.
import { writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  LineClient,
  Sidecar,
  tcpListenerYaml,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const CONNECTION_LIMIT =
  "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";

interface ListenerOptions {
  /** Extra HttpConnectionManager fields, YAML at the typed_config's indentation. */
  hcm?: string;
  /** A connection_limit filter before the HCM. */
  limit?: { max: number; delay?: string };
  /** virtual host domains (default "*"). */
  domains?: string;
  /** The route's retry policy (default: on; a retried request's body is buffered before it goes). */
  retry?: boolean;
}

function listenerYaml(port: number, o: ListenerOptions): string {
  const limit =
    o.limit === undefined
      ? ""
      : `
            - name: envoy.filters.network.connection_limit
              typed_config:
                "@type": ${CONNECTION_LIMIT}
                stat_prefix: http_limit
                max_connections: ${o.limit.max}${o.limit.delay === undefined ? "" : `\n                delay: ${o.limit.delay}`}`;
  return `    - name: http
      address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
      filter_chains:
        - filters:${limit}
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress_http
${o.hcm ?? ""}
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: [${o.domains ?? '"*"'}]
                      routes:
                        - match: { prefix: "/" }
                          route:
                            cluster: backend
                            timeout: 5s${o.retry === false ? "" : `\n                            retry_policy: { retry_on: "connect-failure,reset", num_retries: 3 }`}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }`;
}

const OUTLIER = `      outlier_detection:
        consecutive_5xx: 1
        consecutive_local_origin_failure: 1
        interval: 0.1s
        base_ejection_time: 30s
        max_ejection_percent: 100
`;

async function setup(o: ListenerOptions): Promise<{ up: Upstream; s: Sidecar; listen: number }> {
  const [upPort, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  const up = await new Upstream(upPort, "u0").start();
  cleanups.push(() => up.kill());
  const yaml = bootstrapYaml(
    admin,
    listenerYaml(listen, o),
    clusterYaml({ endpoints: [{ port: upPort }], extra: OUTLIER }),
  );
  const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
  cleanups.push(() => s.stop());
  await s.start();
  return { up, s, listen };
}

/** A raw client connection: everything it received, and when it was closed. */
class RawClient {
  readonly socket: net.Socket;
  data = "";
  readonly opened: Promise<void>;
  readonly closed: Promise<string>;
  isClosed = false;

  /** `allowHalfOpen`: the client does not end its side when the server ends its own. */
  constructor(port: number, allowHalfOpen = false) {
    this.socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen });
    this.socket.on("error", () => undefined);
    this.socket.on("data", (c: Buffer) => (this.data += c.toString()));
    this.opened = new Promise((resolve) =>
      this.socket.once("connect", () => {
        resolve();
      }),
    );
    this.closed = new Promise((resolve) =>
      this.socket.once("close", () => {
        this.isClosed = true;
        resolve(this.data);
      }),
    );
    cleanups.push(() => {
      this.socket.destroy();
    });
  }

  /** Writes `text` one byte every `everyMs` until all of it went or the connection closed. */
  trickle(text: string, everyMs = 50): { readonly sent: number } {
    const state = { sent: 0 };
    const pump = setInterval(() => {
      if (!this.isClosed && state.sent < text.length) this.socket.write(text[state.sent++] ?? "");
    }, everyMs);
    cleanups.push(() => {
      clearInterval(pump);
    });
    return state;
  }

  /** Resolves with what was received once the server closed the connection; rejects after `ms`. */
  async closedWithin(ms: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`connection still open after ${ms} ms`));
      }, ms);
    });
    try {
      return await Promise.race([this.closed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a GET and waits for one complete response (status line to body). */
  async get(path: string, extra = ""): Promise<string> {
    const before = this.data.length;
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n${extra}\r\n`);
    return await waitFor(`a response to GET ${path}`, () => {
      const got = this.data.slice(before);
      const head = got.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(got);
      if (head === -1 || length === null) return undefined;
      return got.length >= head + 4 + Number(length[1]) ? got : undefined;
    });
  }
}

const prefix = 'envoy_http_conn_manager_prefix="ingress_http"';
async function httpStat(s: Sidecar, name: string): Promise<number> {
  return (await s.metrics()).get(`envoy_http_${name}{${prefix}}`) ?? NaN;
}

describe("downstream timeouts", () => {
  const timeouts = `                request_headers_timeout: 0.8s
                stream_idle_timeout: 0.4s
                common_http_protocol_options: { idle_timeout: 0.6s }`;

  it("closes an idle connection, a half request line and byte-by-byte headers; a slow upstream is not cut", async () => {
    const { up, s, listen } = await setup({ hcm: timeouts });
    const t0 = performance.now();
    const idle = new RawClient(listen);
    const half = new RawClient(listen);
    await half.opened;
    half.socket.write("GET /half HT");
    const trickle = new RawClient(listen);
    await trickle.opened;
    // One byte every 50 ms: never idle for stream_idle_timeout, never a whole head either.
    const pumped = trickle.trickle("GET /trickle HTTP/1.1\r\nHost: test\r\nx-slow: " + "a".repeat(1000));
    // A request that waits on its upstream longer than request_headers_timeout and idle_timeout
    // (its head is complete; a 0.3 s silence is under stream_idle_timeout).
    const slow = request(`http://127.0.0.1:${listen}/slow?ms=300`);

    expect(await half.closedWithin(5000)).toMatch(
      /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*\r\n\r\nstream timeout$/,
    );
    expect(await trickle.closedWithin(5000)).toMatch(
      /^HTTP\/1\.1 408 [\s\S]*\r\n\r\nrequest header timeout$/,
    );
    expect(await idle.closedWithin(5000)).toBe(""); // idle_timeout closes without a word, as Envoy
    // Each went by its own timeout, none before it was due.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(750);
    expect(pumped.sent).toBeGreaterThan(10);
    const res = await slow;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("u0 GET /slow 0");

    expect(await httpStat(s, "downstream_rq_idle_timeout")).toBe(1);
    expect(await httpStat(s, "downstream_rq_header_timeout")).toBe(1);
    expect(await httpStat(s, "downstream_cx_idle_timeout")).toBeGreaterThanOrEqual(1);
    expect((await up.stats()).paths["GET /half"]).toBeUndefined();
    expect(s.logs).toContain('"reason":"stream_idle_timeout"');
    expect(s.logs).toContain('"reason":"request_header_timeout"');
    expect(s.logs).toContain('"reason":"idle_timeout"');
  });

  it("closes a keep-alive connection idle_timeout after its last response", async () => {
    const { s, listen } = await setup({ hcm: timeouts });
    const c = new RawClient(listen);
    await c.opened;
    expect(await c.get("/one")).toMatch(/^HTTP\/1\.1 200 /);
    expect(await c.get("/two")).toMatch(/^HTTP\/1\.1 200 /);
    expect(await c.closedWithin(5000)).not.toContain("408");
    expect(await httpStat(s, "downstream_cx_idle_timeout")).toBe(1);
    expect(await httpStat(s, "downstream_rq_header_timeout")).toBe(0);
  });

  it("leaves a connection that never sends a byte to idle_timeout, not request_headers_timeout (as Envoy)", async () => {
    const { s, listen } = await setup({
      hcm: `                request_headers_timeout: 0.3s
                common_http_protocol_options: { idle_timeout: 1.5s }`,
    });
    const silent = new RawClient(listen);
    expect(await silent.closedWithin(5000)).toBe("");
    expect(await httpStat(s, "downstream_cx_idle_timeout")).toBe(1);
    expect(await httpStat(s, "downstream_rq_header_timeout")).toBe(0);
  });

  it("times a head out from its first byte, also when the connection was silent past the timeout first", async () => {
    const { s, listen } = await setup({
      hcm: `                request_headers_timeout: 0.4s
                common_http_protocol_options: { idle_timeout: 30s }`,
    });
    const late = new RawClient(listen);
    await late.opened;
    // Silent past request_headers_timeout (no request yet: not a header timeout), then a head
    // that trickles in and never completes.
    await new Promise((resolve) => setTimeout(resolve, 900));
    late.trickle("GET /late HTTP/1.1\r\nHost: test\r\nx-slow: " + "a".repeat(1000));
    const began = performance.now();
    expect(await late.closedWithin(3000)).toMatch(/^HTTP\/1\.1 408 [\s\S]*\r\n\r\nrequest header timeout$/);
    expect(performance.now() - began).toBeGreaterThanOrEqual(350);
    expect(await httpStat(s, "downstream_rq_header_timeout")).toBe(1);
  });

  it("starts no request on the CR LF a client sends after a request, and times the next head from its own read", async () => {
    const { s, listen } = await setup({
      hcm: `                request_headers_timeout: 0.4s
                common_http_protocol_options: { idle_timeout: 30s }`,
    });
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write("POST /one HTTP/1.1\r\nHost: test\r\ncontent-length: 2\r\n\r\nok");
    await waitFor("the first response", () => c.data.includes("u0 POST /one 2"));
    // An empty line in a read of its own (RFC 9112 §2.2: skipped before a request line): nothing
    // began, so the connection stays open and idle well past request_headers_timeout.
    c.socket.write("\r\n");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(c.isClosed).toBe(false);
    expect(await httpStat(s, "downstream_rq_header_timeout")).toBe(0);
    // The next head begins in a read of its own and never completes: timed from that read.
    c.socket.write("GET /two HTTP/1.1\r\nHost: te");
    const began = performance.now();
    expect(await c.closedWithin(3000)).toMatch(/\r\n\r\nrequest header timeout$/);
    expect(performance.now() - began).toBeGreaterThanOrEqual(350);
    expect(await httpStat(s, "downstream_rq_header_timeout")).toBe(1);
  });

  it("answers 408 when the body does not arrive within request_timeout", async () => {
    const { up, s, listen } = await setup({
      hcm: `                request_timeout: 0.5s
                stream_idle_timeout: 5s`,
    });
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write("POST /upload HTTP/1.1\r\nHost: test\r\ncontent-length: 100\r\n\r\nabc");
    expect(await c.closedWithin(5000)).toMatch(/^HTTP\/1\.1 408 [\s\S]*\r\n\r\nrequest timeout$/);
    expect(await httpStat(s, "downstream_rq_timeout")).toBe(1);
    // The body was being buffered for a retry: nothing went upstream.
    expect((await up.stats()).paths["POST /upload"]).toBeUndefined();
  });

  it("times a head out that began in the same read as the end of the request before it", async () => {
    const { s, listen } = await setup({
      hcm: `                request_headers_timeout: 0.5s
                common_http_protocol_options: { idle_timeout: 30s }`,
    });
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write("GET /first HTTP/1.1\r\nHost: test\r\n\r\nGET /second HTTP/1.1\r\nHo");
    const all = await c.closedWithin(3000);
    expect(responses(all).map((r) => r[0])).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 408 Request Timeout"]);
    expect(await httpStat(s, "downstream_rq_header_timeout")).toBe(1);
  });

  it("times the next request on a connection whose request_timeout passed after its response began", async () => {
    // An upstream that begins its answer before the request's body is in.
    const early = http.createServer((req, res) => {
      res.writeHead(200, { "content-length": "2" });
      res.write("o");
      req.resume();
      req.on("end", () => res.end("k"));
    });
    const [upPort, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    await new Promise<void>((resolve) => early.listen(upPort, "127.0.0.1", resolve));
    cleanups.push(() => {
      early.closeAllConnections();
      early.close();
    });
    const hcm = `                request_timeout: 0.6s
                stream_idle_timeout: 10s`;
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        bootstrapYaml(
          admin,
          listenerYaml(listen, { hcm, retry: false }),
          clusterYaml({ endpoints: [{ port: upPort }] }),
        ),
      ),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const c = new RawClient(listen);
    await c.opened;
    // The body is late but the response began already: request_timeout has nothing to do then.
    c.socket.write("POST /early HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nab");
    await waitFor("the response's head", () => (c.data.includes("\r\n\r\n") ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 900));
    c.socket.write("cd");
    await waitFor("the whole response", () => (responses(c.data).length === 1 ? true : undefined));
    // A head that never completes on the same connection: request_timeout applies to it again.
    const began = performance.now();
    c.socket.write("GET /never HTTP/1.1\r\nHo");
    expect(responses(await c.closedWithin(3000)).map((r) => r[0])).toEqual([
      "HTTP/1.1 200 OK",
      "HTTP/1.1 408 Request Timeout",
    ]);
    expect(performance.now() - began).toBeGreaterThanOrEqual(500);
    expect(await httpStat(s, "downstream_rq_timeout")).toBe(1); // the first found nothing to do

    // Such a connection is idle again once its request is complete: a reload that moves the
    // listener closes it at once (a connection with a request in progress would be drained).
    const c2 = new RawClient(listen);
    await c2.opened;
    c2.socket.write("POST /early HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nab");
    await waitFor("the second response's head", () => (c2.data.includes("\r\n\r\n") ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 900));
    c2.socket.write("cd");
    await waitFor("the second response", () => (responses(c2.data).length === 1 ? true : undefined));
    const moved = await freePort();
    writeFileSync(
      s.configFile,
      bootstrapYaml(
        admin,
        listenerYaml(moved, { hcm, retry: false }),
        clusterYaml({ endpoints: [{ port: upPort }] }),
      ),
    );
    await c2.closedWithin(3000);
  });

  it("reads and drops what the client still sends after the connection's last request, so its close is no reset", async () => {
    const { s, listen } = await setup({});
    const c = new RawClient(listen, true);
    await c.opened;
    // An upgrade offer is the connection's last request: reads stop after it (the bytes that follow
    // are not HTTP), and 256 KiB would wait unread when the response closes the connection. Unread
    // bytes at the close make the kernel reset the connection (the client can lose the response's end).
    const trailing = 256 * 1024;
    c.socket.write(
      "GET /h2c HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
        "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n" +
        "x".repeat(trailing),
    );
    await waitFor("the response", () => (responses(c.data).length === 1 ? true : undefined));
    // Closed by the sidecar 1 s after its FIN, having read everything the client sent.
    const closed = await waitFor(
      "the connection closed",
      () => /"bytesIn":(\d+)[^\n]*"downstream connection closed"/.exec(s.logs) ?? undefined,
    );
    expect(Number(closed[1])).toBeGreaterThan(trailing);
    expect(responses(c.data)).toEqual([["HTTP/1.1 200 OK", "u0 GET /h2c 0"]]);
  });

  it("closes a connection it ended after a response when the client never closes its side", async () => {
    const { s, listen } = await setup({
      hcm: `                common_http_protocol_options: { idle_timeout: 60s }`,
    });
    const c = new RawClient(listen, true);
    await c.opened;
    c.socket.write("GET /bye HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    await waitFor("the response", () => (responses(c.data).length === 1 ? true : undefined));
    expect(await httpStat(s, "downstream_cx_active")).toBe(1);
    // Envoy's delayed close: the sidecar gives the client 1 s to close, then closes the socket.
    await waitFor("the connection closed by the sidecar", async () =>
      (await httpStat(s, "downstream_cx_active")) === 0 ? true : undefined,
    );
    expect(c.isClosed).toBe(false); // the client's side is still open: only the sidecar closed
  });
});

describe("connection limit", () => {
  it("closes http connections over connection_limit at once; the ones under it keep working", async () => {
    const { s, listen } = await setup({ limit: { max: 2 } });
    const a = new RawClient(listen);
    const b = new RawClient(listen);
    await Promise.all([a.opened, b.opened]);
    await waitFor("two connections open", async () => {
      const m = await s.metrics();
      return (
        m.get('envoy_connection_limit_active_connections{envoy_connection_limit_prefix="http_limit"}') === 2
      );
    });
    const over = new RawClient(listen);
    expect(await over.closedWithin(2000)).toBe("");
    expect(await a.get("/a")).toMatch(/^HTTP\/1\.1 200 /);
    expect(await b.get("/b")).toMatch(/^HTTP\/1\.1 200 /);
    const m = await s.metrics();
    expect(
      m.get('envoy_connection_limit_limited_connections{envoy_connection_limit_prefix="http_limit"}'),
    ).toBe(1);
    // A closed connection frees its place.
    a.socket.destroy();
    await waitFor("the place is free", async () => {
      const m2 = await s.metrics();
      return (
        m2.get('envoy_connection_limit_active_connections{envoy_connection_limit_prefix="http_limit"}') === 1
      );
    });
    const next = new RawClient(listen);
    expect(await next.get("/next")).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("holds a connection over the limit for delay without serving it, then closes it", async () => {
    const { up, s, listen } = await setup({ limit: { max: 1, delay: "0.3s" } });
    const a = new RawClient(listen);
    expect(await a.get("/first")).toMatch(/^HTTP\/1\.1 200 /);
    const over = new RawClient(listen);
    await over.opened;
    over.socket.write("GET /held HTTP/1.1\r\nHost: test\r\n\r\n");
    expect(await over.closedWithin(3000)).toBe("");
    expect((await up.stats()).paths["GET /held"]).toBeUndefined();
    const m = await s.metrics();
    expect(
      m.get('envoy_connection_limit_limited_connections{envoy_connection_limit_prefix="http_limit"}'),
    ).toBe(1);
  });

  it("closes tcp_proxy connections over connection_limit at once", async () => {
    const [upPort, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const up = await new Upstream(upPort, "t0", "tcp").start();
    cleanups.push(() => up.kill());
    const listener = tcpListenerYaml(listen).replace(
      "        - filters:\n",
      `        - filters:
            - name: envoy.filters.network.connection_limit
              typed_config: { "@type": ${CONNECTION_LIMIT}, stat_prefix: tcp_limit, max_connections: 1 }
`,
    );
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(bootstrapYaml(admin, listener, clusterYaml({ endpoints: [{ port: upPort }] }))),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const first = new LineClient(listen, cleanups);
    expect(await first.ask("whoami")).toBe("t0");
    const second = new LineClient(listen, cleanups);
    await second.closed;
    expect(await first.ask("whoami")).toBe("t0");
    const m = await s.metrics();
    expect(
      m.get('envoy_connection_limit_limited_connections{envoy_connection_limit_prefix="tcp_limit"}'),
    ).toBe(1);
    expect(
      m.get('envoy_connection_limit_active_connections{envoy_connection_limit_prefix="tcp_limit"}'),
    ).toBe(1);
  });

  it("reports the default limit's overflow per listener address", async () => {
    const { s, listen } = await setup({});
    const m = await s.metrics();
    expect(m.get(`envoy_listener_downstream_cx_overflow{envoy_listener_address="127.0.0.1_${listen}"}`)).toBe(
      0,
    );
  });
});

describe("request heads refused at the listener", () => {
  it("answers two Host headers with 400; the upstream sees nothing and stays healthy", async () => {
    const { up, s, listen } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write("GET /twohosts HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n");
    const status = await waitFor("a status line", () => (/^HTTP\/1\.1 \d+/.exec(c.data) ?? undefined)?.[0]);
    expect(status).toBe("HTTP/1.1 400");
    expect(await c.closedWithin(5000)).toMatch(/\r\n\r\nmultiple host headers$/);
    expect((await up.stats()).paths["GET /twohosts"]).toBeUndefined();
    expect(await s.metric("envoy_cluster_upstream_rq_total", "backend")).toBe(0);
    expect(await s.metric("envoy_cluster_outlier_detection_ejections_enforced_total", "backend")).toBe(0);
    expect(await s.healthFlags("backend", up.port)).toBe("healthy");
    const res = await request(`http://127.0.0.1:${listen}/after`);
    expect(res.statusCode).toBe(200);
    await res.body.text();
  });

  it("answers 431 past Envoy's header limits (60 KiB, 100 headers) and past configured ones", async () => {
    const { up, listen } = await setup({});
    const send = async (head: string): Promise<string> => {
      const c = new RawClient(listen);
      await c.opened;
      c.socket.write(`GET /h HTTP/1.1\r\nHost: test\r\n${head}\r\n`);
      return await waitFor("a status line", () => (/^HTTP\/1\.1 \d+/.exec(c.data) ?? undefined)?.[0]);
    };
    const headers = (n: number): string => Array.from({ length: n }, (_, i) => `x-h${i}: ${i}\r\n`).join("");
    expect(await send(headers(99))).toBe("HTTP/1.1 200"); // 100 with Host
    expect(await send(headers(100))).toBe("HTTP/1.1 431");
    expect(await send(`x-big: ${"a".repeat(10_000)}\r\n`)).toBe("HTTP/1.1 200");
    expect(await send(`x-big: ${"a".repeat(61 * 1024)}\r\n`)).toBe("HTTP/1.1 431");
    expect((await up.stats()).paths["GET /h"]).toBe(2);

    const small = await setup({
      hcm: `                max_request_headers_kb: 1
                common_http_protocol_options: { max_headers_count: 5 }`,
    });
    const sendSmall = async (head: string): Promise<string> => {
      const c = new RawClient(small.listen);
      await c.opened;
      c.socket.write(`GET /s HTTP/1.1\r\nHost: test\r\n${head}\r\n`);
      return await waitFor("a status line", () => (/^HTTP\/1\.1 \d+/.exec(c.data) ?? undefined)?.[0]);
    };
    expect(await sendSmall(headers(4))).toBe("HTTP/1.1 200");
    expect(await sendSmall(headers(5))).toBe("HTTP/1.1 431");
    expect(await sendSmall(`x-big: ${"a".repeat(1100)}\r\n`)).toBe("HTTP/1.1 431");
  });

  it("answers 501 to a transfer coding other than chunked alone", async () => {
    const { up, s, listen } = await setup({});
    for (const te of ["gzip, chunked", "gzip", "chunked, chunked"]) {
      const c = new RawClient(listen);
      await c.opened;
      c.socket.write(
        `POST /te HTTP/1.1\r\nHost: test\r\ntransfer-encoding: ${te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      );
      expect(await c.closedWithin(5000)).toMatch(/^HTTP\/1\.1 501 /);
    }
    const ok = new RawClient(listen);
    await ok.opened;
    expect(await ok.get("/te-ok")).toMatch(/^HTTP\/1\.1 200 /);
    expect((await up.stats()).paths["POST /te"]).toBeUndefined();
    expect(await httpStat(s, "downstream_cx_protocol_error")).toBeGreaterThanOrEqual(1);
  });

  it("routes an absolute-form target by its authority and sends origin-form upstream", async () => {
    const { up, listen } = await setup({ domains: '"example.test"' });
    const c = new RawClient(listen);
    await c.opened;
    const res = await c.get("http://example.test/host?x=1", "");
    expect(res).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\nexample\.test$/);
    // Host "test" alone matches no virtual host: only the target's authority routed it.
    expect(await c.get("/host")).toMatch(/^HTTP\/1\.1 404 /);
    expect(await c.get("http://example.test")).toMatch(/^HTTP\/1\.1 200 /);
    const paths = (await up.stats()).paths;
    expect(paths["GET /host"]).toBe(1);
    expect(paths["GET /"]).toBe(1);
  });

  it("refuses a protocol upgrade with 403 and reads nothing after it; an h2c offer is served as HTTP/1.1", async () => {
    const { up, s, listen } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    // The bytes after an upgrade request belong to the new protocol, never to a request of ours.
    c.socket.write(
      "GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
        "POST /smuggled HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n",
    );
    const all = await c.closedWithin(5000);
    expect(responses(all).map((r) => r[0])).toEqual(["HTTP/1.1 403 Forbidden"]);
    expect(all).toMatch(/\r\nConnection: close\r\n/);
    expect(await httpStat(s, "downstream_rq_ws_on_non_ws_route")).toBe(1);

    const h2c = new RawClient(listen);
    await h2c.opened;
    h2c.socket.write(
      "GET /h2c HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
        "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\nGET /after-h2c HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    expect(responses(await h2c.closedWithin(5000))).toEqual([["HTTP/1.1 200 OK", "u0 GET /h2c 0"]]);
    const paths = (await up.stats()).paths;
    expect(paths["GET /ws"]).toBeUndefined();
    expect(paths["POST /smuggled"]).toBeUndefined();
    expect(paths["GET /after-h2c"]).toBeUndefined();
  });

  it("answers CONNECT with 403, as Envoy without a CONNECT upgrade config, and closes", async () => {
    const { s, listen } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n");
    expect(await c.closedWithin(5000)).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(await httpStat(s, "downstream_rq_ws_on_non_ws_route")).toBe(1);
  });
});

/** Splits `text` into complete responses framed by Content-Length: [status line, body] each. */
function responses(text: string): [string, string][] {
  const out: [string, string][] = [];
  let at = 0;
  for (;;) {
    const head = text.indexOf("\r\n\r\n", at);
    if (head === -1) return out;
    const headText = text.slice(at, head);
    const length = Number(/content-length: (\d+)/i.exec(headText)?.[1] ?? "0");
    if (text.length < head + 4 + length) return out;
    out.push([headText.split("\r\n")[0] ?? "", text.slice(head + 4, head + 4 + length)]);
    at = head + 4 + length;
  }
}

describe("pipelined requests", () => {
  it("answers them in order on one connection, a slow first response holding back the ready ones", async () => {
    const { listen } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write(
      "GET /slow?ms=300 HTTP/1.1\r\nHost: test\r\n\r\n" +
        "POST /fast HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello" +
        "GET /fast?second HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    const got = await waitFor("three responses", () => {
      const r = responses(c.data);
      return r.length >= 3 ? r : undefined;
    });
    expect(got).toEqual([
      ["HTTP/1.1 200 OK", "u0 GET /slow 0"],
      ["HTTP/1.1 200 OK", "u0 POST /fast 5"],
      ["HTTP/1.1 200 OK", "u0 GET /fast 0"],
    ]);
    // Still open for the next request (keep-alive).
    expect(await c.get("/again")).toContain("u0 GET /again 0");
  });

  it("streams a large body behind a pipelined request, intact and in order", async () => {
    const { listen } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    const size = 8 * 1024 * 1024;
    c.socket.write("GET /slow?ms=200 HTTP/1.1\r\nHost: test\r\n\r\n");
    c.socket.write(`POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: ${size}\r\n\r\n`);
    c.socket.write(Buffer.alloc(size, 0x61));
    c.socket.write("GET /after HTTP/1.1\r\nHost: test\r\n\r\n");
    const got = await waitFor(
      "three responses",
      () => {
        const r = responses(c.data);
        return r.length >= 3 ? r : undefined;
      },
      20_000,
    );
    expect(got.map((r) => r[1])).toEqual(["u0 GET /slow 0", `u0 POST /upload ${size}`, "u0 GET /after 0"]);
  });

  it("answers the request that asked for Connection: close, then closes without serving the rest", async () => {
    const { listen, up } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write(
      "GET /first HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n" +
        "GET /second HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    const all = await c.closedWithin(3000);
    const r = responses(all);
    expect(r).toEqual([["HTTP/1.1 200 OK", "u0 GET /first 0"]]);
    expect(all).toMatch(/\r\nConnection: close\r\n/);
    expect((await up.stats()).paths["GET /second"]).toBeUndefined();
  });

  it("times a held request's body from when it is handed on, never cutting the response in front of it", async () => {
    const { listen, up, s } = await setup({ hcm: `                request_timeout: 1s` });
    const c = new RawClient(listen);
    await c.opened;
    // The second request's body never completes; while it waits behind the first (1.5 s), its
    // request_timeout does not run.
    c.socket.write(
      "GET /slow?ms=1500 HTTP/1.1\r\nHost: test\r\n\r\n" +
        "POST /held HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nhalf.",
    );
    const r = responses(await c.closedWithin(5000));
    expect(r.map((x) => x[0])).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 408 Request Timeout"]);
    expect(r[0]?.[1]).toBe("u0 GET /slow 0");
    expect(await httpStat(s, "downstream_rq_timeout")).toBe(1);
    expect((await up.stats()).paths["POST /held"]).toBeUndefined();
  });

  it("answers a held request whose body is malformed after the response before it", async () => {
    const { listen, up } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write(
      "GET /slow?ms=300 HTTP/1.1\r\nHost: test\r\n\r\n" +
        "POST /broken HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    const r = responses(await c.closedWithin(5000));
    expect(r.map((x) => x[0])).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"]);
    expect(r[0]?.[1]).toBe("u0 GET /slow 0");
    expect((await up.stats()).paths["POST /broken"]).toBeUndefined();
  });

  it("forwards a pipelined request only once the response before it went out", async () => {
    const { listen, up } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write(
      "GET /slow?ms=1500 HTTP/1.1\r\nHost: test\r\n\r\nGET /behind HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    // While the first is answered, the second waits in the sidecar: no upstream response can pile
    // up behind a client that does not read.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const during = (await up.stats()).paths;
    expect(during["GET /slow"]).toBe(1);
    expect(during["GET /behind"]).toBeUndefined();
    const got = await waitFor("two responses", () => {
      const r = responses(c.data);
      return r.length >= 2 ? r : undefined;
    });
    expect(got.map((r) => r[1])).toEqual(["u0 GET /slow 0", "u0 GET /behind 0"]);
  });

  it("never forwards a request read behind a refused one that closes the connection", async () => {
    const { listen, up } = await setup({});
    const refused = [
      "GET /a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
      "GET /a HTTP/1.1\r\n\r\n",
      "POST /a HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ];
    for (const head of refused) {
      const c = new RawClient(listen);
      await c.opened;
      c.socket.write(`${head}POST /transfer HTTP/1.1\r\nHost: test\r\nContent-Length: 9\r\n\r\namount=10`);
      const statuses = (await c.closedWithin(5000)).match(/HTTP\/1\.1 \d{3}/g);
      expect(statuses, head).toHaveLength(1);
      expect(statuses?.[0]).toMatch(/^HTTP\/1\.1 (400|501)$/);
    }
    expect((await up.stats()).paths["POST /transfer"]).toBeUndefined();
  });

  it("answers a malformed request or a CONNECT behind an open one after that one's response, in order", async () => {
    const { listen, up } = await setup({});
    const c = new RawClient(listen);
    await c.opened;
    c.socket.write(
      "POST /slow?ms=300 HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nok" +
        "GET /bad HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    );
    const r = responses(await c.closedWithin(5000));
    expect(r.map((x) => x[0])).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"]);
    expect(r[0]?.[1]).toBe("u0 POST /slow 2");
    expect((await up.stats()).paths["GET /bad"]).toBeUndefined();

    const connect = new RawClient(listen);
    await connect.opened;
    connect.socket.write(
      "GET /slow?ms=300 HTTP/1.1\r\nHost: test\r\n\r\nCONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
    );
    const both = responses(await connect.closedWithin(5000));
    expect(both.map((x) => x[0])).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 403 Forbidden"]);
    expect(both[0]?.[1]).toBe("u0 GET /slow 0");
  });
});

describe("read back-pressure", () => {
  it("stops reading a request body the upstream does not take, and delivers it whole once it does", async () => {
    const [upPort, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    // An upstream that takes the connection but reads nothing until the test lets it.
    const accepted: net.Socket[] = [];
    const upstream = net.createServer({ pauseOnConnect: true }, (socket) => {
      socket.on("error", () => undefined);
      accepted.push(socket);
    });
    await new Promise<void>((resolve) => upstream.listen(upPort, "127.0.0.1", resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of accepted) socket.destroy();
          upstream.close(() => {
            resolve();
          });
        }),
    );
    const yaml = bootstrapYaml(
      admin,
      listenerYaml(listen, {}),
      clusterYaml({ endpoints: [{ port: upPort }] }),
    );
    const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
    cleanups.push(() => s.stop());
    await s.start();

    const c = new RawClient(listen);
    await c.opened;
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const chunks = 64;
    const size = chunk.length * chunks;
    c.socket.write(`POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: ${size}\r\n\r\n`);
    for (let i = 0; i < chunks; i++) c.socket.write(chunk);
    await waitFor("the upstream connection", () => accepted[0]);
    // The bytes the client's kernel took stop growing: the sidecar stopped reading. Without read
    // back-pressure the sidecar would read (and hold) the whole body and the client would send it all.
    let last = -1;
    let still = 0;
    const taken = await waitFor(
      "the client's writes to stall",
      () => {
        const now = size - c.socket.writableLength;
        still = now === last ? still + 1 : 0;
        last = now;
        return still >= 25 ? now : undefined; // unchanged for 25 polls (~0.5 s)
      },
      15_000,
    );
    // What is not in the client is in the kernel's buffers on the way (a few MB each) and in the
    // sidecar's bounded buffers; a quarter of the body is far past all of them.
    expect(taken).toBeLessThan(size / 4);
    expect(c.socket.writableLength).toBeGreaterThan(0);

    // Once the upstream reads, the sidecar reads again: the whole body arrives and is answered.
    const upstreamSocket = accepted[0] as net.Socket;
    let head = "";
    let body = 0;
    upstreamSocket.on("data", (data: Buffer) => {
      if (!head.endsWith("\r\n\r\n")) {
        const text = data.toString("latin1");
        const end = (head + text).indexOf("\r\n\r\n");
        if (end === -1) {
          head += text;
          return;
        }
        body += data.length - (end + 4 - head.length);
        head = (head + text).slice(0, end + 4);
      } else body += data.length;
      if (body === size)
        upstreamSocket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${String(size).length}\r\n\r\n${size}`);
    });
    upstreamSocket.resume();
    const got = await waitFor(
      "the response",
      () => (responses(c.data).length > 0 ? responses(c.data) : undefined),
      20_000,
    );
    expect(got).toEqual([["HTTP/1.1 200 OK", String(size)]]);
    expect(head).toMatch(/^POST \/upload HTTP\/1\.1\r\n/);
  });
});
