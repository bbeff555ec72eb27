/**
 * tether-operator: watches PolicyServerClusters, Agents, Brokers and ProxyRoutes and converges
 * their Deployments, Services and ConfigMaps. See operator/README.md for flags, metrics and RBAC.
 */
import { AdsServer } from "@tether/xds";
import { pino, type Logger } from "pino";
import { startAdmin } from "./admin.ts";
import { ConfigError, loadConfig, usage, type OperatorConfig } from "./config.ts";
import { ControllerManager } from "./controllers/manager.ts";
import { KubeClient } from "./kube/client.ts";
import { kubeIdentityApi } from "./kube/identity.ts";
import { LeaderElector } from "./kube/leader.ts";
import { OperatorMetrics, resourceOfPath } from "./metrics.ts";
import {
  CertificateAuthority,
  ServingCertificate,
  serviceDnsNames,
  TlsSecretCertificate,
  type ServingIdentity,
} from "./pki/index.ts";
import { REFUSAL_REASONS, XdsAuthenticator } from "./xds/auth.ts";
import { startWebhook, type WebhookRuntime } from "./webhook/start.ts";

/** Where the xDS serving certificate and the sidecars' CA bundle come from. */
interface XdsPki {
  readonly serving: {
    readonly current: ServingIdentity;
    onRotate(listener: (identity: ServingIdentity) => void): void;
  };
  /** What tether-xds-ca carries. */
  bundle(): string;
  onBundleChange(listener: () => void): void;
  /** The operator's own CA; undefined with --xds-tls-secret. */
  readonly authority: CertificateAuthority | undefined;
  /** For the startup log line. */
  readonly describe: string;
  stop(): Promise<void>;
}

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
  let pki: XdsPki | undefined;
  if (config.xds !== undefined) {
    if (config.xdsTls) pki = await startXdsPki(config, client, logger);
    xds = await startXds(config, config.xds, client, logger, metrics, pki);
  }
  const xdsTarget =
    xds === undefined || config.xdsService === undefined
      ? undefined
      : {
          host: `${config.xdsService}.svc.${config.clusterDomain}`,
          port: config.xds?.port || xds.port,
          tls: pki !== undefined,
          tokenAuth: config.xdsAuth,
        };
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
    ...(pki === undefined ? {} : { xdsCa: pki }),
  });
  // A new bundle (a successor CA published, an expired one dropped) goes to every namespace.
  pki?.onBundleChange(() => {
    manager.enqueueAll();
  });
  // Every replica answers admission reviews from its own caches (the API server picks any).
  const webhook = await startWebhookIfConfigured(config, client, logger, manager, metrics, pki);
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
      xdsAuth: xds !== undefined && config.xdsAuth ? "token" : "off",
      xdsService: xdsTarget === undefined ? "none" : `${xdsTarget.host}:${xdsTarget.port}`,
      xdsTls: describeXdsTls(pki),
      webhook: webhook?.address ?? "off",
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
      await pki?.stop();
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

/** The ADS server: TLS from the operator's CA when `pki` is set, the sidecars' identity checked with --xds-auth. */
async function startXds(
  config: OperatorConfig,
  address: { readonly host: string; readonly port: number },
  client: KubeClient,
  logger: Logger,
  metrics: OperatorMetrics,
  pki: XdsPki | undefined,
): Promise<{ server: AdsServer; port: number }> {
  let authenticator: XdsAuthenticator | undefined;
  if (config.xdsAuth) {
    for (const reason of REFUSAL_REASONS) metrics.xdsStreamsRefused.inc({ reason }, 0);
    authenticator = new XdsAuthenticator({
      api: kubeIdentityApi(client),
      maxConcurrentReviews: config.xdsAuthMaxReviews,
      reviewQueueTimeoutMs: config.xdsAuthQueueTimeoutMs,
      onReviewsInFlight: (n) => {
        metrics.xdsReviewsInFlight.set(n);
      },
      onRefused: (reason) => {
        metrics.xdsStreamsRefused.inc({ reason });
      },
    });
  }
  const auth = authenticator;
  const server = new AdsServer({
    host: address.host,
    port: address.port,
    log: logger.child({ part: "xds" }),
    ...(pki === undefined ? {} : { tls: pki.serving.current }),
    ...(auth === undefined ? {} : { authorize: (credentials) => auth.authorize(credentials) }),
  });
  const { port } = await server.start();
  pki?.serving.onRotate((identity) => {
    server.setTlsIdentity(identity);
  });
  metrics.xdsStreamCount = () => server.streams().length;
  return { server, port };
}

async function startWebhookIfConfigured(
  config: OperatorConfig,
  client: KubeClient,
  logger: Logger,
  manager: ControllerManager,
  metrics: OperatorMetrics,
  pki: XdsPki | undefined,
): Promise<WebhookRuntime | undefined> {
  if (config.webhook === undefined) return undefined;
  // With --xds-tls-secret the webhook still runs the operator's own CA (in --ca-secret).
  const authority = pki?.authority;
  return startWebhook({
    config: config.webhook,
    clusterDomain: config.clusterDomain,
    caSecret: config.caSecret,
    operatorNamespace: config.operatorNamespace,
    // One CA per process: the xDS server's, when it runs with TLS.
    ...(authority === undefined ? {} : { authority }),
    client,
    logger,
    synced: () => manager.hasSynced,
    resolve: (namespace, agent) => manager.injection(namespace, agent),
    onReview: (result) => {
      metrics.webhookAdmissions.inc({ result });
    },
  });
}

function describeXdsTls(pki: XdsPki | undefined): string {
  return pki === undefined ? "off" : pki.describe;
}

/** xDS TLS: the certificate from --xds-tls-secret when set, else from the operator's own CA. */
function startXdsPki(config: OperatorConfig, client: KubeClient, logger: Logger): Promise<XdsPki> {
  return config.xdsTlsSecret === undefined
    ? startPki(config, client, logger)
    : startTlsSecret(config, config.xdsTlsSecret, client, logger);
}

/**
 * The operator's CA (its Secret read, created or rotated as due) and this replica's serving
 * certificate for the xDS Service's DNS names (`localhost` when there is no --xds-service).
 */
async function startPki(config: OperatorConfig, client: KubeClient, logger: Logger): Promise<XdsPki> {
  const log = logger.child({ part: "pki" });
  const authority = new CertificateAuthority({
    client,
    namespace: config.operatorNamespace,
    secretName: config.caSecret,
    logger: log,
  });
  try {
    await authority.start();
  } catch (error) {
    // Most often RBAC: the Role on this one Secret (operator/README.md, RBAC) is missing.
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `cannot load the xDS CA from Secret ${config.operatorNamespace}/${config.caSecret} (--ca-secret; --xds-tls=false serves plaintext): ${reason}`,
      { cause: error },
    );
  }
  const serving = new ServingCertificate({ authority, dnsNames: xdsDnsNames(config), logger: log });
  serving.start();
  return {
    serving,
    bundle: () => authority.bundle(),
    onBundleChange: (listener) => {
      authority.onChange(listener);
    },
    authority,
    describe: `CA in Secret ${config.operatorNamespace}/${config.caSecret}`,
    stop: () => {
      serving.stop();
      authority.stop();
      return Promise.resolve();
    },
  };
}

/** The xDS Service's DNS names (`localhost` when there is no --xds-service), shortest first. */
function xdsDnsNames(config: OperatorConfig): string[] {
  const [service = "", namespace = ""] = (config.xdsService ?? "").split(".");
  return config.xdsService === undefined
    ? ["localhost"]
    : serviceDnsNames(service, namespace, config.clusterDomain);
}

/**
 * --xds-tls-secret: the serving certificate and the bundle from a Secret cert-manager keeps
 * (watched by name; renewals swapped in). Waits for a usable Secret, logging why it is not yet.
 */
async function startTlsSecret(
  config: OperatorConfig,
  secretName: string,
  client: KubeClient,
  logger: Logger,
): Promise<XdsPki> {
  const names = xdsDnsNames(config);
  const source = new TlsSecretCertificate({
    client,
    namespace: config.operatorNamespace,
    secretName,
    // Sidecars verify the longest name (<svc>.<ns>.svc.<cluster-domain>).
    verifyName: names[names.length - 1] ?? "localhost",
    logger: logger.child({ part: "pki" }),
    watchTimeoutSeconds: config.watchTimeoutSeconds,
  });
  await source.start();
  return {
    serving: source,
    bundle: () => source.bundle(),
    onBundleChange: (listener) => {
      source.onBundleChange(listener);
    },
    authority: undefined,
    describe: `certificate from Secret ${source.secretRef}`,
    stop: () => source.stop(),
  };
}

main().catch((error: unknown) => {
  process.stderr.write(
    `tether-operator: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
