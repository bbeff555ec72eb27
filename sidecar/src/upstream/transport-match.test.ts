import { describe, expect, it } from "vitest";
import { parseConfigText } from "../config/load.ts";
import { PLAIN_TRANSPORT } from "./connect.ts";
import {
  metadataMatches,
  metadataValuesEqual,
  resolveClusterTransports,
  TransportSocketMatcher,
} from "./transport-match.ts";

const TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const PP =
  "type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport";
const RAW = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

function cluster(
  extra: string,
): ReturnType<typeof parseConfigText>["bootstrap"]["static_resources"]["clusters"][0] {
  const c = parseConfigText(`
static_resources:
  clusters:
    - name: c
      load_assignment:
        cluster_name: c
        endpoints:
          - lb_endpoints:
              - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 443 } } }
              - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 443 } } }
                metadata: { filter_metadata: { envoy.transport_socket_match: { mtls: true } } }
${extra}`).bootstrap.static_resources.clusters[0];
  if (c === undefined) throw new Error("no cluster");
  return c;
}

describe("metadata label matching (Envoy's semantics)", () => {
  it("compares values by kind and value, deeply", () => {
    expect(metadataValuesEqual(true, true)).toBe(true);
    expect(metadataValuesEqual(true, "true")).toBe(false);
    expect(metadataValuesEqual(1, 1.0)).toBe(true);
    expect(metadataValuesEqual(null, null)).toBe(true);
    expect(metadataValuesEqual({ a: [1, "x"] }, { a: [1, "x"] })).toBe(true);
    expect(metadataValuesEqual({ a: [1, "x"] }, { a: [1, "y"] })).toBe(false);
    expect(metadataValuesEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(metadataValuesEqual([1], { 0: 1 })).toBe(false);
  });

  it("needs every pair of the match; an empty match holds for any metadata, even none", () => {
    expect(metadataMatches({}, undefined)).toBe(true);
    expect(metadataMatches({ tls: "on" }, undefined)).toBe(false);
    expect(metadataMatches({ tls: "on" }, { tls: "on", zone: "a" })).toBe(true);
    expect(metadataMatches({ tls: "on", zone: "b" }, { tls: "on", zone: "a" })).toBe(false);
  });
});

describe("TransportSocketMatcher", () => {
  it("takes the first matching entry, else the cluster's transport socket", () => {
    const a = { tls: undefined, proxyProtocol: "V1" as const };
    const b = { tls: undefined, proxyProtocol: "V2" as const };
    const m = new TransportSocketMatcher(PLAIN_TRANSPORT, [
      { name: "a", match: { k: 1 }, transport: a },
      { name: "b", match: { k: 1, x: true }, transport: b },
      { name: "any", match: {}, transport: b },
    ]);
    expect(m.resolve({ k: 1, x: true }).name).toBe("a");
    expect(m.resolve({ k: 2 }).name).toBe("any");
    expect(
      new TransportSocketMatcher(PLAIN_TRANSPORT, [{ name: "a", match: { k: 1 }, transport: a }]).resolve(
        undefined,
      ),
    ).toEqual({
      name: "default",
      transport: PLAIN_TRANSPORT,
    });
  });

  it("resolves a cluster's transport_socket_matches: TLS only where metadata or criteria ask for it", () => {
    const c = cluster(`      transport_socket_matches:
        - name: tls-check
          match: { mtls: true }
          transport_socket:
            name: envoy.transport_sockets.tls
            typed_config: { "@type": ${TLS}, sni: backend.test }
        - name: pp-tls
          match: { pp: "v2" }
          transport_socket:
            name: envoy.transport_sockets.upstream_proxy_protocol
            typed_config:
              "@type": ${PP}
              config: { version: V2 }
              transport_socket: { name: tls, typed_config: { "@type": ${TLS} } }
      transport_socket: { name: raw, typed_config: { "@type": ${RAW} } }
      health_checks:
        - { timeout: 1s, interval: 2s, unhealthy_threshold: 2, healthy_threshold: 1, tcp_health_check: {}, transport_socket_match_criteria: { mtls: true } }
`);
    const m = resolveClusterTransports(c, 0);
    expect(m.resolve(undefined)).toMatchObject({ name: "default", transport: PLAIN_TRANSPORT });
    const tls = m.resolve({ mtls: true });
    expect(tls.name).toBe("tls-check");
    expect(tls.transport.tls?.servername).toBe("backend.test");
    expect(tls.transport.proxyProtocol).toBeUndefined();
    const pp = m.resolve({ pp: "v2" });
    expect(pp.transport).toMatchObject({ proxyProtocol: "V2" });
    expect(pp.transport.tls).toBeDefined();
    expect(c.health_checks[0]?.transport_socket_match_criteria).toEqual({ mtls: true });
    expect(c.load_assignment.endpoints[0]?.lb_endpoints[1]?.metadata?.filter_metadata).toEqual({
      "envoy.transport_socket_match": { mtls: true },
    });
  });

  it("names the entry whose TLS file cannot be read", () => {
    const c = cluster(`      transport_socket_matches:
        - name: tls
          transport_socket:
            name: tls
            typed_config:
              "@type": ${TLS}
              common_tls_context: { validation_context: { trusted_ca: { filename: /nonexistent/ca.pem } } }
`);
    expect(() => resolveClusterTransports(c, 3)).toThrow(
      "static_resources.clusters[3].transport_socket_matches[0].transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename: cannot read /nonexistent/ca.pem",
    );
  });
});
