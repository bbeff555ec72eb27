// Shutdown like Envoy's drain sequence, against the built sidecar: on SIGTERM /ready fails at once,
// the listener keeps accepting for --drain-time-s while responses carry `Connection: close`, then it
// stops accepting and in-flight requests finish; a MODIFY_ONLY listener (the public admin the kubelet
// probes through) answers 503 until the very end instead of being closed first.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Client, request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  exited,
  freePort,
  httpListenerYaml,
  routeYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function refuses(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.on("connect", () => {
      c.destroy();
      resolve(false);
    });
    c.on("error", () => {
      resolve(true);
    });
  });
}

async function status(url: string): Promise<number> {
  const res = await request(url);
  await res.body.text();
  return res.statusCode;
}

describe("SIGTERM drain sequence", () => {
  it("keeps accepting for the drain time with Connection: close, finishes in-flight work, closes the MODIFY_ONLY listener last", async () => {
    const [pa, listen, pub, admin] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    cleanups.push(() => a.kill());
    const publicAdmin = httpListenerYaml(
      pub,
      [routeYaml({ cluster: "admin-local" })],
      "admin-public",
    ).replace("      filter_chains:", "      drain_type: MODIFY_ONLY\n      filter_chains:");
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        bootstrapYaml(
          admin,
          httpListenerYaml(listen, [routeYaml({})]) + "\n" + publicAdmin,
          clusterYaml({ endpoints: [{ port: pa }] }) +
            clusterYaml({ name: "admin-local", endpoints: [{ port: admin }] }),
        ),
      ),
    );
    s.extraArgs = ["--drain-time-s", "1.5", "--drain-strategy", "immediate", "--parent-shutdown-time-s", "8"];
    cleanups.push(() => s.stop());
    await s.start();

    const keepAlive = new Client(`http://127.0.0.1:${listen}`);
    cleanups.push(() => keepAlive.close());
    const before = await keepAlive.request({ path: "/", method: "GET" });
    await before.body.text();
    expect(before.headers["connection"]).not.toBe("close");
    expect(await status(`http://127.0.0.1:${pub}/ready`)).toBe(200);

    // Outlives the drain period: it must still complete.
    const inFlight = request(`http://127.0.0.1:${listen}/slow?ms=3000`);
    await waitFor(
      "request in flight",
      async () => (await s.metric("envoy_cluster_upstream_rq_active", "backend")) === 1,
    );
    const proc = s.proc!;
    proc.kill("SIGTERM");

    await waitFor("/ready fails", async () => (await status(`http://127.0.0.1:${admin}/ready`)) === 503);
    // Through the public admin listener too: it answers, it is not closed.
    expect(await status(`http://127.0.0.1:${pub}/ready`)).toBe(503);
    // During the drain period: a request on the old keep-alive connection and on a new one are
    // answered, each with Connection: close.
    const onOld = await keepAlive.request({ path: "/", method: "GET" });
    expect(onOld.statusCode).toBe(200);
    await onOld.body.text();
    expect(onOld.headers["connection"]).toBe("close");
    const fresh = new Client(`http://127.0.0.1:${listen}`);
    cleanups.push(() => fresh.close());
    const onNew = await fresh.request({ path: "/", method: "GET" });
    expect(onNew.statusCode).toBe(200);
    await onNew.body.text();
    expect(onNew.headers["connection"]).toBe("close");

    await waitFor("listener stops accepting after the drain time", () => refuses(listen), 5000);
    // The in-flight request is still running, so the process is still up; the probes' listener answers.
    expect(await status(`http://127.0.0.1:${pub}/ready`)).toBe(503);
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain("/slow");
    expect(await exited(proc)).toBe(0);
    expect(s.logs).toContain('"drainStrategy":"immediate"');
  });

  it("refuses --parent-shutdown-time-s shorter than --drain-time-s", async () => {
    const admin = await freePort();
    const s = new Sidecar(admin, Sidecar.writeConfig(bootstrapYaml(admin, "    []", "    []")));
    s.extraArgs = ["--drain-time-s", "10", "--parent-shutdown-time-s", "5"];
    cleanups.push(() => s.stop());
    await s.start(false);
    expect(await exited(s.proc!)).toBe(2);
    expect(s.logs).toContain("--parent-shutdown-time-s must be at least --drain-time-s");
  });
});
