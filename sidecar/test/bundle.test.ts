// What ships: the bin starts the bundle's start-up snapshot (dist/bundle/sidecar.blob) in its own
// process, the bundle needs nothing outside dist/bundle/ (no node_modules), and a snapshot written by
// another node falls back to the bundle itself.
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AdsServer } from "@tether/xds";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../src/log.ts";
import {
  bootstrapYaml,
  clusterYaml,
  exited,
  freePort,
  httpListenerYaml,
  oneRouteYaml,
  routeYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";
import { adsBootstrapYaml, httpListenerResource } from "./support/xds-resources.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const SIDECAR_DIR = path.resolve(here, "..");

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function run(bin: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    p.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    p.on("exit", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

/** The shipped files (bin/, dist/bundle/, package.json) copied outside the repository's node_modules reach. */
function shippedCopy(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tether-shipped-"));
  for (const part of ["package.json", "bin", "dist/bundle"]) {
    cpSync(path.join(SIDECAR_DIR, part), path.join(dir, part), { recursive: true });
  }
  return path.join(dir, "bin", "tether-sidecar.js");
}

/** A config whose route uses safe_regex (so re2js is loaded) and whose xDS-free start needs nothing else. */
function regexConfig(admin: number, listen: number): string {
  const routes = [
    `                      - match: { safe_regex: { regex: '/jsp/(\\w+/?)+\\.jsp' } }
                        route: { cluster: backend, timeout: 5s }`,
    routeYaml({ cluster: "backend" }),
  ];
  return bootstrapYaml(
    admin,
    httpListenerYaml(listen, routes),
    clusterYaml({ name: "backend", endpoints: [{ port: 9 }] }),
  );
}

/**
 * A `--require` script that writes Node's own record of the modules it loaded (moduleLoadList) to a
 * file on SIGUSR2; `read(pid)` asks for it and returns it.
 */
function moduleProbe(): { file: string; read: (pid: number) => Promise<string[]> } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tether-modules-"));
  const list = path.join(dir, "modules.txt");
  const file = path.join(dir, "probe.cjs");
  writeFileSync(
    file,
    `process.on("SIGUSR2", () => require("node:fs").writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join("\\n")));\n`,
  );
  return {
    file,
    read: async (pid) => {
      process.kill(pid, "SIGUSR2");
      return waitFor("the module list", () => {
        try {
          return readFileSync(list, "utf8").split("\n");
        } catch {
          return undefined;
        }
      });
    },
  };
}

describe("the shipped sidecar", () => {
  it("runs from its start-up snapshot in the bin's own process, with the process's own start time", async () => {
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const startedAt = Date.now() / 1000;
    const s = new Sidecar(admin, Sidecar.writeConfig(regexConfig(admin, listen)));
    cleanups.push(() => s.stop());
    await s.start();
    const pid = s.proc?.pid ?? 0;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    expect(cmdline).toContain("--snapshot-blob");
    expect(cmdline).toContain(path.join(SIDECAR_DIR, "dist", "bundle", "sidecar.blob"));
    // Taken at start, not when the snapshot was written.
    const start = await s.metric("process_start_time_seconds");
    expect(start).toBeGreaterThanOrEqual(Math.floor(startedAt) - 1);
    expect(start).toBeLessThanOrEqual(Date.now() / 1000 + 1);
  });

  it("serves and answers its admin without loading node:http or node:cluster", async () => {
    // Both would cost every sidecar resident memory for nothing (sidecar/README.md, "Memory"): the
    // listeners and the admin run on the sidecar's own HTTP/1.1 server, and a listen does not ask
    // node:cluster whether the process is a worker. The list is Node's own record of what it loaded.
    const [pa, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    cleanups.push(() => a.kill());
    const probe = moduleProbe();
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(oneRouteYaml(admin, listen, { endpoints: [{ port: pa }] })),
    );
    s.nodeArgs = ["--require", probe.file];
    cleanups.push(() => s.stop());
    await s.start();
    const proxied = await request(`http://127.0.0.1:${listen}/x`);
    await proxied.body.text();
    expect(proxied.statusCode).toBe(200);
    const metrics = await (await request(`http://127.0.0.1:${admin}/metrics`)).body.text();
    expect(metrics).toMatch(/^envoy_http_downstream_rq_total\{[^}]*\} 1$/m);
    const loaded = await probe.read(s.proc?.pid ?? 0);
    expect(loaded).toContain("NativeModule net");
    for (const m of ["http", "_http_server", "_http_client", "cluster", "child_process", "dgram"]) {
      expect(loaded).not.toContain(`NativeModule ${m}`);
    }
  });

  it("needs no node_modules: validates a safe_regex config from a copy outside the repository", async () => {
    const bin = shippedCopy();
    const file = Sidecar.writeConfig(regexConfig(await freePort(), await freePort()));
    const r = await run(bin, ["--config", file, "--mode", "validate"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("OK");
  });

  it("starts from the bundle itself, saying so, when the snapshot was written by another node", async () => {
    const bin = shippedCopy();
    const manifest = path.join(path.dirname(bin), "..", "dist", "bundle", "sidecar.blob.json");
    writeFileSync(
      manifest,
      JSON.stringify({ node: "v0.0.0", arch: process.arch, platform: process.platform }),
    );
    const file = Sidecar.writeConfig(regexConfig(await freePort(), await freePort()));
    const r = await run(bin, ["--config", file, "--mode", "validate"]);
    expect(r.stderr).toContain("was written by node v0.0.0");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("OK");
    const bad = await run(bin, ["--config", "/nonexistent/envoy.yaml", "--mode", "validate"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("TETHER_ERR_CONFIG_READ");
  });

  it("loads its xDS client from beside the snapshot (dist/bundle/xds.cjs), outside the repository; plaintext ADS loads no node:http2, node:http or node:tls", async () => {
    const bin = shippedCopy();
    const server = new AdsServer({ host: "127.0.0.1", port: 0, log: createLogger("silent") });
    const { port: xdsPort } = await server.start();
    cleanups.push(() => server.stop());
    const [admin, listen] = [await freePort(), await freePort()];
    const listener = httpListenerResource(listen, "backend");
    const yaml = adsBootstrapYaml({ admin, group: "ns/agent/demo", listener, backendPort: 9, xdsPort });
    const file = Sidecar.writeConfig(yaml);
    const probe = moduleProbe();
    const p = spawn(
      process.execPath,
      ["--require", probe.file, bin, "--config", file, "--drain-time-s", "0"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let logs = "";
    p.stdout.on("data", (c: Buffer) => (logs += c.toString()));
    p.stderr.on("data", (c: Buffer) => (logs += c.toString()));
    cleanups.push(async () => {
      p.kill("SIGKILL");
      await exited(p);
    });
    await waitFor("the ADS stream connected", async () => {
      if (p.exitCode !== null) throw new Error(`sidecar exited: ${logs}`);
      const res = await request(`http://127.0.0.1:${admin}/stats/prometheus`).catch(() => undefined);
      const text = (await res?.body.text()) ?? "";
      return /^envoy_control_plane_connected_state 1$/m.test(text);
    });
    expect(logs).not.toContain("TETHER_ERR_XDS_UNAVAILABLE");
    // The ADS client speaks HTTP/2 itself on node:net: node:http2 (and the node:http, node:tls and
    // node:crypto it would load) cost an ADS-configured sidecar ~7 MB of RSS.
    const loaded = await probe.read(p.pid ?? 0);
    expect(loaded).toContain("NativeModule net");
    for (const m of ["http2", "http", "tls", "crypto", "assert"]) {
      expect(loaded).not.toContain(`NativeModule ${m}`);
    }
  });
});
