import { describe, expect, it } from "vitest";
import { XdsJsonError, packResource, unpackResource } from "./json.ts";
import { TYPE_URLS } from "./types.ts";

const DECISION_CACHE = "type.googleapis.com/tether.v1alpha1.DecisionCache";
const roundTrip = (url: string, json: Record<string, unknown>): Record<string, unknown> =>
  unpackResource(url, packResource(url, json).value);

describe("Envoy JSON <-> protobuf", () => {
  it("keeps wrappers set to zero or false apart from unset (Tether's DecisionCache defaults are not zero)", () => {
    const dc = {
      "@type": DECISION_CACHE,
      notifications: false,
      max_body_bytes: 0,
      max_entries: 5,
      ttl: "0s",
    };
    const { "@type": _t, ...body } = dc;
    expect(roundTrip(DECISION_CACHE, dc)).toEqual(body);
    expect(roundTrip(DECISION_CACHE, {})).toEqual({});
  });

  it("maps durations, enums, 64-bit integers, Struct metadata and nested Any", () => {
    const cluster = {
      name: "c",
      type: "STRICT_DNS",
      connect_timeout: "1.5s",
      dns_refresh_rate: "0.000250s",
      lb_policy: "LEAST_REQUEST",
      metadata: {
        filter_metadata: { "envoy.lb": { zone: "a", weight: 2, on: true, none: null, list: [1, "x"] } },
      },
      circuit_breakers: { thresholds: [{ priority: "HIGH", max_connections: 7 }] },
      typed_extension_protocol_options: {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
          "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
          explicit_http_config: { http2_protocol_options: {} },
        },
      },
      upstream_connection_options: { tcp_keepalive: { keepalive_time: 30 } },
    };
    expect(roundTrip(TYPE_URLS.cluster, cluster)).toEqual({ ...cluster, connect_timeout: "1.500s" });
    const limit = "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";
    expect(roundTrip(limit, { stat_prefix: "s", max_connections: 12884901893 })).toEqual({
      stat_prefix: "s",
      max_connections: 12884901893,
    });
    expect(roundTrip(limit, { stat_prefix: "s", max_connections: "18446744073709551615" })).toEqual({
      stat_prefix: "s",
      max_connections: "18446744073709551615",
    });
  });

  it("drops proto3 zero values (they cannot be told from unset) and keeps oneof members set to zero", () => {
    const cla = {
      cluster_name: "c",
      endpoints: [
        {
          priority: 0,
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: "::1", port_value: 0 } } } }],
        },
      ],
    };
    expect(roundTrip(TYPE_URLS.endpoint, cla)).toEqual({
      cluster_name: "c",
      endpoints: [
        { lb_endpoints: [{ endpoint: { address: { socket_address: { address: "::1", port_value: 0 } } } }] },
      ],
    });
  });

  it.each([
    [{ name: "c", conect_timeout: "1s" }, "conect_timeout: unknown field of envoy.config.cluster.v3.Cluster"],
    [{ name: "c", connect_timeout: "1m" }, 'connect_timeout: expected a duration such as "1.5s"'],
    [{ name: "c", lb_policy: "FASTEST" }, 'lb_policy: unknown LbPolicy value "FASTEST"'],
    [
      { name: "c", type: "STATIC", cluster_type: { name: "x" } },
      "cluster_type: only one of type, cluster_type may be set",
    ],
    [
      { name: "c", per_connection_buffer_limit_bytes: -1 },
      "per_connection_buffer_limit_bytes: out of range for uint32",
    ],
    [
      {
        name: "c",
        transport_socket: { name: "t", typed_config: { "@type": "type.googleapis.com/x.Unknown" } },
      },
      'transport_socket.typed_config.@type: unknown @type "type.googleapis.com/x.Unknown"',
    ],
    [
      {
        name: "c",
        typed_extension_protocol_options: {
          k: {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            bogus: 1,
          },
        },
      },
      'typed_extension_protocol_options["k"].bogus: unknown field',
    ],
  ])("rejects %j naming the path", (json, message) => {
    let error: unknown;
    try {
      packResource(TYPE_URLS.cluster, json, "cluster");
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(XdsJsonError);
    expect((error as XdsJsonError).code).toBe("TETHER_ERR_XDS_JSON");
    expect((error as XdsJsonError).message).toContain(`cluster.${message}`);
  });
});
