// Wires config → clusters → listeners → admin, applies reloads, and drains on shutdown.
import type { AdminView } from "./admin/server.ts";
import { AdminServer } from "./admin/server.ts";
import type { ReloadCounts } from "./admin/metrics.ts";
import { redactSecrets } from "./admin/redact.ts";
import { parseConfigText, type LoadedConfig } from "./config/load.ts";
import { TetherError } from "./errors.ts";
import { ListenerManager, type Listener } from "./listeners/manager.ts";
import type { Logger } from "./log.ts";
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
    await this.clustersMgr.apply(b.static_resources.clusters);
    await this.listenersMgr.apply(b.static_resources.listeners, this.listenerDrainMs);
    void this.clustersMgr.warmed().then(() => {
      if (this.phase === "PRE_INITIALIZING") this.phase = "LIVE";
      this.log.info("initial health checks done; ready");
    });
  }

  /** Applies a changed file; an invalid one is rejected and the running config kept. */
  reload(text: string): Promise<void> {
    this.applying = this.applying.then(() => this.applyText(text));
    return this.applying;
  }

  private async applyText(text: string): Promise<void> {
    let next: LoadedConfig;
    try {
      next = parseConfigText(text);
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
      await this.clustersMgr.apply(next.bootstrap.static_resources.clusters);
      await this.listenersMgr.apply(next.bootstrap.static_resources.listeners, this.listenerDrainMs);
      this.current = next;
      this.reloadCounts.success++;
      this.log.info("config reloaded");
    } catch (err) {
      this.reloadCounts.failure++;
      this.log.error({ err: (err as Error).message }, "config reload failed while applying");
    }
  }

  /** Stop accepting, let in-flight work finish until the deadline, then close everything. */
  async drain(deadline: number): Promise<void> {
    this.phase = "DRAINING";
    await this.applying;
    await this.listenersMgr.drainAll(deadline);
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
