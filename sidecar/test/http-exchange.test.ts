// The request/response exchange through the built sidecar, against raw sockets on both sides: local
// pre-send errors, 1xx responses, the route timeout's start, X-Forwarded-Proto, broken request bodies.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  httpListenerYaml,
  routeYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Ejects at the first failure, so any failure held against a host shows in its health flags. */
const STRICT_OUTLIER = `      outlier_detection: { consecutive_5xx: 1, interval: 10s, base_ejection_time: 30s, always_eject_one_host: true }
`;

async function sidecar(listen: number, routes: string[], clusters: string): Promise<Sidecar> {
  const admin = await freePort();
  const s = new Sidecar(
    admin,
    Sidecar.writeConfig(bootstrapYaml(admin, httpListenerYaml(listen, routes), clusters)),
  );
  cleanups.push(() => s.stop());
  return s.start();
}

async function upstream(name: string): Promise<Upstream> {
  const u = await new Upstream(await freePort(), name).start();
  cleanups.push(() => u.kill());
  return u;
}

/** One request as raw bytes on a raw connection: the socket, and all bytes it received until a condition or close. */
class RawClient {
  readonly socket: net.Socket;
  received = "";
  closed = false;

  constructor(port: number) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.on("data", (c: Buffer) => (this.received += c.toString("latin1")));
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => (this.closed = true));
    cleanups.push(() => {
      this.socket.destroy();
    });
  }

  write(text: string): void {
    this.socket.write(text, "latin1");
  }

  async until(what: string, check: (received: string) => boolean, timeoutMs = 5000): Promise<string> {
    return waitFor(what, () => check(this.received) && this.received, timeoutMs);
  }

  async untilClosed(timeoutMs = 5000): Promise<string> {
    await waitFor("the connection to close", () => this.closed, timeoutMs);
    return this.received;
  }
}

interface RawExchange {
  readonly head: string;
  readonly body: string;
}

/**
 * An upstream on a raw socket: reads each request (head, then a content-length or chunked body),
 * records it and writes whatever `answer` returns. Keep-alive unless the answer closes.
 */
async function rawUpstream(
  answer: (req: RawExchange) => string,
): Promise<{ port: number; requests: RawExchange[]; openConnections: () => number }> {
  const requests: RawExchange[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buf = "";
    socket.on("data", (c: Buffer) => {
      buf += c.toString("latin1");
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buf.slice(0, end);
        const rest = buf.slice(end + 4);
        const length = /\r\ncontent-length: *(\d+)/i.exec(head);
        let body: string;
        let used: number;
        if (length !== null) {
          const n = Number(length[1]);
          if (rest.length < n) return;
          body = rest.slice(0, n);
          used = n;
        } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          const last = rest.indexOf("0\r\n\r\n");
          if (last === -1) return;
          body = rest.slice(0, last);
          used = last + 5;
        } else {
          body = "";
          used = 0;
        }
        buf = rest.slice(used);
        const exchange = { head, body };
        requests.push(exchange);
        socket.write(answer(exchange), "latin1");
      }
    });
  });
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  );
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return { port, requests, openConnections: () => sockets.size };
}

function staticCluster(ports: { port: number; priority?: number }[], extra = STRICT_OUTLIER): string {
  return clusterYaml({ endpoints: ports, extra });
}

function headerValues(head: string, name: string): string[] {
  return head
    .split("\r\n")
    .slice(1)
    .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    .map((l) => l.slice(name.length + 1).trim());
}

describe("local errors before sending", () => {
  it("answers requests the pool refuses locally, never retries them and never holds them against the host", async () => {
    // Primary at priority 0, a fallback at priority 1: an ejected primary would move traffic there.
    const primary = await upstream("primary");
    const fallback = await upstream("fallback");
    const listen = await freePort();
    const retry = `
                          retry_policy:
                            retry_on: reset,connect-failure,5xx
                            num_retries: 3
                            retry_back_off: { base_interval: 0.01s, max_interval: 0.02s }`;
    const routes = [
      // A rewrite that yields a path undici refuses (a space): the route's doing, not the client's.
      `                      - match: { path: "/bad-rewrite" }
                        route:
                          cluster: backend
                          regex_rewrite: { pattern: { regex: "^/bad-rewrite$" }, substitution: "/a b" }${retry}`,
      `                      - match: { prefix: "/" }
                        route:
                          cluster: backend${retry}`,
    ];
    const s = await sidecar(
      listen,
      routes,
      staticCluster([{ port: primary.port }, { port: fallback.port, priority: 1 }]),
    );
    for (let i = 0; i < 5; i++) {
      const c = new RawClient(listen);
      c.write("GET /twice HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n");
      expect(await c.untilClosed()).toMatch(/^HTTP\/1\.1 400 /);
      const rewritten = await request(`http://127.0.0.1:${listen}/bad-rewrite`);
      expect(rewritten.statusCode).toBe(500);
      expect(await rewritten.body.text()).toContain("invalid request path");
    }
    expect(await s.healthFlags("backend", primary.port)).toBe("healthy");
    expect(await s.metric("envoy_cluster_upstream_rq_retry", "backend")).toBe(0);
    expect(await s.metric("envoy_cluster_outlier_detection_ejections_enforced_total", "backend")).toBe(0);
    expect(await s.metric("envoy_cluster_upstream_rq_rx_reset", "backend")).toBe(0);
    expect((await primary.stats()).paths).toEqual({});
    expect((await fallback.stats()).paths).toEqual({});
    for (let i = 0; i < 5; i++) {
      const res = await request(`http://127.0.0.1:${listen}/ok`);
      expect(res.statusCode).toBe(200);
      expect(res.headers["x-upstream"]).toBe("primary");
      await res.body.text();
    }
  });
});

describe("1xx responses from the upstream", () => {
  it("drops an unasked 100 Continue and relays the final response, on a reused connection, with no failure counted", async () => {
    const up = await rawUpstream(
      (r) =>
        `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: ${r.body.length + 3}\r\n\r\nok ${r.body}`,
    );
    const listen = await freePort();
    const s = await sidecar(
      listen,
      [routeYaml({ retryOn: "reset,5xx", numRetries: 2 })],
      staticCluster([up]),
    );
    for (let i = 0; i < 3; i++) {
      const res = await request(`http://127.0.0.1:${listen}/c${i}`, { method: "POST", body: `n${i}` });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe(`ok n${i}`);
    }
    expect(up.requests.length).toBe(3);
    expect(await s.metric("envoy_cluster_upstream_cx_total", "backend")).toBe(1);
    expect(await s.metric("envoy_cluster_upstream_rq_retry", "backend")).toBe(0);
    expect(await s.healthFlags("backend", up.port)).toBe("healthy");
  });

  it("relays 103 Early Hints to the client, then the final response", async () => {
    const up = await rawUpstream(
      () =>
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n" +
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
    );
    const listen = await freePort();
    const s = await sidecar(
      listen,
      [routeYaml({ retryOn: "reset,5xx", numRetries: 2 })],
      staticCluster([up]),
    );
    const c = new RawClient(listen);
    c.write("GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    const text = await c.until("the final response", (r) => r.endsWith("final"));
    expect(text).toMatch(
      /^HTTP\/1\.1 103 Early Hints\r\nLink: <\/style\.css>; rel=preload; as=style\r\n\r\nHTTP\/1\.1 200 OK\r\n/,
    );
    expect(up.requests.length).toBe(1);
    expect(await s.healthFlags("backend", up.port)).toBe("healthy");
  });

  it("relays no 1xx to an HTTP/1.0 client, which would take it for the answer", async () => {
    const up = await rawUpstream(
      () =>
        "HTTP/1.1 102 Processing\r\n\r\n" +
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
    );
    const listen = await freePort();
    await sidecar(listen, [routeYaml({})], staticCluster([up]));
    const c = new RawClient(listen);
    c.write("GET /page HTTP/1.0\r\nHost: x\r\n\r\n");
    const text = await c.until("the final response", (r) => r.endsWith("final"));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200"]);
  });

  it("relays a 103 hint named like an object property as the header it is", async () => {
    const up = await rawUpstream(
      () =>
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nconstructor: x\r\n__proto__: y\r\n\r\n" +
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
    );
    const listen = await freePort();
    await sidecar(listen, [routeYaml({})], staticCluster([up]));
    const c = new RawClient(listen);
    c.write("GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    const text = await c.until("the final response", (r) => r.endsWith("final"));
    const hints = text.slice(0, text.indexOf("\r\n\r\n"));
    expect(headerValues(hints, "constructor")).toEqual(["x"]);
    expect(headerValues(hints, "__proto__")).toEqual(["y"]);
  });

  it("answers a client's Expect: 100-continue itself and does not pass the expectation upstream", async () => {
    const up = await rawUpstream(
      (r) => `HTTP/1.1 200 OK\r\ncontent-length: ${r.body.length + 4}\r\n\r\ngot ${r.body}`,
    );
    const listen = await freePort();
    await sidecar(listen, [routeYaml({})], staticCluster([up]));
    const c = new RawClient(listen);
    c.write("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    await c.until("100 Continue", (r) => r.startsWith("HTTP/1.1 100 Continue\r\n\r\n"));
    c.write("hello");
    const text = await c.until("the final response", (r) => r.endsWith("got hello"));
    expect(text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    expect(headerValues(up.requests[0]!.head, "expect")).toEqual([]);
  });
});

describe("route timeout", () => {
  it("starts when the request is complete: a slow upload is answered, an upstream that never answers gets 504", async () => {
    const u = await upstream("u0");
    const listen = await freePort();
    await sidecar(
      listen,
      [
        // Retries buffer the body before sending it; without them it streams.
        routeYaml({ method: "PUT", timeout: "0.4s", retryOn: "reset", numRetries: 1 }),
        routeYaml({ timeout: "0.4s" }),
      ],
      staticCluster([{ port: u.port }], ""),
    );
    /** Sends 6 parts of 10 bytes, 150 ms apart (0.75 s, well past the timeout), then reads the reply. */
    const slowUpload = async (
      method: string,
      path: string,
    ): Promise<{ reply: string; afterEndMs: number }> => {
      const c = new RawClient(listen);
      c.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\nConnection: close\r\n\r\n`);
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, 150));
        expect(c.received).toBe(""); // nothing answered while the body is still arriving
        c.write("0123456789");
      }
      const ended = performance.now();
      const reply = await c.untilClosed();
      return { reply, afterEndMs: performance.now() - ended };
    };
    for (const method of ["POST", "PUT"]) {
      const ok = await slowUpload(method, "/upload");
      expect(ok.reply).toMatch(/^HTTP\/1\.1 200 /);
      expect(ok.reply).toContain(`u0 ${method} /upload 60`);
      const hung = await slowUpload(method, "/slow?ms=5000");
      expect(hung.reply).toMatch(/^HTTP\/1\.1 504 /);
      expect(hung.reply).toContain("upstream request timeout");
      expect(hung.afterEndMs).toBeGreaterThanOrEqual(350);
    }
  });
});

describe("X-Forwarded-Proto", () => {
  it("is sent exactly once: the client's value when it sent one, else the listener's scheme", async () => {
    const up = await rawUpstream(() => "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    const listen = await freePort();
    await sidecar(listen, [routeYaml({})], staticCluster([up], ""));
    await (await request(`http://127.0.0.1:${listen}/plain`)).body.text();
    await (
      await request(`http://127.0.0.1:${listen}/from-edge`, { headers: { "x-forwarded-proto": "https" } })
    ).body.text();
    expect(headerValues(up.requests[0]!.head, "x-forwarded-proto")).toEqual(["http"]);
    expect(headerValues(up.requests[1]!.head, "x-forwarded-proto")).toEqual(["https"]);
  });
});

describe("a malformed chunked request body", () => {
  it("after dispatch: the client gets 400, the partly sent upstream connection is closed as a local destroy, the host is not blamed", async () => {
    const u = await upstream("u0");
    const listen = await freePort();
    const s = await sidecar(
      listen,
      [routeYaml({ retryOn: "reset,5xx", numRetries: 2 })],
      staticCluster([{ port: u.port }]),
    );
    const c = new RawClient(listen);
    c.write("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    await waitFor(
      "the upstream to get the request",
      async () => (await u.stats()).paths["POST /upload"] === 1,
    );
    c.write("zz\r\nnot a chunk\r\n");
    expect(await c.untilClosed()).toMatch(/^HTTP\/1\.1 400 /);
    await waitFor(
      "the upstream connection to close",
      async () => (await s.metric("envoy_cluster_upstream_cx_active", "backend")) === 0,
    );
    expect(await s.metric("envoy_cluster_upstream_cx_destroy_local", "backend")).toBe(1);
    expect(await s.metric("envoy_cluster_upstream_cx_destroy_remote", "backend")).toBe(0);
    expect(await s.metric("envoy_cluster_upstream_rq_rx_reset", "backend")).toBe(0);
    expect(await s.metric("envoy_cluster_upstream_rq_retry", "backend")).toBe(0);
    expect(await s.healthFlags("backend", u.port)).toBe("healthy");
    for (let i = 0; i < 3; i++) {
      const res = await request(`http://127.0.0.1:${listen}/after`, { method: "POST", body: "abc" });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe("u0 POST /after 3");
    }
  });

  it("after the response began: the connection is closed, with no 400 written into the response", async () => {
    // Answers at once with the start of a chunked response and never finishes it.
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      socket.on("error", () => undefined);
      socket.once("data", () =>
        socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nearly\r\n"),
      );
    });
    await new Promise<void>((resolve) => {
      server.listen(0, "127.0.0.1", resolve);
    });
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const x of sockets) x.destroy();
          server.close(() => {
            resolve();
          });
        }),
    );
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    const listen = await freePort();
    const s = await sidecar(
      listen,
      [routeYaml({ retryOn: "reset,5xx", numRetries: 2 })],
      staticCluster([{ port }]),
    );
    const c = new RawClient(listen);
    c.write("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    await c.until("the response to begin", (r) => r.includes("early"));
    c.write("zz\r\nnot a chunk\r\n");
    const text = await c.untilClosed();
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).not.toContain("400");
    await waitFor(
      "the upstream connection to close",
      async () => (await s.metric("envoy_cluster_upstream_cx_active", "backend")) === 0,
    );
    expect(await s.metric("envoy_cluster_upstream_cx_destroy_remote", "backend")).toBe(0);
    expect(await s.metric("envoy_cluster_upstream_rq_rx_reset", "backend")).toBe(0);
    expect(await s.healthFlags("backend", port)).toBe("healthy");
  });
});

describe("a malformed upstream response", () => {
  it("is never relayed: the client gets 503 (protocol error), the connection is closed, the next request gets a fresh one", async () => {
    const answers: Record<string, string> = {
      // Framed twice: a proxy and a server that disagree on where it ends is request smuggling.
      "/cl-te": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "/two-lengths": "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "/folded": "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nab",
      "/huge-head": `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(20_000)}\r\nContent-Length: 2\r\n\r\nab`,
    };
    const up = await rawUpstream((r) => {
      const path = r.head.split(" ")[1] ?? "";
      return answers[path] ?? "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    });
    const listen = await freePort();
    const s = await sidecar(listen, [routeYaml({})], staticCluster([up], ""));
    for (const [i, path] of Object.keys(answers).entries()) {
      const res = await request(`http://127.0.0.1:${listen}${path}`);
      expect(res.statusCode, path).toBe(503);
      expect(await res.body.text(), path).toContain("reset reason: protocol error");
      // Nothing on the failed connection is trusted: the next request opens another, which the
      // next malformed answer (on the kept-alive connection) closes in turn.
      const ok = await request(`http://127.0.0.1:${listen}/ok`);
      expect(ok.statusCode).toBe(200);
      expect(await ok.body.text()).toBe("ok");
      expect(await s.metric("envoy_cluster_upstream_cx_total", "backend"), path).toBe(i + 2);
      expect(await s.metric("envoy_cluster_upstream_cx_destroy_local", "backend"), path).toBe(i + 1);
    }
    expect(await s.metric("envoy_cluster_upstream_rq_rx_reset", "backend")).toBe(Object.keys(answers).length);
  });
});
