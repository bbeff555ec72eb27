// The set of live clusters. A reload keeps a cluster whose config is unchanged (its pools, health
// state and counters survive) and replaces the others; retired clusters finish in-flight work.
import type { ClusterConfig } from "../config/schema.ts";
import { Cluster, type ClusterDeps, type ClusterResources } from "./cluster.ts";
import { resolveClusterTransports } from "./transport-match.ts";

export class ClusterManager {
  private readonly deps: ClusterDeps;
  private clusters = new Map<string, { cluster: Cluster; json: string }>();

  constructor(deps: ClusterDeps) {
    this.deps = deps;
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name)?.cluster;
  }

  all(): Cluster[] {
    return [...this.clusters.values()].map((e) => e.cluster);
  }

  /** Applies a new cluster list; returns once new clusters have resolved their endpoints. */
  async apply(configs: readonly ClusterConfig[]): Promise<void> {
    const next = new Map<string, { cluster: Cluster; json: string }>();
    const started: Promise<void>[] = [];
    // Resolve files (TLS material) first: a failure here throws before anything changed.
    const resources = configs.map((config, i): ClusterResources => ({
      transports: resolveClusterTransports(config, i),
    }));
    for (const [i, config] of configs.entries()) {
      const json = JSON.stringify(config);
      const existing = this.clusters.get(config.name);
      if (existing !== undefined && existing.json === json) {
        next.set(config.name, existing);
        continue;
      }
      const cluster = new Cluster(config, this.deps, resources[i]);
      started.push(cluster.start());
      next.set(config.name, { cluster, json });
    }
    const retired = [...this.clusters.values()].filter((e) => next.get(e.cluster.name) !== e);
    this.clusters = next;
    await Promise.all(started);
    await Promise.all(retired.map((e) => e.cluster.stop()));
  }

  async warmed(): Promise<void> {
    await Promise.all(this.all().map((c) => c.warmed()));
  }

  async stop(): Promise<void> {
    const all = this.all();
    this.clusters = new Map();
    await Promise.all(all.map((c) => c.stop()));
  }
}
