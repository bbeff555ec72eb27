import { describe, expect, it } from "vitest";
import { clusterLoadAssignment, endpointHealth, type EndpointSliceLike } from "./eds.ts";

const port = { name: "policy-server", port: 8080 };

function slice(
  endpoints: EndpointSliceLike["endpoints"],
  ports = [{ name: "policy-server", port: 8080 }],
): EndpointSliceLike {
  return { addressType: "IPv4", endpoints, ports };
}

describe("EndpointSlices → ClusterLoadAssignment", () => {
  it("ready endpoints are HEALTHY, serving+terminating ones DRAINING, the rest left out", () => {
    const cla = clusterLoadAssignment("policy-server", port, [
      slice([
        { addresses: ["10.0.0.2"], conditions: { ready: true, serving: true, terminating: false } },
        { addresses: ["10.0.0.1"], conditions: { ready: false, serving: true, terminating: true } },
        // Terminating and no longer serving: gone for the sidecar.
        { addresses: ["10.0.0.3"], conditions: { ready: false, serving: false, terminating: true } },
        // Not ready (failing its readiness probe), not terminating: no traffic.
        { addresses: ["10.0.0.4"], conditions: { ready: false, serving: false, terminating: false } },
        // No conditions at all: the API says ready.
        { addresses: ["10.0.0.5"] },
      ]),
    ]);
    expect(cla).toEqual({
      cluster_name: "policy-server",
      endpoints: [
        {
          priority: 0,
          lb_endpoints: [
            {
              endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: 8080 } } },
              health_status: "DRAINING",
            },
            {
              endpoint: { address: { socket_address: { address: "10.0.0.2", port_value: 8080 } } },
              health_status: "HEALTHY",
            },
            {
              endpoint: { address: { socket_address: { address: "10.0.0.5", port_value: 8080 } } },
              health_status: "HEALTHY",
            },
          ],
        },
      ],
    });
  });

  it("maps the Service port to the slices' port by name, merges slices, and HEALTHY wins a duplicate", () => {
    const cla = clusterLoadAssignment("route-a", { name: "http", port: 80 }, [
      slice(
        [{ addresses: ["10.0.0.7"], conditions: { ready: false, serving: true, terminating: true } }],
        [{ name: "http", port: 8081 }],
      ),
      slice([{ addresses: ["10.0.0.7"], conditions: { ready: true } }], [{ name: "http", port: 8081 }]),
      // Another port of the same Service: not this cluster's.
      slice([{ addresses: ["10.0.0.8"], conditions: { ready: true } }], [{ name: "metrics", port: 9090 }]),
      // FQDN slices cannot be EDS addresses.
      { addressType: "FQDN", endpoints: [{ addresses: ["a.example"] }], ports: [{ name: "http", port: 1 }] },
    ]);
    expect(cla["endpoints"]).toEqual([
      {
        priority: 0,
        lb_endpoints: [
          {
            endpoint: { address: { socket_address: { address: "10.0.0.7", port_value: 8081 } } },
            health_status: "HEALTHY",
          },
        ],
      },
    ]);
  });

  it("no slices, no Service port, or an unnamed port that does not match: an empty assignment", () => {
    expect(clusterLoadAssignment("c", port, [])).toEqual({ cluster_name: "c", endpoints: [] });
    expect(clusterLoadAssignment("c", undefined, [slice([{ addresses: ["10.0.0.1"] }])])).toEqual({
      cluster_name: "c",
      endpoints: [],
    });
    const unnamed = clusterLoadAssignment("c", { port: 80 }, [
      slice([{ addresses: ["10.0.0.1"] }], [{ port: 8080 }] as never),
    ]);
    expect((unnamed["endpoints"] as unknown[]).length).toBe(1);
  });

  it("endpointHealth follows the EndpointConditions defaults", () => {
    expect(endpointHealth()).toBe("HEALTHY");
    expect(endpointHealth({ ready: true })).toBe("HEALTHY");
    expect(endpointHealth({ ready: false, terminating: true })).toBeUndefined();
    expect(endpointHealth({ ready: false, serving: true, terminating: true })).toBe("DRAINING");
    expect(endpointHealth({ ready: false })).toBeUndefined();
  });
});
