// Wires config → clusters → listeners → admin, applies reloads, and drains on shutdown.
import type { AdminView } from "./admin/server.ts";
import { AdminServer } from "./admin/server.ts";
import type { ReloadCounts } from "./admin/metrics.ts";
import { redactSecrets } from "./admin/redact.ts";
import { parseConfigText, type LoadedConfig } from "./config/load.ts";
import {
  adsGrpcService,
  HTTP_PROTOCOL_OPTIONS_KEY,
  type Bootstrap,
  type ClusterConfig,
  type ClusterLoadAssignmentConfig,
} from "@tether/envoy";
import type { DrainManager } from "./drain.ts";
import { TetherError } from "./errors.ts";
import { ListenerBindError } from "./listeners/bind.ts";
import { ListenerManager, type Listener, type ListenerPlan } from "./listeners/manager.ts";
import type { Logger } from "./log.ts";
import { drainSequence } from "./shutdown.ts";
import { timerDelay } from "./timers.ts";
import type { RandomSource } from "./upstream/backoff.ts";
import { ClusterManager } from "./upstream/cluster-manager.ts";
import type { Cluster } from "./upstream/cluster.ts";
import type { Host } from "./upstream/host.ts";
import { loadAdsClientFactory, type AdsClientFactory, type AdsClientOptions } from "./xds/ads-api.ts";
import { adsTls } from "./xds/ads-tls.ts";
import { bearerMetadata } from "./xds/token.ts";
import { XdsSubscriber, type DynamicApplier, type DynamicSet, type XdsStats } from "./xds/subscriber.ts";

export interface RuntimeOptions {
  readonly log: Logger;
  readonly random?: RandomSource;
  readonly now?: () => number;
  /** How long a removed listener may keep serving its open connections after a reload. */
  readonly listenerDrainMs?: number;
  /** Envoy's --service-node / --service-cluster: override the bootstrap's node.id / node.cluster. */
  readonly node?: { readonly id?: string | undefined; readonly cluster?: string | undefined };
  /**
   * A file holding a bearer token (a projected ServiceAccount token) sent as `authorization` call
   * metadata on every ADS (re)connect; read afresh each time, since the kubelet rotates it.
   */
  readonly xdsTokenFile?: string;
  /** Makes the ADS client; default @tether/xds's AdsClient, loaded only when dynamic_resources is set. */
  readonly adsClientFactory?: AdsClientFactory;
}

type AssignmentLookup = (serviceName: string) => ClusterLoadAssignmentConfig | undefined;

/**
 * Tether's own plumbing that the control plane does not send and ADS never replaces: the admin
 * listener and cluster the operator renders (tether-admin-public, tether-admin-local).
 */
export function isTetherOwn(name: string): boolean {
  return name.startsWith("tether-admin");
}

function adsClusterName(b: Bootstrap): string | undefined {
  return adsGrpcService(b)?.cluster_name;
}

/** The ADS stream's timing from the config, as Envoy takes it (each part only when configured). */
function adsStreamTiming(
  b: Bootstrap,
  ads: Cluster | undefined,
): Pick<AdsClientOptions, "connectTimeoutMs" | "keepalive" | "backoff"> {
  // The ADS cluster's connect_timeout bounds each connect, so a reconnect that lands on a vanished
  // control-plane replica gives up quickly and the next attempt tries again.
  const connectTimeoutMs = ads?.connectTimeoutMs;
  const keepalive =
    ads?.config.typed_extension_protocol_options?.[HTTP_PROTOCOL_OPTIONS_KEY]?.explicit_http_config
      .http2_protocol_options?.connection_keepalive;
  const backOff = adsGrpcService(b)?.retry_policy?.retry_back_off;
  return {
    ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
    ...(keepalive === undefined
      ? {}
      : { keepalive: { timeMs: keepalive.interval ?? 0, timeoutMs: keepalive.timeout } }),
    // max_interval defaults to ten times base_interval, which can pass the longest timer Node arms.
    ...(backOff === undefined
      ? {}
      : { backoff: { baseMs: backOff.base_interval, maxMs: timerDelay(backOff.max_interval) } }),
  };
}

export class Runtime implements AdminView, DynamicApplier {
  private readonly log: Logger;
  private readonly clustersMgr: ClusterManager;
  private readonly listenersMgr: ListenerManager;
  private readonly listenerDrainMs: number;
  private admin: AdminServer | undefined;
  private current: LoadedConfig | undefined;
  private readonly reloadCounts: ReloadCounts = { success: 0, failure: 0, lastSuccessful: true };
  private phase: "PRE_INITIALIZING" | "LIVE" | "DRAINING" = "PRE_INITIALIZING";
  private applying: Promise<void> = Promise.resolve();
  private readonly options: RuntimeOptions;
  private readonly random: RandomSource;
  private xds: XdsSubscriber | undefined;
  /** The dynamic resources serving in place of the static ones (the ADS cluster stays static). */
  private dynamic: DynamicSet | undefined;

  constructor(options: RuntimeOptions) {
    this.options = options;
    this.log = options.log;
    const random = options.random ?? Math.random;
    this.random = random;
    this.clustersMgr = new ClusterManager({ log: options.log, random, now: options.now ?? Date.now });
    this.listenersMgr = new ListenerManager(this.clustersMgr, options.log, random);
    this.listenerDrainMs = options.listenerDrainMs ?? 600_000;
  }

  async start(config: LoadedConfig): Promise<void> {
    this.current = config;
    const b = config.bootstrap;
    // Admin first: its set-up blocks the loop for a moment, which would skew first health checks.
    if (b.admin !== undefined) {
      this.admin = new AdminServer(this);
      const sa = b.admin.address.socket_address;
      const port = await this.admin.listen(sa.address, sa.port_value);
      this.log.info({ address: `${sa.address}:${port}` }, "admin listening");
    }
    await this.applyBootstrap(b);
    void this.clustersMgr.warmed().then(() => {
      if (this.phase === "PRE_INITIALIZING") this.phase = "LIVE";
      this.log.info("initial health checks done; ready");
    });
    if (b.dynamic_resources !== undefined) await this.startXds(b);
  }

  /**
   * Connects to the control plane over the ADS cluster. The static config keeps serving until CDS
   * and LDS arrive (and whenever the control plane is unreachable); a missing @tether/xds package
   * is logged and the static config serves on.
   */
  private async startXds(b: Bootstrap): Promise<void> {
    const adsCluster = adsClusterName(b) ?? "";
    const node = {
      id: this.options.node?.id ?? b.node?.id ?? "",
      cluster: this.options.node?.cluster ?? b.node?.cluster ?? "",
    };
    let factory: AdsClientFactory;
    try {
      factory = this.options.adsClientFactory ?? (await loadAdsClientFactory());
    } catch (err) {
      this.log.error(
        { code: (err as TetherError).code, err: (err as Error).message },
        "cannot start ADS; serving the static config",
      );
      return;
    }
    const staticClusters = b.static_resources.clusters.map((c) => c.name).filter(isTetherOwn);
    const xds = new XdsSubscriber({ log: this.log, adsCluster, staticClusters, applier: this });
    // Read at every connect: each attempt takes the next healthy host of the ADS cluster.
    let attempt = 0;
    let picked: { address: string; port: number } | undefined;
    const pick = (): { address: string; port: number } => this.adsTarget(adsCluster, attempt++);
    const target = {
      get host(): string {
        picked = pick();
        return picked.address;
      },
      get port(): number {
        return (picked ?? pick()).port;
      },
    };
    const tls = adsTls(b.static_resources.clusters.find((c) => c.name === adsCluster));
    const tokenFile = this.options.xdsTokenFile;
    const client = factory(
      {
        target,
        node,
        log: this.log,
        random: this.random,
        ...(tls === undefined ? {} : { tls }),
        ...(tokenFile === undefined ? {} : { callMetadata: () => bearerMetadata(tokenFile) }),
        ...adsStreamTiming(b, this.clustersMgr.get(adsCluster)),
      },
      xds,
    );
    xds.attach(client);
    this.xds = xds;
    this.log.info({ cluster: adsCluster, node, tokenFile: tokenFile ?? "none" }, "ADS client starting");
    client.start();
  }

  /**
   * The ADS cluster's healthy hosts in turn (any host if none is healthy; its configured address if
   * it has none yet), so a reconnect after a failure tries the next one.
   */
  private adsTarget(name: string, attempt: number): { address: string; port: number } {
    const cluster = this.clustersMgr.get(name);
    const hosts: readonly Host[] = cluster?.allHosts() ?? [];
    const healthy = hosts.filter((h) => h.isHealthy() && !h.draining());
    const candidates = healthy.length > 0 ? healthy : hosts;
    const host = candidates[attempt % Math.max(1, candidates.length)];
    if (host !== undefined) return { address: host.address, port: host.port };
    const sa = cluster?.config.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address;
    return { address: sa?.address ?? "127.0.0.1", port: sa?.port_value ?? 0 };
  }

  /** DynamicApplier: the dynamic clusters and listeners replace the static ones, all or nothing. */
  applyDynamic(set: DynamicSet): Promise<void> {
    const run = async (): Promise<void> => {
      const file = this.current?.bootstrap;
      if (file === undefined) throw new Error("no running config");
      await this.applyBootstrap(this.compose(file, set), set.assignmentFor);
      this.dynamic = set;
    };
    const result = this.applying.then(run);
    this.applying = result.catch(() => undefined);
    return result;
  }

  applyAssignment(cla: ClusterLoadAssignmentConfig): readonly Cluster[] {
    return this.clustersMgr.applyAssignment(cla);
  }

  /**
   * The config that serves: the file's, or once ADS delivered, the dynamic clusters and listeners
   * plus what stays static (a deliberate difference from Envoy, which keeps every static resource).
   */
  private compose(file: Bootstrap, set: DynamicSet | undefined): Bootstrap {
    if (set === undefined) return file;
    const ads = adsClusterName(file);
    const clusterNames = new Set(set.clusters.map((c) => c.name));
    const listenerNames = new Set(set.listeners.map((l) => l.name));
    const keptClusters: ClusterConfig[] = file.static_resources.clusters.filter(
      (c) => c.name === ads || (isTetherOwn(c.name) && !clusterNames.has(c.name)),
    );
    const keptListeners = file.static_resources.listeners.filter(
      (l) => isTetherOwn(l.name) && !listenerNames.has(l.name),
    );
    return {
      ...file,
      static_resources: {
        clusters: [...keptClusters, ...set.clusters],
        listeners: [...keptListeners, ...set.listeners],
      },
    };
  }

  xdsStats(): XdsStats | undefined {
    return this.xds?.stats();
  }

  /**
   * Applies a changed file, all or nothing: an invalid or empty one, or one whose listeners cannot
   * all bind, is rejected, counted as a failure, and the running config keeps serving unchanged.
   */
  reload(text: string, source = "config"): Promise<void> {
    this.applying = this.applying.then(() => this.applyText(text, source));
    return this.applying;
  }

  private async applyText(text: string, source: string): Promise<void> {
    let next: LoadedConfig;
    try {
      next = parseConfigText(text, source);
      const r = next.bootstrap.static_resources;
      if (r.listeners.length === 0 && r.clusters.length === 0) {
        const message = `${source} has no listeners and no clusters; a reload never removes everything`;
        throw new TetherError("TETHER_ERR_CONFIG_EMPTY", message, [message]);
      }
    } catch (err) {
      this.reloadCounts.failure++;
      this.reloadCounts.lastSuccessful = false;
      const problems = err instanceof TetherError ? err.problems : [(err as Error).message];
      this.log.error(
        { code: (err as TetherError).code, problems },
        "config reload rejected; keeping the running config",
      );
      return;
    }
    if (JSON.stringify(next.bootstrap.admin) !== JSON.stringify(this.current?.bootstrap.admin)) {
      this.log.warn("admin settings changed; they take effect at the next restart");
    }
    const dynamicSettings = (b: Bootstrap | undefined): string =>
      JSON.stringify([b?.dynamic_resources, b?.node]);
    if (dynamicSettings(next.bootstrap) !== dynamicSettings(this.current?.bootstrap)) {
      this.log.warn("dynamic_resources or node changed; they take effect at the next restart");
    }
    try {
      // Once ADS serves, a changed file updates only what stays static (the ADS cluster).
      await this.applyBootstrap(this.compose(next.bootstrap, this.dynamic), this.dynamic?.assignmentFor);
      this.current = next;
      this.reloadCounts.success++;
      this.reloadCounts.lastSuccessful = true;
      this.log.info("config reloaded");
    } catch (err) {
      this.reloadCounts.failure++;
      this.reloadCounts.lastSuccessful = false;
      const bind = err instanceof ListenerBindError ? { listener: err.listener, address: err.address } : {};
      this.log.error(
        { code: (err as TetherError).code, ...bind, err: (err as Error).message },
        "config reload failed while applying; keeping the running config",
      );
    }
  }

  /**
   * Builds the new clusters and binds the new listeners beside the running ones, then switches to
   * them; if anything fails, what was built is undone and the running config is left as it was.
   */
  private async applyBootstrap(b: Bootstrap, assignmentFor?: AssignmentLookup): Promise<void> {
    const clusters = await this.clustersMgr.prepare(b.static_resources.clusters, assignmentFor);
    let listeners: ListenerPlan;
    try {
      listeners = await this.listenersMgr.prepare(b.static_resources.listeners);
    } catch (err) {
      await this.clustersMgr.abort(clusters);
      throw err;
    }
    // Clusters first: a kept listener's update looks its clusters up by name.
    this.clustersMgr.commit(clusters);
    this.listenersMgr.commit(listeners, this.listenerDrainMs);
    // An EDS update that arrived while the new clusters were being built reached only the old ones.
    if (assignmentFor !== undefined) {
      for (const c of this.clustersMgr.all()) {
        const cla = c.config.type === "EDS" ? assignmentFor(c.serviceName) : undefined;
        if (cla !== undefined) c.applyAssignment(cla);
      }
    }
  }

  /** Shutdown: /ready fails at once, then the listener steps of drainSequence (shutdown.ts). */
  async drain(drain: DrainManager, deadline: number): Promise<void> {
    this.phase = "DRAINING";
    await this.xds?.stop();
    await this.applying;
    await drainSequence(this.listenersMgr, drain, deadline);
    await this.clustersMgr.stop();
    await this.admin?.close();
  }

  clusters(): readonly Cluster[] {
    return this.clustersMgr.all();
  }

  listeners(): readonly Listener[] {
    return this.listenersMgr.all();
  }

  reloads(): ReloadCounts {
    return this.reloadCounts;
  }

  state(): "PRE_INITIALIZING" | "LIVE" | "DRAINING" {
    return this.phase;
  }

  configDump(): unknown {
    return {
      configs: [
        {
          "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
          bootstrap: redactSecrets(this.current?.raw),
        },
        ...((redactSecrets(this.xds?.configDump()) as unknown[] | undefined) ?? []),
      ],
    };
  }
}
