// One-off measurement (not a test): idle RSS (VmRSS after 4 s) and start-up time (spawn → /ready 200)
// of the built sidecar with and without dynamic_resources; with it, an AdsServer in this process
// serves the same listener and cluster, so the sidecar switches to ADS during the 4 s.
//   node sidecar/test/measure-xds.ts [runs]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { AdsServer } from "@tether/xds";
import { createLogger } from "../src/log.ts";
import { request } from "undici";
import { freePort, Sidecar, Upstream } from "./support/harness.ts";
import { httpListenerResource } from "./support/xds-resources.ts";

const BIN = new URL("../bin/tether-sidecar.js", import.meta.url).pathname;
const runs = Number(process.argv[2] ?? "6");
const log = createLogger("silent");

function cluster(port: number): Record<string, unknown> {
  return {
    name: "backend",
    connect_timeout: "0.25s",
    load_assignment: {
      cluster_name: "backend",
      endpoints: [
        {
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } },
          ],
        },
      ],
    },
  };
}

async function once(
  dynamic: boolean,
  upstreamPort: number,
  xdsPort: number,
): Promise<{ rss: number; readyMs: number }> {
  const [admin, lp] = [await freePort(), await freePort()];
  const dyn = dynamic
    ? `node: { id: ns/pod, cluster: ns/agent/m }
dynamic_resources:
  ads_config: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: tether_xds } }] }
  cds_config: { ads: {}, resource_api_version: V3 }
  lds_config: { ads: {}, resource_api_version: V3 }
`
    : "";
  const xdsCluster = dynamic
    ? `    - { name: tether_xds, type: STATIC, connect_timeout: 1s, typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3.HttpProtocolOptions: { "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } }, load_assignment: { cluster_name: tether_xds, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${xdsPort} } } } }] }] } }\n`
    : "";
  const file =
    Sidecar.writeConfig(`${dyn}admin: { address: { socket_address: { address: 127.0.0.1, port_value: ${admin} } } }
static_resources:
  listeners:
    - ${JSON.stringify(httpListenerResource(lp, "backend"))}
  clusters:
    - ${JSON.stringify(cluster(upstreamPort))}
${xdsCluster}`);
  const t0 = performance.now();
  const proc = spawn(process.execPath, [BIN, "--config", file, "--log-level", "warn"], { stdio: "ignore" });
  let readyMs: number;
  for (;;) {
    try {
      const res = await request(`http://127.0.0.1:${admin}/ready`);
      await res.body.text();
      if (res.statusCode === 200) {
        readyMs = performance.now() - t0;
        break;
      }
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, Math.max(0, 4000 - (performance.now() - t0))));
  const status = readFileSync(`/proc/${proc.pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? "0") / 1024;
  if (dynamic) {
    const m = await (await request(`http://127.0.0.1:${admin}/stats/prometheus`)).body.text();
    if (!m.includes("envoy_cluster_manager_cds_update_success 1")) throw new Error("ADS config not applied");
  }
  proc.kill("SIGKILL");
  return { rss, readyMs };
}

const up = await new Upstream(await freePort(), "u").start();
const server = new AdsServer({ host: "127.0.0.1", port: 0, log });
const { port: xdsPort } = await server.start();
const resources = {
  cluster: new Map([["backend", cluster(up.port)]]),
  endpoint: new Map(),
  listener: new Map(),
  route: new Map(),
};
const results: Record<string, { rss: number[]; ready: number[] }> = {
  static: { rss: [], ready: [] },
  dynamic: { rss: [], ready: [] },
};
for (let i = 0; i < runs; i++) {
  for (const dynamic of [false, true]) {
    // The listener port changes per run: the snapshot follows it.
    const r = await (async () => {
      if (dynamic) {
        const lp = await freePort();
        resources.listener = new Map([["http", httpListenerResource(lp, "backend")]]);
        server.setSnapshot("ns/agent/m", { version: String(i), resources });
      }
      return once(dynamic, up.port, xdsPort);
    })();
    const k = dynamic ? "dynamic" : "static";
    results[k]?.rss.push(r.rss);
    results[k]?.ready.push(r.readyMs);
  }
}
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
for (const [k, v] of Object.entries(results)) {
  console.log(
    `${k}: VmRSS after 4 s mean ${mean(v.rss).toFixed(1)} MB [${v.rss.map((x) => x.toFixed(1)).join(", ")}]; spawn → /ready 200 mean ${mean(v.ready).toFixed(0)} ms [${v.ready.map((x) => x.toFixed(0)).join(", ")}]`,
  );
}
await server.stop();
await up.kill();
process.exit(0);
