// The sidecar's command line, run by main.ts (unbundled) and by snapshot.ts (the shipped bundle):
//   --config FILE [--mode serve|validate] [--log-level LEVEL] [drain flags, see shutdown.ts]
//   [--service-node ID] [--service-cluster NAME] [--xds-token-file PATH]
// First: it sets how zod builds the config schemas, which the imports below build as they load.
import "./schema-mode.ts";
import { parseArgs } from "node:util";
import { loadConfigFile, type LoadedConfig } from "./config/load.ts";
import { ConfigWatcher } from "./config/watcher.ts";
import { TetherError } from "./errors.ts";
import { createLogger, LOG_LEVELS, type LogLevel } from "./log.ts";
import type { DrainOptions } from "./drain.ts";
import { Runtime } from "./runtime.ts";
import { adsTls } from "./xds/ads-tls.ts";
import { DRAIN_CLI_OPTIONS, DRAIN_USAGE, installShutdown, parseDrainOptions } from "./shutdown.ts";
import { resolveClusterTransports } from "./upstream/transport-match.ts";

const USAGE = `usage: tether-sidecar --config FILE [--mode serve|validate] [--log-level trace|debug|info|warn|error] ${DRAIN_USAGE} [--service-node ID] [--service-cluster NAME] [--xds-token-file PATH]`;

interface Cli {
  config: string;
  mode: "serve" | "validate";
  logLevel: LogLevel;
  drain: DrainOptions;
  /** Envoy's --service-node / --service-cluster: override node.id / node.cluster. */
  serviceNode: string | undefined;
  serviceCluster: string | undefined;
  /** A bearer token file sent on every ADS (re)connect, read afresh each time (it is rotated). */
  xdsTokenFile: string | undefined;
}

function parseCli(argv: string[]): Cli {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string", short: "c" },
      "config-path": { type: "string" },
      mode: { type: "string", default: "serve" },
      "log-level": { type: "string", short: "l", default: "info" },
      ...DRAIN_CLI_OPTIONS,
      "service-node": { type: "string" },
      "service-cluster": { type: "string" },
      "xds-token-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(USAGE + "\n");
    process.exit(0);
  }
  const config = values.config ?? values["config-path"];
  if (config === undefined) throw new TetherError("TETHER_ERR_CLI_USAGE", `--config is required\n${USAGE}`);
  const mode = values.mode;
  if (mode !== "serve" && mode !== "validate") {
    throw new TetherError("TETHER_ERR_CLI_USAGE", `--mode must be serve or validate\n${USAGE}`);
  }
  const xdsTokenFile = values["xds-token-file"];
  if (xdsTokenFile === "")
    throw new TetherError("TETHER_ERR_CLI_USAGE", `--xds-token-file: empty path\n${USAGE}`);
  const logLevel = values["log-level"];
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new TetherError("TETHER_ERR_CLI_USAGE", `--log-level must be one of ${LOG_LEVELS.join(", ")}`);
  }
  return {
    config,
    mode,
    logLevel: logLevel as LogLevel,
    drain: parseDrainOptions(values),
    serviceNode: values["service-node"],
    serviceCluster: values["service-cluster"],
    xdsTokenFile,
  };
}

/** ADS identifies the sidecar by node.id and node.cluster (the control plane keys snapshots by the latter). */
function checkNode(loaded: LoadedConfig, cli: Cli): void {
  const b = loaded.bootstrap;
  if (b.dynamic_resources === undefined) return;
  const problems: string[] = [];
  if ((cli.serviceNode ?? b.node?.id ?? "") === "") {
    problems.push("node.id: required with dynamic_resources (or --service-node)");
  }
  if ((cli.serviceCluster ?? b.node?.cluster ?? "") === "") {
    problems.push("node.cluster: required with dynamic_resources (or --service-cluster)");
  }
  const adsCluster = b.dynamic_resources.ads_config.grpc_services[0]?.envoy_grpc.cluster_name;
  try {
    adsTls(b.static_resources.clusters.find((c) => c.name === adsCluster));
  } catch (err) {
    problems.push(...(err instanceof TetherError ? err.problems : [(err as Error).message]));
  }
  if (problems.length > 0) {
    throw new TetherError(
      "TETHER_ERR_CONFIG_INVALID",
      `invalid configuration:\n  ${problems.join("\n  ")}`,
      problems,
    );
  }
}

/** Parses the arguments, loads the config and serves (or validates) it; exits on a fatal error. */
export async function main(argv: string[]): Promise<void> {
  let cli: Cli;
  try {
    cli = parseCli(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  let loaded;
  try {
    loaded = await loadConfigFile(cli.config);
    checkNode(loaded, cli);
  } catch (err) {
    const code = err instanceof TetherError ? err.code : "TETHER_ERR";
    process.stderr.write(`${code}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (cli.mode === "validate") {
    try {
      // Files the config refers to (TLS material) must be readable too.
      loaded.bootstrap.static_resources.clusters.forEach((c, i) => {
        resolveClusterTransports(c, i);
      });
    } catch (err) {
      process.stderr.write(
        `${err instanceof TetherError ? err.code : "TETHER_ERR"}: ${(err as Error).message}\n`,
      );
      process.exit(1);
    }
    process.stdout.write(`configuration '${cli.config}' OK\n`);
    return;
  }
  const log = createLogger(cli.logLevel);
  const runtime = new Runtime({
    log,
    node: { id: cli.serviceNode, cluster: cli.serviceCluster },
    ...(cli.xdsTokenFile === undefined ? {} : { xdsTokenFile: cli.xdsTokenFile }),
  });
  try {
    await runtime.start(loaded);
  } catch (err) {
    log.fatal({ err: (err as Error).message, code: (err as NodeJS.ErrnoException).code }, "cannot start");
    process.exit(1);
  }
  const watcher = new ConfigWatcher(cli.config, loaded.text, (text) => runtime.reload(text, cli.config));
  watcher.start();
  installShutdown(runtime, cli.drain, log, () => {
    watcher.stop();
  });
}
