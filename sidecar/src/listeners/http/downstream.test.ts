import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../config/load.ts";
import { HCM_TYPE, type HttpConnectionManagerConfig } from "@tether/envoy";
import { nodeRequestTimeouts, rawReply } from "./downstream.ts";

function hcm(fields = ""): HttpConnectionManagerConfig {
  const b = parseConfigText(`
static_resources:
  listeners:
    - name: l
      address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
      filter_chains:
        - filters:
            - name: hcm
              typed_config:
                "@type": ${HCM_TYPE}
                stat_prefix: s
                route_config: {}
                http_filters: [{ name: r, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
${fields}
`).bootstrap;
  const tc = b.static_resources.listeners[0]?.filter_chains[0]?.filters[0]?.typed_config;
  if (tc?.["@type"] !== HCM_TYPE) throw new Error("no hcm");
  return tc;
}

describe("downstream limits and timeouts config", () => {
  it("has Envoy's defaults, and Tether's 60 s request_headers_timeout where Envoy has none", () => {
    const c = hcm();
    expect(c.common_http_protocol_options).toEqual({ idle_timeout: 3_600_000, max_headers_count: 100 });
    expect(c.stream_idle_timeout).toBe(300_000);
    expect(c.request_timeout).toBe(0);
    expect(c.request_headers_timeout).toBe(60_000);
    expect(c.max_request_headers_kb).toBe(60);
  });

  it("gives Node a headers timeout no longer than request_timeout (Node refuses one)", () => {
    expect(nodeRequestTimeouts(hcm())).toEqual({ headersTimeout: 60_000, requestTimeout: 0 });
    const both = `                request_timeout: 2s\n                request_headers_timeout: 5s`;
    expect(nodeRequestTimeouts(hcm(both))).toEqual({ headersTimeout: 2000, requestTimeout: 2000 });
    const off = `                request_timeout: 2s\n                request_headers_timeout: 0s`;
    expect(nodeRequestTimeouts(hcm(off))).toEqual({ headersTimeout: 2000, requestTimeout: 2000 });
    const shorter = `                request_timeout: 2s\n                request_headers_timeout: 1s`;
    expect(nodeRequestTimeouts(hcm(shorter))).toEqual({ headersTimeout: 1000, requestTimeout: 2000 });
  });

  it("writes a whole local reply that closes the connection", () => {
    expect(rawReply(408, "stream timeout")).toBe(
      "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 14\r\nconnection: close\r\n\r\nstream timeout",
    );
  });
});
