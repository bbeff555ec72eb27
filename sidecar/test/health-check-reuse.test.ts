// Active HTTP health checks reuse one connection per host (Envoy's reuse_connection, default true):
// the built sidecar against a real upstream that counts the connections it accepted.
import { afterEach, describe, expect, it } from "vitest";
import { freePort, healthCheckYaml, oneRouteYaml, Sidecar, Upstream, waitFor } from "./support/harness.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const CHECKS = 10;

/** A sidecar checking one upstream every 50 ms with `check` (health_checks YAML). */
async function checked(
  check: string,
  upstreamArgs: readonly string[] = [],
): Promise<{ u: Upstream; s: Sidecar }> {
  const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  const u = await new Upstream(pu, "checked", "http", undefined, upstreamArgs).start();
  cleanups.push(() => u.kill());
  const s = new Sidecar(
    admin,
    Sidecar.writeConfig(oneRouteYaml(admin, listen, { endpoints: [{ port: pu }], healthCheck: check })),
  );
  cleanups.push(() => s.stop());
  await s.start();
  await waitFor(`${CHECKS} health checks`, async () => {
    return (await s.metric("envoy_cluster_health_check_attempt", "backend")) >= CHECKS;
  });
  return { u, s };
}

/** Connections the upstream accepted for checks, with the checks it answered (one stats request). */
async function upstreamCounts(u: Upstream, path: string): Promise<{ connections: number; checks: number }> {
  const stats = await u.stats();
  // The /__stats request itself came on a connection of its own.
  return { connections: stats.connections - 1, checks: stats.paths[`GET ${path}`] ?? 0 };
}

describe("health check connections", () => {
  it("N checks use one connection by default", async () => {
    const { u, s } = await checked(healthCheckYaml("http", 0.05));
    const { connections, checks } = await upstreamCounts(u, "/healthz");
    expect(checks).toBeGreaterThanOrEqual(CHECKS);
    expect(connections).toBe(1);
    expect(await s.metric("envoy_cluster_health_check_failure", "backend")).toBe(0);
  });

  it("N checks use N connections with reuse_connection: false", async () => {
    const { u } = await checked(healthCheckYaml("http", 0.05) + "          reuse_connection: false\n");
    const { connections, checks } = await upstreamCounts(u, "/healthz");
    expect(checks).toBeGreaterThanOrEqual(CHECKS);
    // A check may have connected and not yet asked when the counts were read.
    expect(connections).toBeGreaterThanOrEqual(checks);
    expect(connections).toBeLessThanOrEqual(checks + 1);
  });

  it("a check after the server closed the kept connection still passes, on a new one", async () => {
    // /stale answers once per connection and drops the connection at the second request; the
    // upstream also closes connections idle for 20 ms, less than the 50 ms interval.
    const { u, s } = await checked(healthCheckYaml("http", 0.05).replace("/healthz", "/stale"), [
      "--keep-alive-ms",
      "20",
    ]);
    // The sidecar counts an attempt when it starts, so the last one may not have connected yet when
    // the attempt count reached CHECKS: wait for the upstream to have accepted that many.
    await waitFor(`${CHECKS} check connections`, async () => {
      const { connections, checks } = await upstreamCounts(u, "/stale");
      return connections >= CHECKS && checks >= CHECKS;
    });
    expect(await s.metric("envoy_cluster_health_check_failure", "backend")).toBe(0);
    expect(await s.metric("envoy_cluster_membership_healthy", "backend")).toBe(1);
  });
});
