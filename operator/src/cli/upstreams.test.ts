import { describe, expect, it } from "vitest";
import { forwardedPort, parseClusters } from "./upstreams.ts";

// The shape the sidecar's admin serves at /clusters?format=json (sidecar/src/admin/clusters.ts).
const CLUSTERS = {
  cluster_statuses: [
    {
      name: "policy-server",
      host_statuses: [
        {
          address: { socket_address: { address: "10.0.0.7", port_value: 9000 } },
          hostname: "ps-0.ps",
          priority: 0,
          health_status: { failed_active_health_check: false, failed_outlier_check: false },
          healthy: true,
        },
        {
          address: { socket_address: { address: "10.0.0.8", port_value: 9000 } },
          hostname: "",
          priority: 1,
          health_status: { failed_active_health_check: true, failed_outlier_check: true },
          healthy: false,
        },
      ],
    },
    { name: "tether-admin-local", host_statuses: [{ healthy: true }] },
  ],
};

describe("kubectl tether upstreams", () => {
  it("reads every host's health and why it is unhealthy, without the sidecar's own admin cluster", () => {
    expect(parseClusters(CLUSTERS)).toEqual([
      { cluster: "policy-server", address: "10.0.0.7:9000 (ps-0.ps)", priority: 0, healthy: true, flags: [] },
      {
        cluster: "policy-server",
        address: "10.0.0.8:9000",
        priority: 1,
        healthy: false,
        flags: ["failed_active_hc", "outlier_ejected"],
      },
    ]);
    expect(() => parseClusters({})).toThrow(/cluster_statuses/);
  });

  it("finds the local port kubectl port-forward chose", () => {
    expect(forwardedPort("Forwarding from 127.0.0.1:43117 -> 15000")).toBe(43117);
    expect(forwardedPort("Forwarding from [::1]:43117 -> 15000")).toBeUndefined();
  });
});
