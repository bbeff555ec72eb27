// Envoy resources in the JSON form ADS carries, shared by the xDS tests and the xDS cost measurement.
import type { ResourceJson } from "@tether/xds";

/** An HTTP listener on 127.0.0.1:`port` routing everything to `cluster` (with `timeout` when given). */
export function httpListenerResource(port: number, cluster: string, timeout?: string): ResourceJson {
  return {
    name: "http",
    address: { socket_address: { address: "127.0.0.1", port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type":
                "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
              stat_prefix: "ingress_http",
              route_config: {
                virtual_hosts: [
                  {
                    name: "all",
                    domains: ["*"],
                    routes: [
                      {
                        match: { prefix: "/" },
                        route: timeout === undefined ? { cluster } : { cluster, timeout },
                      },
                    ],
                  },
                ],
              },
              http_filters: [
                {
                  name: "envoy.filters.http.router",
                  typed_config: {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                  },
                },
              ],
            },
          },
        ],
      },
    ],
  };
}

/**
 * A bootstrap serving `listener` (static, routing to `backend` on 127.0.0.1:`backendPort`) with ADS
 * over the static HTTP/2 cluster `tether_xds`, as node `ns/pod-1` of `group`: to 127.0.0.1:`xdsPort`,
 * or with `xdsHost` to that name resolved by DNS (STRICT_DNS); `xdsTls` is appended to the cluster
 * (its transport_socket); `retryBackOff` is the ADS stream's reconnect back-off.
 */
export function adsBootstrapYaml(o: {
  admin: number;
  group: string;
  listener: ResourceJson;
  backendPort: number;
  xdsPort: number;
  xdsHost?: string;
  xdsTls?: string;
  http2Options?: string;
  /** The ADS service's retry_policy.retry_back_off, as YAML flow (`{ base_interval: 0.1s }`). */
  retryBackOff?: string;
}): string {
  const retry = o.retryBackOff === undefined ? "" : `, retry_policy: { retry_back_off: ${o.retryBackOff} }`;
  return `node: { id: ns/pod-1, cluster: ${o.group} }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ${o.admin} } }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: tether_xds${retry} } }]
  cds_config: { ads: {}, resource_api_version: V3 }
  lds_config: { ads: {}, resource_api_version: V3 }
static_resources:
  listeners:
    - ${JSON.stringify(o.listener)}
  clusters:
    - name: tether_xds
      type: ${o.xdsHost === undefined ? "STATIC" : "STRICT_DNS"}
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: ${o.http2Options ?? "{}"} }${o.xdsTls ?? ""}
      load_assignment:
        cluster_name: tether_xds
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: ${o.xdsHost ?? "127.0.0.1"}, port_value: ${o.xdsPort} } } } }] }]
    - name: backend
      connect_timeout: 0.25s
      load_assignment:
        cluster_name: backend
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${o.backendPort} } } } }] }]
`;
}
