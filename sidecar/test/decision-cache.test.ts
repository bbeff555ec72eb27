// The DecisionCache filter through the built sidecar: a repeated decision is served from the cache,
// errors are not cached, notifications on the admin listener invalidate at once.
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
    const listener = httpListenerYaml(listen, [routeYaml({})]).replace(
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
});
