// /clusters in Envoy's text form (cluster::host::stat::value) and as JSON (?format=json).
import type { Cluster } from "../upstream/cluster.ts";
import type { Host } from "../upstream/host.ts";

function hostStats(h: Host): [string, number][] {
  const s = h.stats;
  return [
    ["cx_active", s.cx_active],
    ["cx_connect_fail", s.cx_connect_fail],
    ["cx_total", s.cx_total],
    ["rq_active", s.rq_active],
    ["rq_error", s.rq_error],
    ["rq_success", s.rq_success],
    ["rq_timeout", s.rq_timeout],
    ["rq_total", s.rq_total],
  ];
}

export function clustersText(clusters: readonly Cluster[]): string {
  const lines: string[] = [];
  for (const c of clusters) {
    const plan = c.priorityPlan();
    lines.push(`${c.name}::observability_name::${c.name}`);
    plan.load.forEach((load, i) =>
      lines.push(`${c.name}::priority_${i}::load::${load}::panic::${plan.panic[i] ?? false}`),
    );
    for (const h of c.allHosts()) {
      const p = `${c.name}::${h.key}`;
      for (const [k, v] of hostStats(h)) lines.push(`${p}::${k}::${v}`);
      lines.push(`${p}::hostname::${h.hostname ?? ""}`);
      lines.push(`${p}::health_flags::${h.healthFlags()}`);
      lines.push(`${p}::weight::1`);
      lines.push(`${p}::priority::${h.priority}`);
    }
  }
  return lines.join("\n") + "\n";
}

export function clustersJson(clusters: readonly Cluster[]): unknown {
  return {
    cluster_statuses: clusters.map((c) => ({
      name: c.name,
      priority_load: c.priorityPlan().load,
      priority_panic: c.priorityPlan().panic,
      host_statuses: c.allHosts().map((h) => ({
        address: { socket_address: { address: h.address, port_value: h.port } },
        hostname: h.hostname ?? "",
        priority: h.priority,
        stats: hostStats(h).map(([name, value]) => ({ name, value })),
        health_status: {
          eds_health_status: h.edsHealth === "UNKNOWN" ? "HEALTHY" : h.edsHealth,
          failed_active_health_check: h.failedActiveHc,
          pending_active_hc: h.pendingActiveHc,
          failed_outlier_check: h.outlierEjected,
        },
        healthy: h.isHealthy(),
      })),
    })),
  };
}
