// Wires config → clusters → listeners → admin, applies reloads, and drains on shutdown.
import type { AdminView } from "./admin/server.ts";
import { AdminServer } from "./admin/server.ts";
import type { ReloadCounts } from "./admin/metrics.ts";
import { redactSecrets } from "./admin/redact.ts";
import { parseConfigText, type LoadedConfig } from "./config/load.ts";
import type { Bootstrap } from "./config/schema.ts";
import type { DrainManager } from "./drain.ts";
import { TetherError } from "./errors.ts";
import { ListenerBindError } from "./listeners/bind.ts";
import { ListenerManager, type Listener, type ListenerPlan } from "./listeners/manager.ts";
import type { Logger } from "./log.ts";
import { drainSequence } from "./shutdown.ts";
import type { RandomSource } from "./upstream/backoff.ts";
import { ClusterManager } from "./upstream/cluster-manager.ts";
import type { Cluster } from "./upstream/cluster.ts";

export interface RuntimeOptions {
  readonly log: Logger;
  readonly random?: RandomSource;
  readonly now?: () => number;
  /** How long a removed listener may keep serving its open connections after a reload. */
  readonly listenerDrainMs?: number;
}

export class Runtime implements AdminView {
  private readonly log: Logger;
  private readonly clustersMgr: ClusterManager;
  private readonly listenersMgr: ListenerManager;
  private readonly listenerDrainMs: number;
  private admin: AdminServer | undefined;
  private current: LoadedConfig | undefined;
  private readonly reloadCounts: ReloadCounts = { success: 0, failure: 0 };
  private phase: "PRE_INITIALIZING" | "LIVE" | "DRAINING" = "PRE_INITIALIZING";
  private applying: Promise<void> = Promise.resolve();

  constructor(options: RuntimeOptions) {
    this.log = options.log;
    const random = options.random ?? Math.random;
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
    try {
      await this.applyBootstrap(next.bootstrap);
      this.current = next;
      this.reloadCounts.success++;
      this.log.info("config reloaded");
    } catch (err) {
      this.reloadCounts.failure++;
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
  private async applyBootstrap(b: Bootstrap): Promise<void> {
    const clusters = await this.clustersMgr.prepare(b.static_resources.clusters);
    let listeners: ListenerPlan;
    try {
      listeners = await this.listenersMgr.prepare(b.static_resources.listeners);
    } catch (err) {
      await this.clustersMgr.abort(clusters);
      throw err;
    }
    // Clusters first: a kept listener's update looks its clusters up by name.
    const retired = this.clustersMgr.commit(clusters);
    this.listenersMgr.commit(listeners, this.listenerDrainMs);
    await Promise.all(retired.map((c) => c.stop()));
  }

  /** Shutdown: /ready fails at once, then the listener steps of drainSequence (shutdown.ts). */
  async drain(drain: DrainManager, deadline: number): Promise<void> {
    this.phase = "DRAINING";
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
      ],
    };
  }
}
