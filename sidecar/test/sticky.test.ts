// Sticky sessions: RING_HASH with a cookie hash_policy. The same cookie reaches the same server while
// it is healthy; when that server dies the session moves to another and stays there.
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  healthCheckYaml,
  httpListenerYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const route = `                      - match: { prefix: "/" }
                        route:
                          cluster: backend
                          hash_policy:
                            - cookie: { name: JSESSIONID, ttl: 3600s, path: / }
                          retry_policy:
                            retry_on: connect-failure,reset
                            num_retries: 3
                            retry_host_predicate:
                              - name: envoy.retry_host_predicates.previous_hosts
                                typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate }
                            host_selection_retry_max_attempts: 5`;

describe("sticky sessions", () => {
  it("keeps a cookie on one server, moves it when the server dies, and keeps it moved", async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const ups = new Map<string, Upstream>();
    for (const [i, p] of ports.entries()) {
      const u = await new Upstream(p, `s${i}`).start();
      cleanups.push(() => u.kill());
      ups.set(`s${i}`, u);
    }
    const cluster = clusterYaml({
      endpoints: ports.map((port) => ({ port })),
      lbPolicy: "RING_HASH",
      healthCheck: healthCheckYaml("tcp", 0.1, 2, 1, 0.1),
    });
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(bootstrapYaml(admin, httpListenerYaml(listen, [route]), cluster)),
    );
    cleanups.push(() => s.stop());
    await s.start();

    const first = await request(`http://127.0.0.1:${listen}/login`);
    const setCookie = String(first.headers["set-cookie"]);
    expect(setCookie).toMatch(/^JSESSIONID="[0-9a-f]{8}"; Max-Age=3600; Path=\/; HttpOnly$/);
    const owner = (await first.body.text()).split(" ")[0]!;
    const cookie = setCookie.split(";")[0]!;
    const who = async (c: string): Promise<string> => {
      const res = await request(`http://127.0.0.1:${listen}/app`, { headers: { cookie: c } });
      expect(res.statusCode).toBe(200);
      expect(res.headers["set-cookie"]).toBeUndefined();
      return (await res.body.text()).split(" ")[0]!;
    };
    for (let i = 0; i < 20; i++) expect(await who(cookie)).toBe(owner);

    const spread = new Set<string>();
    for (let i = 0; i < 30; i++) spread.add(await who(`JSESSIONID=other-${i}`));
    expect(spread.size).toBeGreaterThan(1);

    await ups.get(owner)!.kill();
    // Retries with previous_hosts keep even the first requests after the kill answered.
    expect(await who(cookie)).not.toBe(owner);
    await waitFor(
      "owner marked unhealthy",
      async () => (await s.metric("envoy_cluster_membership_healthy", "backend")) === 2,
    );
    const moved = await who(cookie);
    expect(moved).not.toBe(owner);
    for (let i = 0; i < 20; i++) expect(await who(cookie)).toBe(moved);
  });
});
