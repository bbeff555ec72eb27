// The sidecar process: --mode validate, hot reload (plain file and ConfigMap `..data` swap), and
// SIGTERM drain.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Client, request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  exited,
  freePort,
  httpListenerYaml,
  oneRouteYaml,
  routeYaml,
  Sidecar,
  tcpListenerYaml,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, "../bin/tether-sidecar.js");
const EXAMPLES = path.resolve(here, "../../examples/sidecar");

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    p.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    p.on("exit", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

describe("--mode validate", () => {
  it("accepts the example configs", async () => {
    for (const f of ["envoy-http.yaml", "envoy-tcp.yaml"]) {
      const r = await run(["--config", path.join(EXAMPLES, f), "--mode", "validate"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    }
  });

  it("lists every problem by path and exits non-zero", async () => {
    const text = readFileSync(path.join(EXAMPLES, "envoy-tcp.yaml"), "utf8")
      .replace("connect_timeout: 1s", "connect_timeout: 1s\n      foo: bar")
      .replace("max_connect_attempts: 10", "max_connect_attempts: 0");
    const file = Sidecar.writeConfig(text);
    const r = await run(["--config", file, "--mode", "validate"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("TETHER_ERR_CONFIG_INVALID");
    expect(r.stderr).toContain("static_resources.clusters[0].foo: unsupported field");
    expect(r.stderr).toContain(
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.max_connect_attempts",
    );
  });

  it("reports a missing file and bad flags", async () => {
    const r = await run(["--config", "/nonexistent/envoy.yaml", "--mode", "validate"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("TETHER_ERR_CONFIG_READ");
    const u = await run(["--mode", "validate"]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain("--config is required");
  });
});

describe("hot reload", () => {
  it("applies a changed file without dropping connections and rejects an invalid one", async () => {
    const [pa, pb, listen, tcpPort, admin] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const a = await new Upstream(pa, "a").start();
    const b = await new Upstream(pb, "b").start();
    cleanups.push(
      () => a.kill(),
      () => b.kill(),
    );
    const make = (target: string): string =>
      bootstrapYaml(
        admin,
        httpListenerYaml(listen, [routeYaml({ cluster: target })]) + "\n" + tcpListenerYaml(tcpPort, "", "a"),
        clusterYaml({ name: "a", endpoints: [{ port: pa }] }) +
          clusterYaml({ name: "b", endpoints: [{ port: pb }] }),
      );
    const file = Sidecar.writeConfig(make("a"));
    const s = new Sidecar(admin, file);
    cleanups.push(() => s.stop());
    await s.start();
    const client = new Client(`http://127.0.0.1:${listen}`);
    cleanups.push(() => client.close());
    const who = async (): Promise<string> =>
      (await (await client.request({ path: "/", method: "GET" })).body.text()).split(" ")[0] ?? "";
    expect(await who()).toBe("a");
    const tcp = net.connect(tcpPort, "127.0.0.1");
    let tcpClosed = false;
    tcp.on("close", () => (tcpClosed = true));
    await new Promise((r) => tcp.once("connect", r));

    writeFileSync(file, make("b"));
    await waitFor("route moved to b", async () => (await who()) === "b");
    const m = await s.metrics();
    expect(m.get('tether_config_reload_total{result="success"}')).toBe(1);
    // The same keep-alive client connection carried requests before and after the reload.
    expect(m.get('envoy_http_downstream_cx_total{envoy_http_conn_manager_prefix="ingress_http"}')).toBe(1);
    expect(tcpClosed).toBe(false);

    writeFileSync(file, make("b").replace("connect_timeout: 0.25s", "connect_timeout: soon"));
    await waitFor(
      "reload rejected",
      async () => (await s.metrics()).get('tether_config_reload_total{result="failure"}') === 1,
    );
    expect(await who()).toBe("b");
    expect(s.logs).toContain("connect_timeout: expected a duration");
    tcp.destroy();
  });

  it("follows a ConfigMap-style ..data symlink swap", async () => {
    const [pa, pb, listen, admin] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    const b = await new Upstream(pb, "b").start();
    cleanups.push(
      () => a.kill(),
      () => b.kill(),
    );
    const make = (port: number): string => oneRouteYaml(admin, listen, { endpoints: [{ port }] });
    // Kubernetes layout: envoy.yaml → ..data/envoy.yaml, ..data → ..<timestamp>/
    const dir = mkdtempSync(path.join(os.tmpdir(), "tether-cm-"));
    mkdirSync(path.join(dir, "..v1"));
    writeFileSync(path.join(dir, "..v1", "envoy.yaml"), make(pa));
    symlinkSync("..v1", path.join(dir, "..data"));
    symlinkSync("..data/envoy.yaml", path.join(dir, "envoy.yaml"));
    const s = new Sidecar(admin, path.join(dir, "envoy.yaml"));
    cleanups.push(() => s.stop());
    await s.start();
    const who = async (): Promise<string> =>
      (await (await request(`http://127.0.0.1:${listen}/`)).body.text()).split(" ")[0] ?? "";
    expect(await who()).toBe("a");
    mkdirSync(path.join(dir, "..v2"));
    writeFileSync(path.join(dir, "..v2", "envoy.yaml"), make(pb));
    symlinkSync("..v2", path.join(dir, "..data_tmp"));
    renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data"));
    await waitFor("config from ..v2 in effect", async () => (await who()) === "b");
  });
});

describe("SIGTERM", () => {
  it("finishes in-flight requests, refuses new connections, and exits 0", async () => {
    const [pa, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    cleanups.push(() => a.kill());
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(oneRouteYaml(admin, listen, { endpoints: [{ port: pa }] })),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const inFlight = request(`http://127.0.0.1:${listen}/slow?ms=600`);
    await waitFor(
      "request in flight",
      async () => (await s.metric("envoy_cluster_upstream_rq_active", "backend")) === 1,
    );
    const proc = s.proc!;
    proc.kill("SIGTERM");
    await waitFor(
      "listener closed",
      () =>
        new Promise<boolean>((resolve) => {
          const c = net.connect(listen, "127.0.0.1");
          c.on("connect", () => {
            c.destroy();
            resolve(false);
          });
          c.on("error", () => {
            resolve(true);
          });
        }),
    );
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain("/slow");
    expect(await exited(proc)).toBe(0);
  });
});
