// The dynamic part of the subset: dynamic_resources, EDS clusters, endpoint health_status,
// is_optional, and HTTP/2 only towards the ADS cluster.
import { describe, expect, it } from "vitest";
import { TetherError } from "../errors.ts";
import { parseConfigText } from "./load.ts";

const DYNAMIC = `
node: { id: ns/pod-1, cluster: ns/agent/a }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: tether_xds } }]
  cds_config: { ads: {}, resource_api_version: V3 }
  lds_config: { ads: {}, resource_api_version: V3 }
static_resources:
  clusters:
    - name: tether_xds
      type: STRICT_DNS
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: {} }
      load_assignment:
        cluster_name: tether_xds
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: xds.tether-system.svc.cluster.local, port_value: 18000 } } } }] }]
    - name: ps
      type: EDS
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V3 }, service_name: ps }
    - name: backend
      load_assignment:
        cluster_name: backend
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } }, health_status: DRAINING }] }]
`;

function problems(text: string): string[] {
  try {
    parseConfigText(text);
  } catch (err) {
    expect(err).toBeInstanceOf(TetherError);
    return [...(err as TetherError).problems];
  }
  return [];
}

describe("config: dynamic_resources and EDS", () => {
  it("accepts the rendered shape", () => {
    const b = parseConfigText(DYNAMIC).bootstrap;
    expect(b.dynamic_resources?.ads_config.grpc_services[0]?.envoy_grpc.cluster_name).toBe("tether_xds");
    expect(b.static_resources.clusters[1]?.type).toBe("EDS");
    expect(b.static_resources.clusters[2]?.load_assignment.endpoints[0]?.lb_endpoints[0]?.health_status).toBe(
      "DRAINING",
    );
  });

  it("accepts connection_keepalive on the ADS cluster, durations in milliseconds", () => {
    const b = parseConfigText(
      DYNAMIC.replace(
        "http2_protocol_options: {}",
        "http2_protocol_options: { connection_keepalive: { interval: 5s, timeout: 0.5s } }",
      ),
    ).bootstrap;
    const options =
      b.static_resources.clusters[0]?.typed_extension_protocol_options?.[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
      ];
    expect(options?.explicit_http_config.http2_protocol_options?.connection_keepalive).toEqual({
      interval: 5_000,
      timeout: 500,
    });
  });

  it("accepts the ADS stream's retry_policy.retry_back_off, max_interval defaulting to ten times base", () => {
    const withBackOff = (backOff: string): unknown =>
      parseConfigText(
        DYNAMIC.replace(
          "cluster_name: tether_xds } }]",
          `cluster_name: tether_xds, retry_policy: { retry_back_off: ${backOff} } } }]`,
        ),
      ).bootstrap.dynamic_resources?.ads_config.grpc_services[0]?.envoy_grpc.retry_policy;
    expect(withBackOff("{ base_interval: 0.5s, max_interval: 5s }")).toEqual({
      retry_back_off: { base_interval: 500, max_interval: 5_000 },
    });
    expect(withBackOff("{ base_interval: 0.2s }")).toEqual({
      retry_back_off: { base_interval: 200, max_interval: 2_000 },
    });
  });

  it.each([
    [
      "a retry back-off whose max_interval is below its base_interval",
      DYNAMIC.replace(
        "cluster_name: tether_xds } }]",
        "cluster_name: tether_xds, retry_policy: { retry_back_off: { base_interval: 2s, max_interval: 1s } } } }]",
      ),
      "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.retry_policy.retry_back_off.max_interval: must be >= base_interval",
    ],
    [
      "a retry_policy field an xDS stream does not use",
      DYNAMIC.replace(
        "cluster_name: tether_xds } }]",
        "cluster_name: tether_xds, retry_policy: { num_retries: 3 } } }]",
      ),
      "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.retry_policy.num_retries: unsupported field",
    ],
    [
      "an ADS cluster that does not exist",
      DYNAMIC.replace("cluster_name: tether_xds } }]", "cluster_name: nope } }]"),
      'dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: unknown cluster "nope"',
    ],
    [
      "REST instead of GRPC",
      DYNAMIC.replace("api_type: GRPC", "api_type: REST"),
      "dynamic_resources.ads_config.api_type:",
    ],
    [
      "a path config source",
      DYNAMIC.replace("cds_config: { ads: {}", "cds_config: { path: /x"),
      "dynamic_resources.cds_config.path: unsupported field",
    ],
    [
      "HTTP/2 to a cluster that is not the ADS cluster",
      DYNAMIC.replace("name: tether_xds\n      type: STRICT_DNS", "name: other\n      type: STRICT_DNS"),
      "static_resources.clusters[0].typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.explicit_http_config.http2_protocol_options: HTTP/2 upstreams are supported only for the ADS cluster",
    ],
    [
      "connection_keepalive without its timeout",
      DYNAMIC.replace(
        "http2_protocol_options: {}",
        "http2_protocol_options: { connection_keepalive: { interval: 5s } }",
      ),
      "static_resources.clusters[0].typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.explicit_http_config.http2_protocol_options.connection_keepalive.timeout:",
    ],
    [
      "a connection_keepalive interval that is not a duration",
      DYNAMIC.replace(
        "http2_protocol_options: {}",
        "http2_protocol_options: { connection_keepalive: { interval: soon, timeout: 1s } }",
      ),
      'http2_protocol_options.connection_keepalive.interval: expected a duration like "1.5s", got "soon"',
    ],
    [
      "an EDS cluster with a load_assignment",
      DYNAMIC.replace(
        "service_name: ps }",
        "service_name: ps }\n      load_assignment: { cluster_name: ps }",
      ),
      "static_resources.clusters[1].load_assignment: EDS clusters take their endpoints from EDS",
    ],
    [
      "a STATIC cluster without load_assignment",
      DYNAMIC.replace("- name: ps\n      type: EDS", "- name: ps\n      type: STATIC"),
      "static_resources.clusters[1].load_assignment: required field missing",
    ],
    [
      "an unknown health_status",
      DYNAMIC.replace("health_status: DRAINING", "health_status: GONE"),
      "static_resources.clusters[2].load_assignment.endpoints[0].lb_endpoints[0].health_status:",
    ],
  ])("rejects %s", (_what, text, expected) => {
    const p = problems(text);
    expect(
      p.some((x) => x.includes(expected)),
      `${expected}\n in\n${p.join("\n")}`,
    ).toBe(true);
  });

  it("accepts is_optional on HTTP filters", () => {
    const hcm = `
static_resources:
  listeners:
    - name: l
      address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: l
                route_config: { virtual_hosts: [] }
                http_filters:
                  - name: tether.decision_cache
                    is_optional: true
                    typed_config: { "@type": type.googleapis.com/tether.v1alpha1.DecisionCache }
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
`;
    expect(problems(hcm)).toEqual([]);
  });
});
