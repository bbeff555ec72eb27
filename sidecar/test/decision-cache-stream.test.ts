// The DecisionCache's notification_stream through the built sidecar, against the demo policy server
// as a child process: a notification pushed on the policy server's stream invalidates the cached
// decision at once (the policy server then sees the request again); the stream survives a
// policy-server restart, moves to another server when its server hangs, and closes on reload.
import { writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  healthCheckYaml,
  httpListenerYaml,
  PolicyServer,
  routeYaml,
  Sidecar,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const L = 'envoy_http_conn_manager_prefix="ingress_http"';

function listenerWithCache(port: number, stream: boolean): string {
  const subscription = stream
    ? `
                      notification_stream:
                        cluster: backend
                        path: /notifications/stream
                        retry_back_off: { base_interval: 0.05s, max_interval: 0.2s }`
    : "";
  return httpListenerYaml(port, [routeYaml({})]).replace(
    "                http_filters:\n",
    `                http_filters:
                  - name: tether.filters.http.decision_cache
                    typed_config:
                      "@type": type.googleapis.com/tether.v1alpha1.DecisionCache
                      ttl: 180s${subscription}
`,
  );
}

async function startPolicyServers(n: number): Promise<PolicyServer[]> {
  const out: PolicyServer[] = [];
  for (let i = 0; i < n; i++) {
    const ps = await new PolicyServer(await freePort(), `ps${i + 1}`).start();
    cleanups.push(() => {
      ps.resume();
      return ps.kill();
    });
    out.push(ps);
  }
  return out;
}

function config(admin: number, listen: number, servers: PolicyServer[], stream = true): string {
  return bootstrapYaml(
    admin,
    listenerWithCache(listen, stream),
    clusterYaml({
      endpoints: servers.map((ps) => ({ port: ps.port })),
      healthCheck: healthCheckYaml("http", 0.1, 2, 1, 0.25),
    }),
  );
}

async function startSidecar(servers: PolicyServer[]): Promise<{ s: Sidecar; listen: number }> {
  const [listen, admin] = await Promise.all([freePort(), freePort()]);
  const s = new Sidecar(admin, Sidecar.writeConfig(config(admin, listen, servers)));
  cleanups.push(() => s.stop());
  await s.start();
  return { s, listen };
}

interface Decision {
  cache: string | undefined;
  server: string;
  instance: string;
  seq: number;
}

async function decide(listen: number, session: string): Promise<Decision> {
  const res = await request(`http://127.0.0.1:${listen}/authorize?resource=/app&action=GET`, {
    headers: { cookie: `SMSESSION=${session}`, "x-session-id": session },
  });
  expect(res.statusCode).toBe(200);
  const body = (await res.body.json()) as { server: string; instance: string; seq: number };
  const cache = res.headers["x-tether-cache"];
  return { cache: typeof cache === "string" ? cache : undefined, ...body };
}

const metric = async (s: Sidecar, name: string): Promise<number> => (await s.metrics()).get(name) ?? NaN;

describe("decision cache notification_stream", () => {
  it("invalidates at once on a pushed notification, and survives a policy-server restart", async () => {
    let [ps] = await startPolicyServers(1);
    const { s, listen } = await startSidecar([ps!]);
    await waitFor(
      "stream open",
      async () => (await metric(s, `tether_decision_cache_stream_connected{${L}}`)) === 1,
    );

    const first = await decide(listen, "s1");
    expect(first.cache).toBeUndefined();
    expect(await decide(listen, "s1")).toEqual({ ...first, cache: "hit" });
    const other = await decide(listen, "s2");

    // Pushed by the policy server, not posted to the admin listener.
    expect(await ps!.publish({ session: "s1" })).toBe(1);
    await waitFor(
      "session invalidation",
      async () => (await metric(s, `tether_decision_cache_invalidations_total{${L},reason="session"}`)) === 1,
    );
    const again = await decide(listen, "s1");
    expect(again.cache).toBeUndefined();
    expect(again.seq).toBeGreaterThan(first.seq); // the policy server answered a second time
    expect((await decide(listen, "s2")).cache).toBe("hit");

    expect(await ps!.publish({ type: "policy-changed" })).toBe(1);
    await waitFor(
      "policy invalidation",
      async () =>
        (await metric(s, `tether_decision_cache_invalidations_total{${L},reason="policy_changed"}`)) === 2,
    );
    const afterPolicy = await decide(listen, "s2");
    expect(afterPolicy.cache).toBeUndefined();
    expect(afterPolicy.seq).toBeGreaterThan(other.seq);

    // The policy server dies and comes back on its port: the stream is reopened, and since events
    // may have been missed meanwhile, the reopen drops every entry.
    await decide(listen, "s3");
    expect((await decide(listen, "s3")).cache).toBe("hit");
    const port = ps!.port;
    await ps!.kill();
    await waitFor(
      "stream down",
      async () => (await metric(s, `tether_decision_cache_stream_connected{${L}}`)) === 0,
    );
    ps = await new PolicyServer(port, "ps1").start();
    cleanups.push(() => ps.kill());
    await waitFor(
      "stream reopened",
      async () => (await metric(s, `tether_decision_cache_stream_connects_total{${L}}`)) === 2,
    );
    expect(await metric(s, `tether_decision_cache_entries{${L}}`)).toBe(0);
    const fresh = await decide(listen, "s4");
    expect(fresh.instance).not.toBe(first.instance);
    expect((await decide(listen, "s4")).cache).toBe("hit");
    expect(await ps.publish({ session: "s4" })).toBe(1);
    await waitFor(
      "invalidated after the restart",
      async () => (await metric(s, `tether_decision_cache_entries{${L}}`)) === 0,
    );
    expect((await decide(listen, "s4")).cache).toBeUndefined();
    expect(s.logs).toContain("decision cache notification stream down");
  });

  it("moves the stream to another policy server when its server hangs", async () => {
    const servers = await startPolicyServers(2);
    const { s, listen } = await startSidecar(servers);
    await waitFor(
      "stream open",
      async () => (await metric(s, `tether_decision_cache_stream_connected{${L}}`)) === 1,
    );
    // Whichever server holds the stream delivers to one subscriber; the other to none.
    const delivered = await Promise.all(servers.map((ps) => ps.publish({ session: "nobody" })));
    expect([...delivered].sort()).toEqual([0, 1]);
    const holder = servers[delivered.indexOf(1)]!;
    const other = servers[delivered.indexOf(0)]!;

    // A hung server keeps its sockets open: only health checking notices. The stream is dropped when
    // the host leaves rotation and reopened on the other server.
    holder.pause();
    await waitFor(
      "stream on the other server",
      async () =>
        (await metric(s, `tether_decision_cache_stream_connects_total{${L}}`)) >= 2 &&
        (await other.publish({ session: "nobody" })) === 1,
    );
    await decide(listen, "s1");
    expect((await decide(listen, "s1")).cache).toBe("hit");
    expect(await other.publish({ session: "s1" })).toBe(1);
    await waitFor("invalidated", async () => (await metric(s, `tether_decision_cache_entries{${L}}`)) === 0);
    expect((await decide(listen, "s1")).cache).toBeUndefined();
  });

  it("keeps the stream across a reload, moves it when the cluster is replaced, closes it when removed", async () => {
    const [ps] = await startPolicyServers(1);
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const file = Sidecar.writeConfig(config(admin, listen, [ps!]));
    const s = new Sidecar(admin, file);
    cleanups.push(() => s.stop());
    await s.start();
    await waitFor("stream open", async () => (await ps!.publish({ session: "x" })) === 1);

    // A reload that changes only a route timeout keeps the filter and its stream.
    writeFileSync(file, config(admin, listen, [ps!]).replace("timeout: 5s", "timeout: 6s"));
    await waitFor(
      "reload 1",
      async () => (await metric(s, 'tether_config_reload_total{result="success"}')) === 1,
    );
    expect(await metric(s, `tether_decision_cache_stream_connects_total{${L}}`)).toBe(1);
    expect(await ps!.publish({ session: "x" })).toBe(1);

    // A reload that replaces the cluster moves the stream to the new cluster: one stream, not two.
    writeFileSync(
      file,
      config(admin, listen, [ps!]).replace("connect_timeout: 0.25s", "connect_timeout: 0.3s"),
    );
    await waitFor(
      "reload 2",
      async () => (await metric(s, 'tether_config_reload_total{result="success"}')) === 2,
    );
    await waitFor(
      "stream reopened through the new cluster",
      async () => (await metric(s, `tether_decision_cache_stream_connects_total{${L}}`)) === 2,
    );
    await waitFor("only the new stream left", async () => (await ps!.publish({ session: "x" })) === 1);

    writeFileSync(file, config(admin, listen, [ps!], false));
    await waitFor(
      "reload 3",
      async () => (await metric(s, 'tether_config_reload_total{result="success"}')) === 3,
    );
    await waitFor("stream closed", async () => (await ps!.publish({ session: "x" })) === 0);
    expect((await s.metrics()).has(`tether_decision_cache_stream_connected{${L}}`)).toBe(false);
  });
});
