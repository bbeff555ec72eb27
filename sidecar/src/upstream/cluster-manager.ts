// The set of live clusters. A reload keeps a cluster whose config is unchanged (its pools, health
// state and counters survive) and replaces the others; retired clusters finish in-flight work.
// Changes go in two steps so a reload is all or nothing: prepare() builds and starts the new
// clusters beside the running ones, then commit() swaps them in or abort() stops them.
import type { ClusterConfig, ClusterLoadAssignmentConfig } from "@tether/envoy";
import { Cluster, type ClusterDeps, type ClusterResources } from "./cluster.ts";
import { resolveClusterTransports } from "./transport-match.ts";

interface ClusterEntry {
  readonly cluster: Cluster;
  readonly json: string;
}

/** What prepare() built and what commit() will change; opaque to callers. */
export interface ClusterPlan {
  readonly next: ReadonlyMap<string, ClusterEntry>;
  /** Built and started for this attempt. */
  readonly created: readonly Cluster[];
}

export class ClusterManager {
  private readonly deps: ClusterDeps;
  private clusters = new Map<string, ClusterEntry>();
  /** Retired clusters finishing their in-flight requests (stop() waits for them). */
  private readonly retiring = new Set<Promise<void>>();

  constructor(deps: ClusterDeps) {
    this.deps = deps;
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name)?.cluster;
  }

  all(): Cluster[] {
    return [...this.clusters.values()].map((e) => e.cluster);
  }

  /**
   * Builds and starts the clusters a new list adds or changes; resolves once they have resolved
   * their endpoints. The running set is untouched; on failure whatever was built is stopped.
   */
  async prepare(
    configs: readonly ClusterConfig[],
    assignmentFor: (serviceName: string) => ClusterLoadAssignmentConfig | undefined = () => undefined,
  ): Promise<ClusterPlan> {
    // Resolve files (TLS material) first: a failure here throws before anything was built.
    const resources = configs.map((config, i): ClusterResources => {
      const transports = resolveClusterTransports(config, i);
      if (config.type !== "EDS") return { transports };
      const assignment = assignmentFor(config.eds_cluster_config?.service_name ?? config.name);
      return assignment === undefined ? { transports } : { transports, assignment };
    });
    const next = new Map<string, ClusterEntry>();
    const created: Cluster[] = [];
    try {
      const started: Promise<void>[] = [];
      for (const [i, config] of configs.entries()) {
        const json = JSON.stringify(config);
        const existing = this.clusters.get(config.name);
        if (existing !== undefined && existing.json === json) {
          next.set(config.name, existing);
          continue;
        }
        const cluster = new Cluster(config, this.deps, resources[i]);
        created.push(cluster);
        started.push(cluster.start());
        next.set(config.name, { cluster, json });
      }
      await Promise.all(started);
    } catch (err) {
      await Promise.all(created.map((c) => c.stop()));
      throw err;
    }
    return { next, created };
  }

  /**
   * Makes a prepared plan the running set. The clusters it retired stop in the background: their
   * in-flight requests finish on their connections (a streamed response may take minutes), and
   * nothing waits for that — not the reload, not the next one, not an xDS update.
   */
  commit(plan: ClusterPlan): void {
    const retired = [...this.clusters.values()].filter((e) => plan.next.get(e.cluster.name) !== e);
    this.clusters = new Map(plan.next);
    for (const e of retired) this.retire(e.cluster);
  }

  private retire(cluster: Cluster): void {
    const forget = (): void => {
      this.retiring.delete(stopped);
    };
    const stopped: Promise<void> = cluster.stop().then(forget, forget);
    this.retiring.add(stopped);
  }

  /** Stops what a prepared plan built; the running set never saw it. */
  async abort(plan: ClusterPlan): Promise<void> {
    await Promise.all(plan.created.map((c) => c.stop()));
  }

  /** An EDS update for every running EDS cluster whose service_name it names; returns the clusters it updated. */
  applyAssignment(cla: ClusterLoadAssignmentConfig): Cluster[] {
    const touched = this.all().filter((c) => c.config.type === "EDS" && c.serviceName === cla.cluster_name);
    for (const c of touched) c.applyAssignment(cla);
    return touched;
  }

  async warmed(): Promise<void> {
    await Promise.all(this.all().map((c) => c.warmed()));
  }

  /** Stops every cluster, the retired ones still finishing included. */
  async stop(): Promise<void> {
    const all = this.all();
    this.clusters = new Map();
    await Promise.all([...all.map((c) => c.stop()), ...this.retiring]);
  }
}
