// The DecisionCache filter through the built sidecar: a repeated decision is served from the cache,
// errors are not cached, notifications on the admin listener invalidate at once, and one subject's
// decision is never served to another.
import http from "node:http";
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
} from "./support/harness.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("decision cache", () => {
  it("serves repeats from the cache, never caches errors, and invalidates on notifications", async () => {
    const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const u = await new Upstream(pu, "ps").start();
    cleanups.push(() => u.kill());
    // /sticky/: a hash_policy cookie the listener itself sets on the client's first request.
    const sticky = `                      - match: { prefix: "/sticky/" }
                        route:
                          cluster: backend
                          hash_policy:
                            - cookie: { name: JSESSIONID, ttl: 3600s, path: / }`;
    const listener = httpListenerYaml(listen, [sticky, routeYaml({})]).replace(
      "                http_filters:\n",
      `                http_filters:
                  - name: tether.filters.http.decision_cache
                    typed_config: { "@type": type.googleapis.com/tether.v1alpha1.DecisionCache, ttl: 180s, notifications: true }
`,
    );
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(bootstrapYaml(admin, listener, clusterYaml({ endpoints: [{ port: pu }] }))),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const get = async (
      path: string,
      session: string,
    ): Promise<{ status: number; cache: unknown; body: string }> => {
      const res = await request(`http://127.0.0.1:${listen}${path}`, {
        headers: { cookie: `SMSESSION=${session}`, "x-session-id": session },
      });
      return { status: res.statusCode, cache: res.headers["x-tether-cache"], body: await res.body.text() };
    };
    const seen = async (path: string): Promise<number> => (await u.stats()).paths[`GET ${path}`] ?? 0;
    const notify = async (body: unknown): Promise<{ status: number; json: unknown }> => {
      const res = await request(`http://127.0.0.1:${admin}/notifications`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.statusCode, json: await res.body.json() };
    };

    const first = await get("/decide", "s1");
    expect(first).toMatchObject({ status: 200, cache: undefined });
    const second = await get("/decide", "s1");
    expect(second).toEqual({ status: 200, cache: "hit", body: first.body });
    expect(await seen("/decide")).toBe(1);
    // Another session is another key.
    await get("/decide", "s2");
    expect(await seen("/decide")).toBe(2);

    await get("/status?code=503", "s1");
    await get("/status?code=503", "s1");
    expect(await seen("/status")).toBe(2);

    expect(await notify({ session: "s1" })).toEqual({ status: 200, json: { invalidated: 1 } });
    expect((await get("/decide", "s1")).cache).toBeUndefined();
    expect(await seen("/decide")).toBe(3);
    expect((await get("/decide", "s2")).cache).toBe("hit");

    expect(await notify({ type: "policy-changed" })).toEqual({ status: 200, json: { invalidated: 2 } });
    expect((await get("/decide", "s2")).cache).toBeUndefined();
    expect((await notify({ nonsense: true })).status).toBe(400);

    const m = await s.metrics();
    const l = 'envoy_http_conn_manager_prefix="ingress_http"';
    expect(m.get(`tether_decision_cache_hits_total{${l}}`)).toBe(2);
    expect(m.get(`tether_decision_cache_invalidations_total{${l},reason="session"}`)).toBe(1);
    expect(m.get(`tether_decision_cache_invalidations_total{${l},reason="policy_changed"}`)).toBe(2);
  });

  it("never serves one subject's decision to another: session header, Host, Authorization, Vary, Set-Cookie", async () => {
    // A policy server that answers per subject: each answer names what it was asked with and a serial.
    let served = 0;
    const ps = http.createServer((req, res) => {
      served++;
      const path = new URL(req.url ?? "/", "http://x").pathname;
      const h = req.headers;
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (path === "/vary") headers["vary"] = "X-Tenant";
      if (path === "/vary-any") headers["vary"] = "*";
      if (path === "/private") headers["cache-control"] = "private, max-age=60";
      if (path === "/login") headers["set-cookie"] = `SMSESSION=${served}`;
      res.writeHead(200, headers);
      const subject = {
        host: h.host,
        session: h["x-session-id"],
        tenant: h["x-tenant"],
        auth: h.authorization,
      };
      res.end(JSON.stringify({ ...subject, n: served }));
    });
    await new Promise<void>((r) => ps.listen(0, "127.0.0.1", r));
    cleanups.push(async () => {
      ps.closeAllConnections();
      await new Promise((r) => ps.close(r));
    });
    const pu = (ps.address() as { port: number }).port;
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    // key_headers leaves Authorization out: it is keyed all the same.
    // /sticky/: a hash_policy cookie the listener itself sets on the client's first request.
    const sticky = `                      - match: { prefix: "/sticky/" }
                        route:
                          cluster: backend
                          hash_policy:
                            - cookie: { name: JSESSIONID, ttl: 3600s, path: / }`;
    const listener = httpListenerYaml(listen, [sticky, routeYaml({})]).replace(
      "                http_filters:\n",
      `                http_filters:
                  - name: tether.filters.http.decision_cache
                    typed_config: { "@type": type.googleapis.com/tether.v1alpha1.DecisionCache, key_headers: [cookie] }
`,
    );
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        bootstrapYaml(admin, listener, clusterYaml({ endpoints: [{ port: pu }], lbPolicy: "RING_HASH" })),
      ),
    );
    cleanups.push(() => s.stop());
    await s.start();
    type Answer = Record<string, unknown>;
    const ask = async (path: string, headers: Record<string, string>): Promise<Answer> => {
      const res = await request(`http://127.0.0.1:${listen}${path}`, { headers });
      const body = (await res.body.json()) as Answer;
      return { ...body, hit: res.headers["x-tether-cache"] === "hit", cookie: res.headers["set-cookie"] };
    };
    /** A's decision is cached; B, differing only in one respect, gets its own; both are then hits. */
    const apart = async (
      path: string,
      a: Record<string, string>,
      b: Record<string, string>,
    ): Promise<void> => {
      const first = await ask(path, a);
      expect(first).toMatchObject({ hit: false });
      const other = await ask(path, b);
      expect(other).toMatchObject({ hit: false });
      expect(other["n"]).not.toBe(first["n"]);
      expect(await ask(path, a)).toEqual({ ...first, hit: true });
      expect(await ask(path, b)).toEqual({ ...other, hit: true });
    };

    await apart("/decide", { "x-session-id": "A" }, { "x-session-id": "B" });
    await apart("/decide", { host: "a.example" }, { host: "b.example" });
    await apart("/decide", { authorization: "Bearer A" }, { authorization: "Bearer B" });
    expect(await ask("/decide", { host: "b.example" })).toMatchObject({ host: "b.example", hit: true });

    // Vary: X-Tenant — an entry answers only the tenant whose request filled it.
    const ta = { "x-session-id": "S", "x-tenant": "ta" };
    const tb = { "x-session-id": "S", "x-tenant": "tb" };
    expect(await ask("/vary", ta)).toMatchObject({ tenant: "ta", hit: false });
    expect(await ask("/vary", ta)).toMatchObject({ tenant: "ta", hit: true });
    expect(await ask("/vary", tb)).toMatchObject({ tenant: "tb", hit: false });
    expect(await ask("/vary", tb)).toMatchObject({ tenant: "tb", hit: true });
    expect(await ask("/vary", ta)).toMatchObject({ tenant: "ta", hit: false });

    // Never stored: Vary: *, Cache-Control: private, and Set-Cookie (B must not get A's session cookie).
    for (const path of ["/vary-any", "/private"]) {
      for (const h of [ta, tb, ta]) {
        expect(await ask(path, h)).toMatchObject({ tenant: h["x-tenant"], hit: false });
      }
    }
    const login = await ask("/login", {});
    const again = await ask("/login", {});
    expect(again).toMatchObject({ hit: false });
    expect(again["cookie"]).not.toEqual(login["cookie"]);

    // The request's Cache-Control: no-cache goes upstream and refreshes the entry; no-store is not stored.
    const fresh = await ask("/decide", { "x-session-id": "A", "cache-control": "no-cache" });
    expect(fresh).toMatchObject({ session: "A", hit: false });
    expect(await ask("/decide", { "x-session-id": "A" })).toEqual({ ...fresh, hit: true });
    expect(await ask("/unstored", { "cache-control": "no-store" })).toMatchObject({ hit: false });
    expect(await ask("/unstored", {})).toMatchObject({ hit: false });

    // The listener's own sticky cookie routes the client that got it; the cache never replays it.
    const first = await ask("/sticky/decide", {});
    expect(first["cookie"]).toMatch(/^JSESSIONID=/);
    expect(await ask("/sticky/decide", {})).toEqual({ ...first, hit: true, cookie: undefined });
  });

  it("replaces an entry with an answer it cannot store; never stores a close-delimited answer or keys a GET's body", async () => {
    // A policy server on a raw socket: framing is exactly what each path says.
    let served = 0;
    const ps = net.createServer((socket) => {
      socket.on("error", () => undefined);
      let buf = "";
      socket.on("data", (c: Buffer) => {
        buf += c.toString("latin1");
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buf.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? "0");
        if (buf.length < end + 4 + length) return;
        const reqBody = buf.slice(end + 4, end + 4 + length);
        buf = buf.slice(end + 4 + length);
        served++;
        const path = head.split(" ")[1] ?? "";
        const answer = (status: string, text: string): void => {
          socket.write(
            `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${text.length}\r\n\r\n${text}`,
          );
        };
        if (path === "/close")
          socket.end(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nallow ${served}`);
        else if (path === "/flip" && /\r\ncache-control: no-cache/i.test(head))
          answer("403 Forbidden", `deny ${served}`);
        else if (path === "/body") answer("200 OK", `about ${reqBody} ${served}`);
        else answer("200 OK", `allow ${served}`);
      });
    });
    await new Promise<void>((r) => ps.listen(0, "127.0.0.1", r));
    cleanups.push(async () => {
      await new Promise((r) => ps.close(r));
    });
    const pu = (ps.address() as { port: number }).port;
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const listener = httpListenerYaml(listen, [routeYaml({})]).replace(
      "                http_filters:\n",
      `                http_filters:
                  - name: tether.filters.http.decision_cache
                    typed_config: { "@type": type.googleapis.com/tether.v1alpha1.DecisionCache }
`,
    );
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(bootstrapYaml(admin, listener, clusterYaml({ endpoints: [{ port: pu }] }))),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const ask = async (
      path: string,
      headers: Record<string, string> = {},
      body?: string,
    ): Promise<{ status: number; text: string; hit: boolean }> => {
      const res = await request(`http://127.0.0.1:${listen}${path}`, {
        headers,
        ...(body === undefined ? {} : { body }),
      });
      return {
        status: res.statusCode,
        text: await res.body.text(),
        hit: res.headers["x-tether-cache"] === "hit",
      };
    };

    const allow = await ask("/flip");
    expect(await ask("/flip")).toEqual({ ...allow, hit: true });
    // A fresh answer the cache may not store (a 403) still replaces the "allow" it had.
    expect(await ask("/flip", { "cache-control": "no-cache" })).toMatchObject({ status: 403, hit: false });
    expect(await ask("/flip")).toMatchObject({ status: 200, hit: false });

    // Read until the server closed: a cut-short answer would look the same, so it is never stored.
    expect(await ask("/close")).toMatchObject({ status: 200, hit: false });
    expect(await ask("/close")).toMatchObject({ status: 200, hit: false });

    // A GET whose body says what it asks about is not answered from another body's entry.
    expect((await ask("/body", {}, "doc1")).text).toMatch(/^about doc1 /);
    expect(await ask("/body", {}, "doc2")).toMatchObject({
      hit: false,
      text: expect.stringMatching(/^about doc2 /) as unknown,
    });
  });
});
