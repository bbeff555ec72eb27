/**
 * `kubectl tether upstreams`: the hosts a sidecar sees, from its loopback admin's `/clusters?format=json`
 * (Envoy's ClusterStatuses shape), reached through `kubectl port-forward` — the public tether-admin
 * port does not serve /clusters.
 */

export interface UpstreamHost {
  readonly cluster: string;
  readonly address: string;
  readonly priority: number;
  readonly healthy: boolean;
  /** Why it is unhealthy: failed active health check, outlier ejection, check pending. */
  readonly flags: readonly string[];
}

interface HostStatus {
  address?: { socket_address?: { address?: string; port_value?: number } };
  hostname?: string;
  priority?: number;
  healthy?: boolean;
  health_status?: {
    failed_active_health_check?: boolean;
    failed_outlier_check?: boolean;
    pending_active_hc?: boolean;
  };
}

/** Hosts of every cluster but the sidecar's own admin cluster, from `/clusters?format=json`. */
export function parseClusters(json: unknown, skipCluster = "tether-admin-local"): UpstreamHost[] {
  const statuses = (json as { cluster_statuses?: { name?: string; host_statuses?: HostStatus[] }[] })
    .cluster_statuses;
  if (!Array.isArray(statuses)) throw new Error("/clusters?format=json: no cluster_statuses");
  const hosts: UpstreamHost[] = [];
  for (const c of statuses) {
    const cluster = c.name ?? "?";
    if (cluster === skipCluster) continue;
    for (const h of c.host_statuses ?? []) {
      const s = h.address?.socket_address;
      const flags: string[] = [];
      if (h.health_status?.failed_active_health_check === true) flags.push("failed_active_hc");
      if (h.health_status?.failed_outlier_check === true) flags.push("outlier_ejected");
      if (h.health_status?.pending_active_hc === true) flags.push("pending_active_hc");
      const name = h.hostname !== undefined && h.hostname !== "" ? ` (${h.hostname})` : "";
      hosts.push({
        cluster,
        address: `${s?.address ?? "?"}:${s?.port_value ?? "?"}${name}`,
        priority: h.priority ?? 0,
        healthy: h.healthy === true,
        flags,
      });
    }
  }
  return hosts;
}

/** The local port `kubectl port-forward pod :PORT` printed ("Forwarding from 127.0.0.1:NNNN -> PORT"). */
export function forwardedPort(line: string): number | undefined {
  const m = /^Forwarding from 127\.0\.0\.1:(\d+) ->/.exec(line.trim());
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
