import { createLogger } from "../log.ts";
import { describe, expect, it } from "vitest";
import type { ClusterLoadAssignmentConfig } from "@tether/envoy";
import type { Cluster } from "../upstream/cluster.ts";
import type { AdsClientLike, ResourceJson } from "./ads-api.ts";
import { XdsSubscriber, type DynamicApplier, type DynamicSet } from "./subscriber.ts";

const log = createLogger("silent");

function edsCluster(name: string): ResourceJson {
  return {
    "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    name,
    type: "EDS",
    connect_timeout: "0.25s",
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: "V3" }, service_name: name },
  };
}

function listener(name: string, cluster: string): ResourceJson {
  return {
    name,
    address: { socket_address: { address: "127.0.0.1", port_value: 10000 } },
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.tcp_proxy",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
              stat_prefix: "tcp",
              cluster,
            },
          },
        ],
      },
    ],
  };
}

function assignment(name: string, port: number, status = "HEALTHY"): ResourceJson {
  return {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: [
          {
            endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } },
            health_status: status,
          },
        ],
      },
    ],
  };
}

class FakeApplier implements DynamicApplier {
  applied: DynamicSet[] = [];
  assignments: ClusterLoadAssignmentConfig[] = [];
  fail: string | undefined;
  applyDynamic(set: DynamicSet): Promise<void> {
    if (this.fail !== undefined) return Promise.reject(new Error(this.fail));
    this.applied.push(set);
    return Promise.resolve();
  }
  applyAssignment(cla: ClusterLoadAssignmentConfig): readonly Cluster[] {
    this.assignments.push(cla);
    return [];
  }
  clusters(): readonly Cluster[] {
    return [];
  }
}

function setup(): { xds: XdsSubscriber; applier: FakeApplier; subscribed: string[][] } {
  const applier = new FakeApplier();
  const xds = new XdsSubscriber({ log, adsCluster: "tether_xds", applier });
  const subscribed: string[][] = [];
  const client: AdsClientLike = {
    start: () => undefined,
    subscribe: (_type, names) => {
      subscribed.push([...names]);
    },
    stop: () => Promise.resolve(),
    connected: true,
  };
  xds.attach(client);
  return { xds, applier, subscribed };
}

const one = (name: string, json: ResourceJson): Map<string, ResourceJson> => new Map([[name, json]]);

describe("XdsSubscriber", () => {
  it("applies CDS + LDS only once every EDS cluster has its first assignment (warming)", async () => {
    const { xds, applier, subscribed } = setup();
    expect(await xds.onResources("cluster", "1", one("ps", edsCluster("ps")))).toBeUndefined();
    expect(subscribed).toEqual([["ps"]]);
    expect(await xds.onResources("listener", "1", one("l", listener("l", "ps")))).toBeUndefined();
    expect(applier.applied).toHaveLength(0);
    expect(xds.active).toBe(false);
    expect(await xds.onResources("endpoint", "1", one("ps", assignment("ps", 9000)))).toBeUndefined();
    expect(applier.applied).toHaveLength(1);
    expect(applier.applied[0]?.assignmentFor("ps")?.endpoints[0]?.lb_endpoints[0]?.health_status).toBe(
      "HEALTHY",
    );
    expect(xds.active).toBe(true);
    // The same state again (a reconnect) applies nothing.
    await xds.onResources("cluster", "1", one("ps", edsCluster("ps")));
    expect(applier.applied).toHaveLength(1);
    expect(xds.cds).toEqual({ update_attempt: 2, update_success: 2, update_rejected: 0 });
  });

  it("NACKs what the schema rejects, naming the resource and field, and keeps the accepted state", async () => {
    const { xds, applier } = setup();
    await xds.onResources("cluster", "1", one("ps", edsCluster("ps")));
    await xds.onResources("endpoint", "1", one("ps", assignment("ps", 9000)));
    await xds.onResources("listener", "1", one("l", listener("l", "ps")));
    expect(applier.applied).toHaveLength(1);
    const bad = { ...edsCluster("ps"), connect_timeout: "soon" };
    expect(await xds.onResources("cluster", "2", one("ps", bad))).toContain(
      'cluster "ps": connect_timeout: expected a duration',
    );
    const unknown = await xds.onResources("listener", "2", one("l", listener("l", "nope")));
    expect(unknown).toContain(
      'listener "l": filter_chains[0].filters[0].typed_config.cluster: unknown cluster "nope"',
    );
    const eds = await xds.onResources("endpoint", "2", one("ps", assignment("ps", 9000, "SICK")));
    expect(eds).toContain('ClusterLoadAssignment "ps": endpoints[0].lb_endpoints[0].health_status');
    expect(await xds.onResources("cluster", "3", one("tether_xds", edsCluster("tether_xds")))).toContain(
      "the ADS cluster is static",
    );
    expect(applier.applied).toHaveLength(1);
    expect(xds.cds).toEqual({ update_attempt: 3, update_success: 1, update_rejected: 2 });
    expect(xds.lds).toEqual({ update_attempt: 2, update_success: 1, update_rejected: 1 });
  });

  it("NACKs an update the runtime cannot apply and reverts to the accepted state", async () => {
    const { xds, applier } = setup();
    await xds.onResources("cluster", "1", one("ps", edsCluster("ps")));
    await xds.onResources("endpoint", "1", one("ps", assignment("ps", 9000)));
    applier.fail = "listener l: cannot bind 127.0.0.1:10000";
    expect(await xds.onResources("listener", "1", one("l", listener("l", "ps")))).toContain("cannot bind");
    applier.fail = undefined;
    // Nothing was accepted: a CDS push alone does not apply the rejected listeners.
    await xds.onResources("cluster", "2", one("ps", edsCluster("ps")));
    expect(applier.applied).toHaveLength(0);
  });

  it("accepts LDS that arrives before the first CDS response and applies once CDS and EDS arrived", async () => {
    const { xds, applier } = setup();
    expect(await xds.onResources("listener", "1", one("l", listener("l", "ps")))).toBeUndefined();
    await xds.onResources("cluster", "1", one("ps", edsCluster("ps")));
    expect(applier.applied).toHaveLength(0);
    await xds.onResources("endpoint", "1", one("ps", assignment("ps", 9000)));
    expect(applier.applied.map((s) => s.listeners.map((l) => l.name))).toEqual([["l"]]);
  });
});
