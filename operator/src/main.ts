/**
 * tether-operator: watches PolicyServerClusters, Agents, Brokers and ProxyRoutes and converges
 * their Deployments, Services and ConfigMaps. See operator/README.md for flags, metrics and RBAC.
 */
import { AdsServer } from "@tether/xds";
import { pino } from "pino";
import { startAdmin } from "./admin.ts";
import { ConfigError, loadConfig, usage } from "./config.ts";
import { ControllerManager } from "./controllers/manager.ts";
import { KubeClient } from "./kube/client.ts";
import { LeaderElector } from "./kube/leader.ts";
import { OperatorMetrics, resourceOfPath } from "./metrics.ts";
import { startWebhook, type WebhookRuntime } from "./webhook/start.ts";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`tether-operator: ${error.message} (${error.code})\n${usage()}\n`);
      process.exit(2);
    }
    throw error;
  }
  if (config === "help") {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const logger = pino({ level: config.logLevel, base: { component: "tether-operator" } });
  const metrics = new OperatorMetrics();
  const client = await KubeClient.create(
    {
      onWrite: (verb, path) => {
        metrics.writes.inc({ verb, resource: resourceOfPath(path) });
      },
    },
    config.kubeconfig,
  );
  // Every replica serves xDS from its own caches (only the leader writes), so it starts at once.
  let xds: { server: AdsServer; port: number } | undefined;
  if (config.xds !== undefined) {
    const server = new AdsServer({
      host: config.xds.host,
      port: config.xds.port,
      log: logger.child({ part: "xds" }),
    });
    const { port } = await server.start();
    xds = { server, port };
    metrics.xdsStreamCount = () => server.streams().length;
  }
  const xdsTarget =
    xds === undefined || config.xdsService === undefined
      ? undefined
      : { host: `${config.xdsService}.svc.${config.clusterDomain}`, port: config.xds?.port || xds.port };
  const manager = new ControllerManager({
    client,
    logger,
    metrics,
    namespaces: config.namespaces,
    render: {
      sidecarImage: config.sidecarImage,
      sidecarImagePullPolicy: config.sidecarImagePullPolicy,
      clusterDomain: config.clusterDomain,
      xds: xdsTarget,
      nativeSidecar: config.nativeSidecar,
    },
    concurrency: config.concurrency,
    resyncPeriodMs: config.resyncPeriodMs,
    informer: { watchTimeoutSeconds: config.watchTimeoutSeconds },
    ...(xds === undefined ? {} : { xds: xds.server }),
  });
  // Every replica answers admission reviews from its own caches (the API server picks any).
  let webhook: WebhookRuntime | undefined;
  if (config.webhook !== undefined) {
    webhook = await startWebhook({
      config: config.webhook,
      clusterDomain: config.clusterDomain,
      client,
      logger,
      synced: () => manager.hasSynced,
      resolve: (namespace, agent) => manager.injection(namespace, agent),
      onReview: (result) => {
        metrics.webhookAdmissions.inc({ result });
      },
    });
  }
  const admin = await startAdmin({
    host: config.adminHost,
    port: config.adminPort,
    metrics,
    ready: () => manager.hasSynced,
  });
  logger.info(
    {
      admin: `${config.adminHost}:${admin.port}`,
      xds: xds === undefined ? "off" : `${config.xds?.host ?? ""}:${xds.port}`,
      xdsService: xdsTarget === undefined ? "none" : `${xdsTarget.host}:${xdsTarget.port}`,
      webhook: webhook === undefined ? "off" : `${config.webhook?.host ?? ""}:${webhook.port}`,
      namespaces: config.namespaces.length === 0 ? "all" : config.namespaces,
      server: client.server,
      sidecarImage: config.sidecarImage,
      leaderElection: config.leaderElect ? `${config.leaseNamespace}/${config.leaseName}` : "off",
      identity: config.identity,
    },
    "tether-operator starting",
  );
  manager.start();
  void manager.synced().then(() => {
    logger.info({ sinceStartMs: Math.round(performance.now()) }, "caches synced");
  });

  const startReconciling = (): void => {
    metrics.leader.set(1);
    metrics.runtime.leaderStatus.set({ name: config.leaseName }, 1);
    webhook?.publishCaBundle();
    manager.startReconciling().catch((error: unknown) => {
      logger.error({ err: error }, "could not start reconciling");
    });
  };
  let elector: LeaderElector | undefined;
  if (config.leaderElect) {
    elector = new LeaderElector({
      client,
      namespace: config.leaseNamespace,
      name: config.leaseName,
      identity: config.identity,
      leaseDurationMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
      logger,
      onStartedLeading: startReconciling,
      onStoppedLeading: () => {
        metrics.leader.set(0);
        metrics.runtime.leaderStatus.set({ name: config.leaseName }, 0);
        manager.stopReconciling();
      },
    });
    const gate = elector;
    client.setWriteGate(() => gate.isLeader);
    metrics.leader.set(0);
    metrics.runtime.leaderStatus.set({ name: config.leaseName }, 0);
    elector.start();
  } else {
    startReconciling();
  }

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const deadline = setTimeout(() => {
      logger.warn("shutdown took too long; exiting");
      process.exit(1);
    }, 10_000);
    deadline.unref();
    void (async () => {
      manager.stopReconciling();
      await manager.queue.idle();
      await elector?.stop();
      await manager.stop();
      // Sidecars keep their last config and reconnect (to another replica) with back-off.
      await xds?.server.stop();
      await webhook?.stop();
      await admin.server.close();
      await client.close();
      clearTimeout(deadline);
      logger.info("stopped");
      process.exit(0);
    })();
  };
  process.on("SIGTERM", () => {
    shutdown("SIGTERM");
  });
  process.on("SIGINT", () => {
    shutdown("SIGINT");
  });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `tether-operator: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
