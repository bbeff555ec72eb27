// `npm run demo`: two demo policy servers behind tether-sidecar, steady traffic, and a series of
// kills and restarts — one table row per phase. Needs no cluster; everything runs on loopback.
//
//   node e2e/src/demo/main.ts [--config examples/sidecar/envoy-http.yaml] [--rate 200] [--scale 1]
//
// Exits 1 if the sidecar or the policy servers cannot be started.
import { parseArgs } from "node:util";
import { request } from "undici";
import { loadDemoConfig } from "./demo-config.ts";
import { demoPhases, runPhases } from "./phases.ts";
import { PolicyServerProcess, startPolicyServers } from "./processes.ts";
import { SidecarProcess, metricSum, repoRoot } from "./sidecar.ts";
import { renderPhaseTable, summarizePhases } from "./summary.ts";
import { ConstantRateTraffic } from "./traffic.ts";

const DECISION_PATH = "/authorize?resource=/app/orders&action=GET";
const REPORTED_METRICS = [
  "envoy_cluster_upstream_rq_total",
  "envoy_cluster_upstream_rq_retry",
  "envoy_cluster_upstream_cx_connect_fail",
  "envoy_cluster_upstream_cx_destroy_remote",
  "envoy_cluster_outlier_detection_ejections_active",
];

function log(message: string): void {
  process.stdout.write(`[demo ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

/** Sends requests through the sidecar until every server has answered one, or the deadline passes. */
async function warmUp(origin: string, servers: readonly string[], timeoutMs: number): Promise<boolean> {
  const seen = new Set<string>();
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && seen.size < servers.length) {
    try {
      const response = await request(`${origin}${DECISION_PATH}`, {
        headersTimeout: 2000,
        bodyTimeout: 2000,
      });
      const body = (await response.body.json()) as { server?: string };
      if (response.statusCode === 200 && body.server) seen.add(body.server);
    } catch {
      await new Promise<void>((resolve) => setTimeout(resolve, 50));
    }
  }
  return seen.size === servers.length;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      config: { type: "string", default: `${repoRoot()}examples/sidecar/envoy-http.yaml` },
      rate: { type: "string", default: "200" },
      scale: { type: "string", default: "1" },
    },
  });
  const rate = Number(values.rate);
  const scale = Number(values.scale);
  if (!(rate > 0 && rate <= 2000))
    throw new Error(`TETHER_ERR_DEMO_CONFIG: --rate: expected 1-2000, got ${values.rate}`);
  if (!(scale > 0 && scale <= 10))
    throw new Error(`TETHER_ERR_DEMO_CONFIG: --scale: expected (0, 10], got ${values.scale}`);

  const config = await loadDemoConfig(values.config);
  log(`sidecar config ${config.configPath}${config.rewritten ? " (temp copy: some ports were taken)" : ""}`);
  const [first, second] = config.endpoints;
  if (!first || !second)
    throw new Error("TETHER_ERR_DEMO_CONFIG: the demo needs a cluster with two endpoints");

  const cleanup: (() => Promise<void>)[] = [];
  const onSignal = (): void => {
    void Promise.all(cleanup.map((step) => step())).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const servers = await startPolicyServers([
      { name: "ps1", port: first.port, host: first.host },
      { name: "ps2", port: second.port, host: second.host },
    ]);
    cleanup.push(async () => {
      await Promise.all(servers.map((server) => server.kill()));
    });
    for (const server of servers)
      log(`${server.name} listening on ${server.listening.host}:${server.listening.port}`);

    const sidecar = new SidecarProcess({ configPath: config.configPath, admin: config.admin });
    try {
      await sidecar.start();
    } catch (error) {
      log(`the sidecar failed to start: ${error instanceof Error ? error.message : String(error)}`);
      return 1;
    } finally {
      cleanup.push(() => sidecar.stop());
    }
    const origin = `http://${config.listener.host}:${config.listener.port}`;
    log(`tether-sidecar ready; listener ${origin}, admin ${sidecar.adminOrigin}`);
    if (!(await warmUp(origin, ["ps1", "ps2"], 15_000))) {
      log("warning: not both servers answered through the sidecar during warm-up");
    }

    const traffic = new ConstantRateTraffic({ origin, path: DECISION_PATH, ratePerSecond: rate });
    const byName = new Map<string, PolicyServerProcess>(servers.map((server) => [server.name, server]));
    log(`steady traffic: ${rate} req/s, open loop, latency measured from each request's scheduled time`);
    traffic.start();
    const windows = await runPhases(traffic, byName, demoPhases("ps1", "ps2", scale), log);
    await traffic.stop();

    const summaries = summarizePhases(traffic.records, windows);
    process.stdout.write("\n" + renderPhaseTable(summaries) + "\n\n");
    for (const summary of summaries) {
      if (summary.firstFailureAtMs !== null) {
        process.stdout.write(
          `  ${summary.name}: first failure scheduled ${summary.firstFailureAtMs.toFixed(0)} ms into the phase\n`,
        );
      }
      for (const { error, count } of summary.errors.slice(0, 3)) {
        process.stdout.write(`  ${summary.name}: ${count} × ${error}\n`);
      }
    }
    const metrics = await sidecar.prometheus().catch(() => "");
    for (const name of REPORTED_METRICS) process.stdout.write(`  ${name} ${metricSum(metrics, name)}\n`);
    return 0;
  } finally {
    await Promise.all(cleanup.map((step) => step()));
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
