import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { agentSidecarConfig, startAdsFor } from "./footprint.ts";
import { Proc, freePort, pause } from "./proc.ts";
import { REPO_ROOT } from "./targets.ts";

describe("agentSidecarConfig", () => {
  it("is a config the built sidecar accepts, with the ProxyRoute-style route and the decision cache", () => {
    const text = agentSidecarConfig(15001, 15000, [{ host: "127.0.0.1", port: 8081 }]);
    const dir = mkdtempSync(path.join(os.tmpdir(), "footprint-test-"));
    try {
      const file = path.join(dir, "envoy.yaml");
      writeFileSync(file, text);
      const out = execFileSync(
        process.execPath,
        [`${REPO_ROOT}sidecar/bin/tether-sidecar.js`, "--config", file, "--mode", "validate"],
        { encoding: "utf8" },
      );
      expect(out).toContain("OK");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(text).toContain("prefix_rewrite: /\n");
    expect(text).toContain("type.googleapis.com/tether.v1alpha1.DecisionCache");
  });
});

describe("startAdsFor", () => {
  it.each([
    ["in plaintext", false],
    ["over TLS, the server's name verified", true],
  ])(
    "serves the agent config's listener and clusters to a sidecar that has only the ADS cluster, %s",
    async (_how, tls) => {
      const [listen, admin] = [await freePort(), await freePort()];
      // The upstream: any request is answered 200 "ok" (the health checks' too).
      const upstream = net.createServer((socket) => {
        socket.on("data", () => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        socket.on("error", () => undefined);
      });
      await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
      const upstreams = [{ host: "127.0.0.1", port: (upstream.address() as net.AddressInfo).port }];
      const dir = mkdtempSync(path.join(os.tmpdir(), "footprint-test-"));
      const { server, bootstrap } = await startAdsFor(listen, admin, upstreams, tls ? dir : undefined);
      expect(bootstrap.includes("UpstreamTlsContext")).toBe(tls);
      const file = path.join(dir, "envoy.yaml");
      writeFileSync(file, bootstrap);
      expect(bootstrap).not.toContain("listeners:");
      const proc = new Proc({
        name: "sidecar",
        command: process.execPath,
        args: [`${REPO_ROOT}sidecar/bin/tether-sidecar.js`, "--config", file],
        cwd: REPO_ROOT,
      });
      try {
        const clusters = agentSidecarConfig(listen, admin, upstreams).split("\n  clusters:\n")[1] ?? "";
        const wanted = [...clusters.matchAll(/^ {4}- name: (\S+)$/gm)].map((m) => m[1] ?? "");
        expect(wanted).toEqual(["pool"]);
        const deadline = Date.now() + 15_000;
        let names: string[] = [];
        while (Date.now() < deadline) {
          const res = await request(`http://127.0.0.1:${admin}/clusters?format=json`).catch(() => undefined);
          const body =
            res === undefined
              ? undefined
              : ((await res.body.json()) as { cluster_statuses?: { name: string }[] });
          names = (body?.cluster_statuses ?? []).map((c) => c.name);
          if (wanted.every((n) => names.includes(n))) break;
          await pause(50);
        }
        expect(names).toEqual(expect.arrayContaining(wanted));
        // The listener came over ADS too, and proxies to the cluster.
        const res = await request(`http://127.0.0.1:${listen}/payload`);
        expect(await res.body.text()).toBe("ok");
        expect(res.statusCode).toBe(200);
      } finally {
        await proc.kill();
        await server.stop();
        upstream.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    30_000,
  );
});
