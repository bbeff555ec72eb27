// The sidecar's side of ADS: validates what each response carries, keeps the accepted state per
// type, and applies it. CDS and LDS go through the runtime's transactional reload once both have
// arrived and every EDS cluster has its first ClusterLoadAssignment (warming); EDS updates go to the
// running clusters in place. What cannot be validated or applied is NACKed and the running config
// keeps serving.
import type { ClusterConfig, ClusterLoadAssignmentConfig, ListenerConfig } from "@tether/envoy";
import type { Logger } from "../log.ts";
import type { Cluster } from "../upstream/cluster.ts";
import type { AdsClientLike, AdsHandler, ResourceJson, ResourceType } from "./ads-api.ts";
import {
  validateAssignments,
  validateClusters,
  validateListeners,
  type AcceptedResource,
} from "./resources.ts";

/** What the dynamic resources replace the static ones with (the ADS cluster stays). */
export interface DynamicSet {
  readonly clusters: readonly ClusterConfig[];
  readonly listeners: readonly ListenerConfig[];
  readonly assignmentFor: (serviceName: string) => ClusterLoadAssignmentConfig | undefined;
}

export interface DynamicApplier {
  /** All or nothing, like a file reload; rejects with the reason when the set cannot be applied. */
  applyDynamic(set: DynamicSet): Promise<void>;
  /** An EDS update to the running clusters; returns those it updated. */
  applyAssignment(cla: ClusterLoadAssignmentConfig): readonly Cluster[];
  /** The running clusters (for per-cluster EDS counters). */
  clusters(): readonly Cluster[];
}

export interface UpdateCounts {
  update_attempt: number;
  update_success: number;
  update_rejected: number;
}

export interface XdsStats {
  readonly connected: boolean;
  readonly cds: Readonly<UpdateCounts>;
  readonly lds: Readonly<UpdateCounts>;
}

function serviceNameOf(c: ClusterConfig): string {
  return c.eds_cluster_config?.service_name ?? c.name;
}

function counts(): UpdateCounts {
  return { update_attempt: 0, update_success: 0, update_rejected: 0 };
}

export class XdsSubscriber implements AdsHandler {
  private readonly log: Logger;
  private readonly adsCluster: string;
  private readonly staticClusters: readonly string[];
  private readonly applier: DynamicApplier;
  private readonly now: () => Date;
  private client: AdsClientLike | undefined;
  private clusters: Map<string, AcceptedResource<ClusterConfig>> | undefined;
  private listeners: Map<string, AcceptedResource<ListenerConfig>> | undefined;
  private readonly assignments = new Map<string, AcceptedResource<ClusterLoadAssignmentConfig>>();
  private appliedKey: string | undefined;
  private warming: string[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private isConnected = false;
  readonly cds = counts();
  readonly lds = counts();

  constructor(options: {
    log: Logger;
    adsCluster: string;
    /** Static clusters that stay beside the dynamic ones (besides the ADS cluster); LDS may name them. */
    staticClusters?: readonly string[];
    applier: DynamicApplier;
    now?: () => Date;
  }) {
    this.log = options.log;
    this.adsCluster = options.adsCluster;
    this.staticClusters = options.staticClusters ?? [];
    this.applier = options.applier;
    this.now = options.now ?? ((): Date => new Date());
  }

  attach(client: AdsClientLike): void {
    this.client = client;
  }

  /** True once the dynamic clusters and listeners serve in place of the static ones. */
  get active(): boolean {
    return this.appliedKey !== undefined;
  }

  stats(): XdsStats {
    return { connected: this.client?.connected ?? this.isConnected, cds: this.cds, lds: this.lds };
  }

  onConnectionState(connected: boolean): void {
    this.isConnected = connected;
    this.log.info({ connected }, connected ? "ADS stream connected" : "ADS stream disconnected");
  }

  /** One response at a time, in arrival order, so a CDS and an EDS update never interleave. */
  onResources(
    type: ResourceType,
    version: string,
    resources: ReadonlyMap<string, ResourceJson>,
  ): Promise<string | undefined> {
    const run = (): Promise<string | undefined> => {
      switch (type) {
        case "cluster":
          return this.onClusters(version, resources);
        case "listener":
          return this.onListeners(version, resources);
        case "endpoint":
          return Promise.resolve(this.onAssignments(version, resources));
        case "route":
          return Promise.resolve(
            "RDS is not supported: give the HTTP connection manager an inline route_config",
          );
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private reject(type: string, version: string, problems: readonly string[]): string {
    const message = problems.join("\n");
    this.log.warn({ type, version, problems }, "xDS update rejected (NACK); keeping the running config");
    return message;
  }

  private async onClusters(
    version: string,
    resources: ReadonlyMap<string, ResourceJson>,
  ): Promise<string | undefined> {
    this.cds.update_attempt++;
    const result = validateClusters(resources, version, this.adsCluster, this.now());
    if (!result.ok) {
      this.cds.update_rejected++;
      return this.reject("cluster", version, result.problems);
    }
    const previous = this.clusters;
    this.clusters = result.resources;
    this.subscribeEndpoints();
    const failure = await this.reconcile();
    if (failure !== undefined) {
      this.clusters = previous;
      this.subscribeEndpoints();
      this.cds.update_rejected++;
      return this.reject("cluster", version, [failure]);
    }
    this.cds.update_success++;
    this.log.info({ version, clusters: result.resources.size }, "CDS update accepted");
    return undefined;
  }

  private async onListeners(
    version: string,
    resources: ReadonlyMap<string, ResourceJson>,
  ): Promise<string | undefined> {
    this.lds.update_attempt++;
    // Envoy asks for LDS only once CDS is initialized; a server may answer LDS first on this stream.
    // Then the cluster references cannot be checked yet: nothing applies until CDS arrives, and a
    // route to a cluster CDS does not deliver answers 503 no_cluster, as in Envoy.
    const known =
      this.clusters === undefined
        ? undefined
        : new Set([this.adsCluster, ...this.staticClusters, ...this.clusters.keys()]);
    const result = validateListeners(resources, version, known, this.now());
    if (!result.ok) {
      this.lds.update_rejected++;
      return this.reject("listener", version, result.problems);
    }
    const previous = this.listeners;
    this.listeners = result.resources;
    const failure = await this.reconcile();
    if (failure !== undefined) {
      this.listeners = previous;
      this.lds.update_rejected++;
      return this.reject("listener", version, [failure]);
    }
    this.lds.update_success++;
    this.log.info({ version, listeners: result.resources.size }, "LDS update accepted");
    return undefined;
  }

  private async onAssignments(
    version: string,
    resources: ReadonlyMap<string, ResourceJson>,
  ): Promise<string | undefined> {
    const byService = new Map<string, Cluster[]>();
    for (const c of this.applier.clusters()) {
      if (c.config.type !== "EDS") continue;
      byService.set(c.serviceName, [...(byService.get(c.serviceName) ?? []), c]);
    }
    for (const name of resources.keys())
      for (const c of byService.get(name) ?? []) c.stats.counters.update_attempt++;
    const result = validateAssignments(resources, version, this.now());
    if (!result.ok) {
      for (const name of result.rejectedNames ?? []) {
        for (const c of byService.get(name) ?? []) c.stats.counters.update_rejected++;
      }
      return this.reject("endpoint", version, result.problems);
    }
    // State of the world for EDS names only what is subscribed; an unnamed assignment stays as it was.
    for (const [name, accepted] of result.resources) {
      this.assignments.set(name, accepted);
      for (const c of this.applier.applyAssignment(accepted.config)) c.stats.counters.update_success++;
    }
    if (this.warming.length > 0) {
      const failure = await this.reconcile();
      if (failure !== undefined) {
        this.log.error({ err: failure }, "warmed xDS config cannot be applied; keeping the running config");
      }
    }
    return undefined;
  }

  /** EDS names follow the CDS set (Envoy subscribes each EDS cluster's service_name). */
  private subscribeEndpoints(): void {
    const names = new Set<string>();
    for (const { config } of this.clusters?.values() ?? []) {
      if (config.type === "EDS") names.add(serviceNameOf(config));
    }
    this.client?.subscribe("endpoint", [...names].sort());
  }

  /**
   * Applies the accepted CDS + LDS state once both arrived and every EDS cluster has its first
   * assignment; returns why applying failed, or undefined (also when still warming).
   */
  private async reconcile(): Promise<string | undefined> {
    if (this.clusters === undefined || this.listeners === undefined) return undefined;
    const clusters = [...this.clusters.values()].map((r) => r.config);
    const listeners = [...this.listeners.values()].map((r) => r.config);
    this.warming = clusters
      .filter((c) => c.type === "EDS" && !this.assignments.has(serviceNameOf(c)))
      .map((c) => c.name);
    if (this.warming.length > 0) {
      this.log.info({ clusters: this.warming }, "clusters warming: waiting for their first EDS assignment");
      return undefined;
    }
    const key = JSON.stringify([clusters, listeners]);
    if (key === this.appliedKey) return undefined;
    try {
      await this.applier.applyDynamic({
        clusters,
        listeners,
        assignmentFor: (name) => this.assignments.get(name)?.config,
      });
    } catch (err) {
      return (err as Error).message;
    }
    const first = this.appliedKey === undefined;
    this.appliedKey = key;
    if (first) this.log.info("xDS config active: dynamic clusters and listeners replace the static ones");
    return undefined;
  }

  async stop(): Promise<void> {
    await this.client?.stop();
  }

  /** Envoy's config_dump sections for the dynamic resources (redacted by the caller). */
  configDump(): unknown[] {
    const warming = new Set(this.warming);
    const clusters = [...(this.clusters?.values() ?? [])];
    const entry = (r: AcceptedResource<unknown>, key: string): Record<string, unknown> => ({
      version_info: r.version,
      [key]: r.raw,
      last_updated: r.lastUpdated,
    });
    return [
      {
        "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        dynamic_active_clusters: clusters
          .filter((r) => this.active && !warming.has(r.config.name))
          .map((r) => entry(r, "cluster")),
        dynamic_warming_clusters: clusters
          .filter((r) => !this.active || warming.has(r.config.name))
          .map((r) => entry(r, "cluster")),
      },
      {
        "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        dynamic_listeners: [...(this.listeners?.values() ?? [])].map((r) => ({
          name: r.config.name,
          [this.active ? "active_state" : "warming_state"]: entry(r, "listener"),
        })),
      },
      {
        "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
        dynamic_endpoint_configs: [...this.assignments.values()].map((r) => entry(r, "endpoint_config")),
      },
    ];
  }
}
