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
