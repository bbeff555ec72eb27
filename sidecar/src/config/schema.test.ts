/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call --
   these tests edit arbitrary (deliberately malformed) YAML documents, which have no static type. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { TetherError } from "../errors.ts";
import { parseDuration } from "@tether/envoy";
import { parseConfigText } from "./load.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const HTTP_EXAMPLE = readFileSync(path.resolve(here, "../../../examples/sidecar/envoy-http.yaml"), "utf8");
const TCP_EXAMPLE = readFileSync(path.resolve(here, "../../../examples/sidecar/envoy-tcp.yaml"), "utf8");

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Problems reported for the HTTP example after `edit` changes it. */
function problems(edit: (doc: Doc) => void, base = HTTP_EXAMPLE): string[] {
  const doc = parse(base) as Doc;
  edit(doc);
  try {
    parseConfigText(stringify(doc));
  } catch (err) {
    expect(err).toBeInstanceOf(TetherError);
    expect((err as TetherError).code).toBe("TETHER_ERR_CONFIG_INVALID");
    return [...(err as TetherError).problems];
  }
  return [];
}

const cluster = (d: Doc): Doc => d.static_resources.clusters[0];
const hcm = (d: Doc): Doc => d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const route = (d: Doc): Doc => hcm(d).route_config.virtual_hosts[0].routes[0];
const C = "static_resources.clusters[0]";
const H = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
const R = `${H}.route_config.virtual_hosts[0].routes[0]`;

describe("config: valid files and Envoy defaults", () => {
  it("accepts the examples", () => {
    expect(() => parseConfigText(HTTP_EXAMPLE)).not.toThrow();
    expect(() => parseConfigText(TCP_EXAMPLE)).not.toThrow();
  });

  it("fills Envoy's defaults", () => {
    const b = parseConfigText(`
static_resources:
  clusters:
    - name: c
      load_assignment: { cluster_name: c, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } } }] }] }
      outlier_detection: {}
      circuit_breakers: { thresholds: [{}] }
`).bootstrap;
    const c = b.static_resources.clusters[0]!;
    expect(c.type).toBe("STATIC");
    expect(c.connect_timeout).toBe(5000);
    expect(c.lb_policy).toBe("ROUND_ROBIN");
    expect(c.load_assignment.policy.overprovisioning_factor).toBe(140);
    expect(c.common_lb_config.healthy_panic_threshold.value).toBe(50);
    expect(c.dns_refresh_rate).toBe(5000);
    expect(c.outlier_detection).toMatchObject({
      consecutive_5xx: 5,
      interval: 10_000,
      base_ejection_time: 30_000,
      max_ejection_percent: 10,
      enforcing_consecutive_gateway_failure: 0,
      always_eject_one_host: false,
    });
    expect(c.circuit_breakers?.thresholds[0]).toMatchObject({
      max_connections: 1024,
      max_pending_requests: 1024,
      max_requests: 1024,
      max_retries: 3,
    });
  });

  it("fills route and retry defaults", () => {
    const doc = parse(HTTP_EXAMPLE) as Doc;
    delete route(doc).route.timeout;
    route(doc).route.retry_policy = { retry_on: "reset", retry_back_off: { base_interval: "0.5s" } };
    const r = parseConfigText(stringify(doc)).bootstrap.static_resources.listeners[0]!.filter_chains[0]!
      .filters[0]!.typed_config;
    if (!("route_config" in r)) throw new Error("expected an HCM");
    const rr = r.route_config.virtual_hosts[0]!.routes[0]!.route!;
    expect(rr.timeout).toBe(15_000);
    expect(rr.retry_policy).toMatchObject({
      num_retries: 1,
      per_try_timeout: 0,
      retry_back_off: { base_interval: 500, max_interval: 5000 },
    });
  });

  it("fills the DecisionCache notification_stream defaults", () => {
    const doc = parse(HTTP_EXAMPLE) as Doc;
    hcm(doc).http_filters.unshift({
      name: "c",
      typed_config: {
        "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache",
        notification_stream: { cluster: "policy-server" },
      },
    });
    const b = parseConfigText(stringify(doc)).bootstrap;
    const tc = b.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
    const filter = "http_filters" in tc ? tc.http_filters[0]!.typed_config : undefined;
    expect(filter).toMatchObject({
      notifications: true,
      notification_stream: {
        cluster: "policy-server",
        path: "/notifications/stream",
        timeout: 5000,
        retry_back_off: { base_interval: 500, max_interval: 5000 },
      },
    });
  });

  it("accepts a direct_response route in place of a route action", () => {
    const doc = parse(HTTP_EXAMPLE) as Doc;
    const r = route(doc);
    delete r.route;
    r.direct_response = { status: 503, body: { inline_string: "no backend" } };
    const b = parseConfigText(stringify(doc)).bootstrap;
    const l = b.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
    if (!("route_config" in l)) throw new Error("expected an http_connection_manager");
    const parsed = l.route_config.virtual_hosts[0]!.routes[0]!;
    expect(parsed.route).toBeUndefined();
    expect(parsed.direct_response).toEqual({ status: 503, body: { inline_string: "no backend" } });
  });

  it("takes a STRICT_DNS cluster's resolver, TTL and failure refresh settings, checking the resolver addresses", () => {
    const dnsCluster = (d: Doc): void => {
      Object.assign(cluster(d), {
        type: "STRICT_DNS",
        respect_dns_ttl: true,
        dns_failure_refresh_rate: { base_interval: "0.5s" },
        typed_dns_resolver_config: {
          name: "envoy.network.dns_resolver.cares",
          typed_config: {
            "@type":
              "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
            resolvers: [{ socket_address: { address: "10.96.0.10", port_value: 53 } }],
          },
        },
      });
    };
    expect(problems(dnsCluster)).toEqual([]);
    const doc = parse(HTTP_EXAMPLE) as Doc;
    dnsCluster(doc);
    const c = parseConfigText(stringify(doc)).bootstrap.static_resources.clusters[0]!;
    expect(c.respect_dns_ttl).toBe(true);
    expect(c.dns_failure_refresh_rate).toEqual({ base_interval: 500, max_interval: 5000 });
    expect(
      problems((d) => {
        dnsCluster(d);
        cluster(d).typed_dns_resolver_config.typed_config.resolvers[0].socket_address.address = "kube-dns";
      }),
    ).toContain(
      `${C}.typed_dns_resolver_config.typed_config.resolvers[0].socket_address.address: a DNS resolver must be an IP address, got "kube-dns"`,
    );
  });

  it("parses protobuf-JSON durations", () => {
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("0.250s")).toBe(250);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("0.000000001s")).toBeCloseTo(0.000001);
    expect(parseDuration("500ms")).toBeUndefined();
    expect(parseDuration("1m")).toBeUndefined();
    expect(parseDuration("-1s")).toBeUndefined();
  });
});

describe("config: every bad case names its path", () => {
  const cases: [string, (d: Doc) => void, string][] = [
    ["unknown cluster field", (d) => (cluster(d).foo = 1), `${C}.foo: unsupported field`],
    ["unknown top-level field", (d) => (d.layered_runtime = {}), "layered_runtime: unsupported field"],
    [
      "bad duration",
      (d) => (cluster(d).connect_timeout = "1000ms"),
      `${C}.connect_timeout: expected a duration like "1.5s", got "1000ms"`,
    ],
    ["numeric duration", (d) => (cluster(d).connect_timeout = 1), `${C}.connect_timeout:`],
    ["unsupported cluster type", (d) => (cluster(d).type = "ORIGINAL_DST"), `${C}.type:`],
    ["unsupported lb_policy", (d) => (cluster(d).lb_policy = "MAGLEV"), `${C}.lb_policy:`],
    ["missing cluster name", (d) => delete cluster(d).name, `${C}.name: required field missing`],
    [
      "missing load_assignment",
      (d) => delete cluster(d).load_assignment,
      `${C}.load_assignment: required field missing`,
    ],
    [
      "host name in a STATIC cluster",
      (d) =>
        (cluster(d).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address =
          "ps.example.com"),
      `${C}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: STATIC clusters need an IP address`,
    ],
    [
      "port out of range",
      (d) =>
        (cluster(d).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value =
          70000),
      `${C}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value:`,
    ],
    [
      "health check without a kind",
      (d) => delete cluster(d).health_checks[0].http_health_check,
      `${C}.health_checks[0]: exactly one of tcp_health_check, http_health_check is required`,
    ],
    [
      "health check expected status range that is empty",
      (d) => (cluster(d).health_checks[0].http_health_check.expected_statuses = [{ start: 200, end: 200 }]),
      `${C}.health_checks[0].http_health_check.expected_statuses[0]: start must be below end (end is exclusive)`,
    ],
    [
      "health check missing threshold",
      (d) => delete cluster(d).health_checks[0].unhealthy_threshold,
      `${C}.health_checks[0].unhealthy_threshold: required field missing`,
    ],
    [
      "health check tcp send/receive",
      (d) =>
        (cluster(d).health_checks[0] = {
          ...cluster(d).health_checks[0],
          http_health_check: undefined,
          tcp_health_check: { send: { text: "00" } },
        }),
      `${C}.health_checks[0].tcp_health_check.send: unsupported field`,
    ],
    [
      "panic threshold above 100",
      (d) => (cluster(d).common_lb_config.healthy_panic_threshold.value = 150),
      `${C}.common_lb_config.healthy_panic_threshold.value:`,
    ],
    [
      "unknown outlier field",
      (d) => (cluster(d).outlier_detection.success_rate_stdev_factor = 1900),
      `${C}.outlier_detection.success_rate_stdev_factor: unsupported field`,
    ],
    [
      "unknown breaker priority",
      (d) => (cluster(d).circuit_breakers.thresholds[0].priority = "LOW"),
      `${C}.circuit_breakers.thresholds[0].priority:`,
    ],
    [
      "protocol options without explicit_http_config",
      (d) =>
        delete cluster(d).typed_extension_protocol_options[
          "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ].explicit_http_config,
      `${C}.typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.explicit_http_config: required field missing`,
    ],
    [
      "unknown protocol options key",
      (d) =>
        (cluster(d).typed_extension_protocol_options["envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"] =
          {}),
      "TcpProtocolOptions: unsupported field",
    ],
    [
      "duplicate cluster",
      (d) => d.static_resources.clusters.push(structuredClone(cluster(d))),
      `static_resources.clusters[1].name: duplicate cluster name "policy-server"`,
    ],
    [
      "route to an unknown cluster",
      (d) => (route(d).route.cluster = "nope"),
      `${R}.route.cluster: unknown cluster "nope"`,
    ],
    [
      "unsupported retry_on",
      (d) => (route(d).route.retry_policy.retry_on = "connect-failure,envoy-ratelimited"),
      `${R}.route.retry_policy.retry_on: unsupported retry_on value "envoy-ratelimited"`,
    ],
    [
      "back-off max below base",
      (d) => (route(d).route.retry_policy.retry_back_off = { base_interval: "1s", max_interval: "0.5s" }),
      `${R}.route.retry_policy.retry_back_off.max_interval: must be >= base_interval`,
    ],
    [
      "route without a path specifier",
      (d) => delete route(d).match.prefix,
      `${R}.match: exactly one of prefix, path, safe_regex is required`,
    ],
    [
      "route with two path specifiers",
      (d) => (route(d).match.path = "/x"),
      `${R}.match: exactly one of prefix, path, safe_regex is required`,
    ],
    [
      "header matcher with two matchers",
      (d) => (route(d).match.headers[0].string_match = { exact: "GET", prefix: "G" }),
      `${R}.match.headers[0].string_match: exactly one of exact, prefix, suffix, contains, safe_regex is required`,
    ],
    [
      "weighted clusters (unsupported)",
      (d) => (route(d).route.weighted_clusters = {}),
      `${R}.route.weighted_clusters: unsupported field`,
    ],
    [
      "unknown filter @type",
      (d) =>
        (hcm(d)["@type"] = "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"),
      `${H}.@type: unsupported or missing type`,
    ],
    ["missing stat_prefix", (d) => delete hcm(d).stat_prefix, `${H}.stat_prefix: required field missing`],
    [
      "http filter other than router",
      (d) =>
        (hcm(d).http_filters[0].typed_config["@type"] =
          "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"),
      `${H}.http_filters[0].typed_config.@type:`,
    ],
    ["missing admin address", (d) => (d.admin = {}), "admin.address: required field missing"],
    [
      "two filter chains",
      (d) =>
        d.static_resources.listeners[0].filter_chains.push(
          structuredClone(d.static_resources.listeners[0].filter_chains[0]),
        ),
      "static_resources.listeners[0].filter_chains: exactly one filter chain is supported",
    ],
    [
      "invalid safe_regex",
      (d) => (route(d).match = { safe_regex: { regex: "(unclosed" } }),
      `${R}.match.safe_regex.regex: invalid regex`,
    ],
    [
      "both rewrites",
      (d) =>
        Object.assign(route(d).route, {
          prefix_rewrite: "/",
          regex_rewrite: { pattern: { regex: "x" }, substitution: "y" },
        }),
      `${R}.route: at most one of prefix_rewrite, regex_rewrite may be set`,
    ],
    [
      "unknown retry host predicate",
      (d) =>
        (route(d).route.retry_policy.retry_host_predicate = [
          {
            name: "x",
            typed_config: {
              "@type":
                "type.googleapis.com/envoy.extensions.retry.host.omit_canary_hosts.v3.OmitCanaryHostsPredicate",
            },
          },
        ]),
      `${R}.route.retry_policy.retry_host_predicate[0].typed_config.@type:`,
    ],
    [
      "hash policy without a kind",
      (d) => (route(d).route.hash_policy = [{ terminal: true }]),
      `${R}.route.hash_policy[0]: exactly one of header, cookie, connection_properties is required`,
    ],
    [
      "unknown ring hash function",
      (d) =>
        Object.assign(cluster(d), { lb_policy: "RING_HASH", ring_hash_lb_config: { hash_function: "CRC" } }),
      `${C}.ring_hash_lb_config.hash_function:`,
    ],
    [
      "transport socket with an unknown @type",
      (d) =>
        (cluster(d).transport_socket = {
          name: "tls",
          typed_config: {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
          },
        }),
      `${C}.transport_socket.typed_config.@type:`,
    ],
    [
      "data source with two sources",
      (d) =>
        (cluster(d).transport_socket = {
          name: "tls",
          typed_config: {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            common_tls_context: {
              validation_context: { trusted_ca: { filename: "/a", inline_string: "b" } },
            },
          },
        }),
      `${C}.transport_socket.typed_config.common_tls_context.validation_context.trusted_ca: exactly one of filename, inline_string is required`,
    ],
    [
      "proxy protocol without an inner transport socket",
      (d) =>
        (cluster(d).transport_socket = {
          name: "pp",
          typed_config: {
            "@type":
              "type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
            config: { version: "V2" },
          },
        }),
      `${C}.transport_socket.typed_config.transport_socket: required field missing`,
    ],
    [
      "transport_socket_matches entry without a transport socket",
      (d) => (cluster(d).transport_socket_matches = [{ name: "tls", match: { tls: true } }]),
      `${C}.transport_socket_matches[0].transport_socket: required field missing`,
    ],
    [
      "transport_socket_matches entry with an unknown field",
      (d) =>
        (cluster(d).transport_socket_matches = [
          {
            name: "tls",
            transport_socket: {
              name: "raw",
              typed_config: {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
              },
            },
            priority: 1,
          },
        ]),
      `${C}.transport_socket_matches[0].priority: unsupported field`,
    ],
    [
      "health check match criteria that are not a map",
      (d) => (cluster(d).health_checks[0].transport_socket_match_criteria = "tls"),
      `${C}.health_checks[0].transport_socket_match_criteria:`,
    ],
    [
      "endpoint metadata outside envoy.transport_socket_match",
      (d) =>
        (cluster(d).load_assignment.endpoints[0].lb_endpoints[0].metadata = {
          filter_metadata: { "envoy.lb": { canary: true } },
        }),
      `${C}.load_assignment.endpoints[0].lb_endpoints[0].metadata.filter_metadata.envoy.lb: unsupported field`,
    ],
    [
      "router filter not last",
      (d) =>
        hcm(d).http_filters.push({
          name: "c",
          typed_config: { "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache" },
        }),
      `${H}.http_filters[0]: the router filter must be the last filter, exactly once`,
    ],
    [
      "unknown DecisionCache field",
      (d) =>
        hcm(d).http_filters.unshift({
          name: "c",
          typed_config: { "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache", subscribe: {} },
        }),
      `${H}.http_filters[0].typed_config.subscribe: unsupported field`,
    ],
    [
      "a DecisionCache key header that is not a header name",
      (d) =>
        hcm(d).http_filters.unshift({
          name: "c",
          typed_config: {
            "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache",
            key_headers: ["cookie", "x-user:id"],
          },
        }),
      `${H}.http_filters[0].typed_config.key_headers[1]: must be an HTTP header name (a token, e.g. x-session-id)`,
    ],
    [
      "notification_stream to an unknown cluster",
      (d) =>
        hcm(d).http_filters.unshift({
          name: "c",
          typed_config: {
            "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache",
            notification_stream: { cluster: "nope" },
          },
        }),
      `${H}.http_filters[0].typed_config.notification_stream.cluster: unknown cluster "nope"`,
    ],
    [
      "notification_stream path without a leading slash",
      (d) =>
        hcm(d).http_filters.unshift({
          name: "c",
          typed_config: {
            "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache",
            notification_stream: { cluster: "policy-server", path: "events" },
          },
        }),
      `${H}.http_filters[0].typed_config.notification_stream.path: must start with /`,
    ],
    [
      "notification_stream with an unknown field",
      (d) =>
        hcm(d).http_filters.unshift({
          name: "c",
          typed_config: {
            "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache",
            notification_stream: { cluster: "policy-server", reconnect: "1s" },
          },
        }),
      `${H}.http_filters[0].typed_config.notification_stream.reconnect: unsupported field`,
    ],
    [
      "route and direct_response together",
      (d) => (route(d).direct_response = { status: 503 }),
      `${R}: exactly one of route, direct_response is required`,
    ],
    [
      "neither route nor direct_response",
      (d) => delete route(d).route,
      `${R}: exactly one of route, direct_response is required`,
    ],
    [
      "direct_response status out of range",
      (d) => {
        delete route(d).route;
        route(d).direct_response = { status: 600 };
      },
      `${R}.direct_response.status:`,
    ],
    [
      "direct_response body from a file",
      (d) => {
        delete route(d).route;
        route(d).direct_response = { status: 503, body: { filename: "/etc/body" } };
      },
      `${R}.direct_response.body.filename: unsupported field`,
    ],
    [
      "direct_response body over 4 KiB",
      (d) => {
        delete route(d).route;
        route(d).direct_response = { status: 503, body: { inline_string: "x".repeat(4097) } };
      },
      `${R}.direct_response.body.inline_string: at most 4096 bytes`,
    ],
  ];
  for (const [name, edit, expected] of cases) {
    it(name, () => {
      const p = problems(edit);
      expect(
        p.some((x) => x.includes(expected)),
        `${expected}\n in\n${p.join("\n")}`,
      ).toBe(true);
    });
  }

  it("tcp_proxy: max_connect_attempts ≥ 1, unknown cluster, unknown field", () => {
    const base = TCP_EXAMPLE;
    const tp = (d: Doc): Doc => d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    expect(problems((d) => (tp(d).max_connect_attempts = 0), base).join()).toContain(
      `${H}.max_connect_attempts:`,
    );
    expect(problems((d) => (tp(d).cluster = "x"), base)).toContain(`${H}.cluster: unknown cluster "x"`);
    expect(problems((d) => (tp(d).weighted_clusters = {}), base)).toContain(
      `${H}.weighted_clusters: unsupported field`,
    );
  });

  it("reports several problems at once, and YAML syntax errors with their code", () => {
    const p = problems((d) => {
      cluster(d).foo = 1;
      cluster(d).bar = 2;
      cluster(d).connect_timeout = "x";
    });
    expect(p.length).toBeGreaterThanOrEqual(3);
    try {
      parseConfigText("static_resources: [unclosed");
      expect.unreachable();
    } catch (err) {
      expect((err as TetherError).code).toBe("TETHER_ERR_CONFIG_YAML");
    }
  });
});

describe("config: durations a timer cannot hold are refused with their path", () => {
  // Node arms at most 2^31 − 1 ms (2147483.647s); one millisecond more would fire after 1 ms.
  const TOO_LONG = "2147483.648s";
  const cases: [string, (d: Doc) => void, string][] = [
    [
      "route timeout",
      (d) => (route(d).route.timeout = "2147484s"),
      `${R}.route.timeout: 2147484s is too long`,
    ],
    [
      "per_try_timeout",
      (d) => (route(d).route.retry_policy.per_try_timeout = TOO_LONG),
      `${R}.route.retry_policy.per_try_timeout: ${TOO_LONG} is too long: at most 2147483.647s`,
    ],
    [
      "retry back-off",
      (d) => (route(d).route.retry_policy.retry_back_off = { base_interval: TOO_LONG }),
      `${R}.route.retry_policy.retry_back_off.base_interval: ${TOO_LONG} is too long`,
    ],
    [
      "health check interval",
      (d) => (cluster(d).health_checks[0].interval = TOO_LONG),
      `${C}.health_checks[0].interval: ${TOO_LONG} is too long`,
    ],
    [
      "health check no_traffic_interval",
      (d) => (cluster(d).health_checks[0].no_traffic_interval = "3000000s"),
      `${C}.health_checks[0].no_traffic_interval: 3000000s is too long`,
    ],
    [
      "outlier base_ejection_time",
      (d) => (cluster(d).outlier_detection.base_ejection_time = TOO_LONG),
      `${C}.outlier_detection.base_ejection_time: ${TOO_LONG} is too long`,
    ],
    [
      "outlier interval",
      (d) => (cluster(d).outlier_detection.interval = TOO_LONG),
      `${C}.outlier_detection.interval: ${TOO_LONG} is too long`,
    ],
    [
      "connect_timeout",
      (d) => (cluster(d).connect_timeout = TOO_LONG),
      `${C}.connect_timeout: ${TOO_LONG} is too long`,
    ],
    [
      "dns_refresh_rate",
      (d) => (cluster(d).dns_refresh_rate = TOO_LONG),
      `${C}.dns_refresh_rate: ${TOO_LONG} is too long`,
    ],
    [
      "listener idle_timeout",
      (d) => (hcm(d).common_http_protocol_options = { idle_timeout: TOO_LONG }),
      `${H}.common_http_protocol_options.idle_timeout: ${TOO_LONG} is too long`,
    ],
    [
      "a duration past google.protobuf.Duration's range, even where no timer is armed",
      (d) => (route(d).route.hash_policy = [{ cookie: { name: "s", ttl: "315576000001s" } }]),
      `${R}.route.hash_policy[0].cookie.ttl: 315576000001s is too long: at most 315576000000s`,
    ],
  ];
  for (const [name, edit, expected] of cases) {
    it(name, () => {
      const p = problems(edit);
      expect(
        p.some((x) => x.includes(expected)),
        `${expected}\n in\n${p.join("\n")}`,
      ).toBe(true);
    });
  }

  it("accepts the longest timer, and long cookie and cache TTLs", () => {
    const p = problems((d) => {
      route(d).route.timeout = "2147483.647s";
      route(d).route.hash_policy = [{ cookie: { name: "s", ttl: "31536000s" } }];
    });
    expect(p).toEqual([]);
  });

  it("tcp_proxy idle_timeout and backoff_options", () => {
    const tp = (d: Doc): Doc => d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    expect(problems((d) => (tp(d).idle_timeout = TOO_LONG), TCP_EXAMPLE).join()).toContain(
      `${H}.idle_timeout: ${TOO_LONG} is too long`,
    );
    expect(
      problems(
        (d) => (tp(d).backoff_options = { base_interval: "1s", max_interval: TOO_LONG }),
        TCP_EXAMPLE,
      ).join(),
    ).toContain(`${H}.backoff_options.max_interval: ${TOO_LONG} is too long`);
  });
});

describe("config: regexes are RE2, refused with their path and RE2's reason", () => {
  const cases: [string, (d: Doc) => void, string][] = [
    [
      "a backreference",
      (d) => (route(d).match = { safe_regex: { regex: "(a)\\1" } }),
      `${R}.match.safe_regex.regex: invalid regex (RE2): error parsing regexp: invalid escape sequence: \`\\1\``,
    ],
    [
      "a lookahead",
      (d) => (route(d).match = { safe_regex: { regex: "(?=x)" } }),
      `${R}.match.safe_regex.regex: invalid regex (RE2): error parsing regexp: invalid or unsupported Perl syntax: \`(?=\``,
    ],
    [
      "a lookbehind in a header matcher",
      (d) => (route(d).match.headers[0].string_match = { safe_regex: { regex: "(?<=G)ET" } }),
      `${R}.match.headers[0].string_match.safe_regex.regex: invalid regex (RE2):`,
    ],
    [
      "a lookahead in a regex_rewrite pattern",
      (d) => (route(d).route.regex_rewrite = { pattern: { regex: "^(?!/x)(.*)$" }, substitution: "/y\\1" }),
      `${R}.route.regex_rewrite.pattern.regex: invalid regex (RE2):`,
    ],
    [
      "a substitution naming a missing group",
      (d) => (route(d).route.regex_rewrite = { pattern: { regex: "^/(.*)$" }, substitution: "/y/\\2" }),
      `${R}.route.regex_rewrite.substitution: \\2 refers to a group the pattern does not have (it has 1)`,
    ],
    [
      "a SAN matcher",
      (d) =>
        (cluster(d).transport_socket = {
          name: "tls",
          typed_config: {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            common_tls_context: {
              validation_context: {
                match_typed_subject_alt_names: [
                  { san_type: "DNS", matcher: { safe_regex: { regex: "(a)\\1" } } },
                ],
              },
            },
          },
        }),
      `${C}.transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher.safe_regex.regex: invalid regex (RE2):`,
    ],
  ];
  for (const [name, edit, expected] of cases) {
    it(name, () => {
      const p = problems(edit);
      expect(
        p.some((x) => x.includes(expected)),
        `${expected}\n in\n${p.join("\n")}`,
      ).toBe(true);
    });
  }

  it("accepts RE2 syntax a JavaScript RegExp does not know", () => {
    expect(
      problems((d) => (route(d).match = { safe_regex: { regex: "(?i)/(?P<app>[[:alpha:]]+)/.*\\z" } })),
    ).toEqual([]);
  });
});
