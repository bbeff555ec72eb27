import { describe, expect, it } from "vitest";
import { discoveryType, envoyDuration, healthCheck, isIpAddress, loadAssignment } from "./envoy.ts";
import { canonicalJson, stableHash } from "./hash.ts";
import { userTemplate, withTemplateHash } from "./pod.ts";
import { secretMount, uniqueMounts } from "./secrets.ts";

describe("envoy helpers", () => {
  it("converts Tether durations to Envoy's", () => {
    expect(envoyDuration("250ms")).toBe("0.250s");
    expect(envoyDuration("3m")).toBe("180s");
  });

  it("tells IP addresses from host names", () => {
    expect(isIpAddress("10.0.0.1")).toBe(true);
    expect(isIpAddress("::1")).toBe(true);
    expect(isIpAddress("300.0.0.1")).toBe(false);
    expect(isIpAddress("ps1.corp")).toBe(false);
    expect(discoveryType([{ host: "10.0.0.1", port: 1, priority: 0 }])).toBe("STATIC");
    expect(
      discoveryType([
        { host: "10.0.0.1", port: 1, priority: 0 },
        { host: "a", port: 1, priority: 0 },
      ]),
    ).toBe("STRICT_DNS");
  });

  it("renumbers priorities to be contiguous, keeping their order", () => {
    const la = loadAssignment("c", [
      { host: "c", port: 1, priority: 5 },
      { host: "a", port: 1, priority: 2 },
    ]) as {
      endpoints: {
        priority: number;
        lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[];
      }[];
    };
    expect(
      la.endpoints.map((e) => [e.priority, e.lb_endpoints[0]?.endpoint.address.socket_address.address]),
    ).toEqual([
      [0, "a"],
      [1, "c"],
    ]);
  });

  it("renders tcp and http health checks with no_traffic_interval equal to the interval, 250 ms while down", () => {
    const base = { interval: "2s", timeout: "1s", unhealthyThreshold: 3, healthyThreshold: 2 };
    expect(healthCheck({ ...base, type: "tcp" })).toEqual({
      timeout: "1s",
      interval: "2s",
      no_traffic_interval: "2s",
      unhealthy_interval: "0.250s",
      unhealthy_edge_interval: "0.250s",
      healthy_edge_interval: "0.250s",
      unhealthy_threshold: 3,
      healthy_threshold: 2,
      tcp_health_check: {},
    });
    // Never slower while down than the configured interval.
    expect(healthCheck({ ...base, interval: "100ms", timeout: "50ms", type: "tcp" })).toMatchObject({
      interval: "0.100s",
      unhealthy_interval: "0.100s",
      unhealthy_edge_interval: "0.100s",
      healthy_edge_interval: "0.100s",
    });
    // Any 2xx is healthy, as the API says (Envoy alone would accept only 200).
    expect(healthCheck({ ...base, type: "http", path: "/h" })["http_health_check"]).toEqual({
      path: "/h",
      expected_statuses: [{ start: 200, end: 300 }],
    });
  });
});

describe("hashing and pod templates", () => {
  it("hashes equal values equally whatever the key order", () => {
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: undefined }] })).toBe('{"a":[1,{"d":2}],"b":1}');
    expect(stableHash({ a: 1, b: 2 })).toBe(stableHash({ b: 2, a: 1 }));
    expect(stableHash({ a: 1 })).not.toBe(stableHash({ a: 2 }));
  });

  it("stamps a template with a hash that ignores a previous stamp", () => {
    const t = userTemplate({ spec: { containers: [{ name: "a" }] } }, { app: "x" });
    const once = withTemplateHash(t);
    expect(withTemplateHash(once)).toEqual(once);
    expect(t.metadata.labels).toEqual({ app: "x" });
  });

  it("does not let the user's labels override the selector labels", () => {
    const t = userTemplate(
      { metadata: { labels: { app: "mine", other: "1" } }, spec: { containers: [] } },
      { app: "x" },
    );
    expect(t.metadata.labels).toEqual({ app: "x", other: "1" });
  });

  it("gives every Secret a DNS-label volume name", () => {
    const long = "s".repeat(250);
    expect(secretMount(long).volumeName).toMatch(/^secret-[0-9a-f]{12}$/);
    expect(uniqueMounts(["b", "a", "b"]).map((m) => m.secretName)).toEqual(["a", "b"]);
  });
});
