import { describe, expect, it } from "vitest";
import { responseFlagsString, RESPONSE_FLAGS } from "./response-flags.ts";
import {
  AccessLogFormatError,
  DEFAULT_TEXT_FORMAT,
  jsonFormatter,
  SUPPORTED_OPERATORS,
  textFormatter,
  type AccessLogEntry,
} from "./access-log-format.ts";

// 2016-04-15T20:17:00.310Z, Envoy's documented example.
const START = Date.UTC(2016, 3, 15, 20, 17, 0, 310);

const http: AccessLogEntry = {
  startTimeMs: START,
  protocol: "HTTP/1.1",
  responseCode: 204,
  responseFlags: undefined,
  bytesReceived: 154,
  bytesSent: 0,
  durationMs: 226,
  upstreamHost: "10.0.2.1:80",
  upstreamCluster: "policy-server",
  upstreamAttempts: 2,
  routeName: "authorize",
  connectionId: 17,
  downstreamRemoteAddress: "10.0.35.28:51234",
  downstreamLocalAddress: "127.0.0.1:15001",
  requestHeader: (n) =>
    ({
      ":method": "POST",
      ":path": "/api/v1/locations",
      ":authority": "locations",
      "x-forwarded-for": "10.0.35.28",
      "user-agent": "nsq2http",
      "x-request-id": "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
    })[n],
  responseHeader: (n) => ({ "x-envoy-upstream-service-time": "100", "content-type": "text/plain" })[n],
};

const tcp: AccessLogEntry = {
  ...http,
  protocol: undefined,
  responseCode: undefined,
  responseFlags: "UF,URX",
  upstreamHost: undefined,
  routeName: undefined,
  requestHeader: () => undefined,
  responseHeader: () => undefined,
};

const fmt = (template: string, e: AccessLogEntry = http): string => textFormatter(template).format(e);

describe("text format: every supported operator", () => {
  it.each([
    ["%START_TIME%", "2016-04-15T20:17:00.310Z"],
    ["%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)%", "2016/04/15T20:17:00+0000 1460751420"],
    ["%START_TIME(%s.%3f)%", "1460751420.310"],
    ["%START_TIME(%s.%6f)%", "1460751420.310000"],
    ["%START_TIME(%s.%9f)%", "1460751420.310000000"],
    ["%START_TIME(%H:%M:%E3S)%", "20:17:00.310"],
    ["%START_TIME(%F %T %j %y %Z %%)%", "2016-04-15 20:17:00 106 16 UTC %"],
    ["%REQ(:METHOD)%", "POST"],
    ["%REQUEST_HEADER(:PATH)%", "/api/v1/locations"],
    ["%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/api/v1/locations"],
    ["%REQ(:AUTHORITY)%", "locations"],
    ["%REQ(USER-AGENT):3%", "nsq"],
    ["%REQ(X-MISSING)%", "-"],
    ["%RESP(CONTENT-TYPE)%", "text/plain"],
    ["%RESPONSE_HEADER(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "100"],
    ["%PROTOCOL%", "HTTP/1.1"],
    ["%RESPONSE_CODE%", "204"],
    ["%RESPONSE_FLAGS%", "-"],
    ["%BYTES_RECEIVED%", "154"],
    ["%BYTES_SENT%", "0"],
    ["%DURATION%", "226"],
    ["%UPSTREAM_HOST%", "10.0.2.1:80"],
    ["%UPSTREAM_CLUSTER%", "policy-server"],
    ["%UPSTREAM_REQUEST_ATTEMPT_COUNT%", "2"],
    ["%ROUTE_NAME%", "authorize"],
    ["%CONNECTION_ID%", "17"],
    ["%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.35.28:51234"],
    ["%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.35.28"],
    ["%DOWNSTREAM_REMOTE_PORT%", "51234"],
    ["%DOWNSTREAM_LOCAL_ADDRESS%", "127.0.0.1:15001"],
    ["%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "127.0.0.1"],
    ["%DOWNSTREAM_LOCAL_PORT%", "15001"],
  ])("%s → %s", (template, expected) => {
    expect(fmt(template)).toBe(expected);
  });

  it("covers every operator it supports", () => {
    const tested = new Set([
      "START_TIME",
      "REQ",
      "REQUEST_HEADER",
      "RESP",
      "RESPONSE_HEADER",
      "PROTOCOL",
      "RESPONSE_CODE",
      "RESPONSE_FLAGS",
      "BYTES_RECEIVED",
      "BYTES_SENT",
      "DURATION",
      "UPSTREAM_HOST",
      "UPSTREAM_CLUSTER",
      "UPSTREAM_REQUEST_ATTEMPT_COUNT",
      "ROUTE_NAME",
      "CONNECTION_ID",
      "DOWNSTREAM_REMOTE_ADDRESS",
      "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
      "DOWNSTREAM_REMOTE_PORT",
      "DOWNSTREAM_LOCAL_ADDRESS",
      "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
      "DOWNSTREAM_LOCAL_PORT",
    ]);
    expect(new Set(SUPPORTED_OPERATORS)).toEqual(tested);
  });

  it("writes Envoy's documented default line", () => {
    expect(fmt(DEFAULT_TEXT_FORMAT)).toBe(
      '[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/1.1" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "10.0.2.1:80"\n',
    );
  });

  it("writes - for what a TCP connection does not have", () => {
    expect(
      fmt("%PROTOCOL% %RESPONSE_CODE% %REQ(:METHOD)% %UPSTREAM_HOST% %RESPONSE_FLAGS% %BYTES_SENT%", tcp),
    ).toBe("- - - - UF,URX 0");
  });

  it("refuses an unknown operator or argument, and an unsupported START_TIME specifier", () => {
    expect(() => textFormatter("%NOT_AN_OPERATOR%")).toThrow(AccessLogFormatError);
    expect(() => textFormatter("%NOT_AN_OPERATOR%")).toThrow(
      "unsupported command operator %NOT_AN_OPERATOR%",
    );
    expect(() => textFormatter("%DURATION(x)%")).toThrow("%DURATION% takes no argument");
    expect(() => textFormatter("%REQ()%")).toThrow("REQ needs a header name");
    expect(() => textFormatter("%START_TIME(%Q)%")).toThrow("START_TIME: unsupported specifier %Q");
    expect(fmt("100% sure %")).toBe("100% sure %");
  });
});

describe("json format (v3 json_format: typed values)", () => {
  it("renders numbers for numeric operators, strings otherwise, null when unset, - for PROTOCOL", () => {
    const f = jsonFormatter({
      start: "%START_TIME%",
      status: "%RESPONSE_CODE%",
      duration: "%DURATION%",
      received: "%BYTES_RECEIVED%",
      sent: "%BYTES_SENT%",
      attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
      id: "%CONNECTION_ID%",
      line: "%REQ(:METHOD)% %REQ(:PATH)%",
      durationText: "%DURATION%ms",
      upstream: { host: "%UPSTREAM_HOST%", cluster: "%UPSTREAM_CLUSTER%" },
      protocol: "%PROTOCOL%",
      flags: "%RESPONSE_FLAGS%",
    });
    expect(JSON.parse(f.format(http))).toEqual({
      start: "2016-04-15T20:17:00.310Z",
      status: 204,
      duration: 226,
      received: 154,
      sent: 0,
      attempts: 2,
      id: "17",
      line: "POST /api/v1/locations",
      durationText: "226ms",
      upstream: { host: "10.0.2.1:80", cluster: "policy-server" },
      protocol: "HTTP/1.1",
      flags: "-",
    });
    const t = JSON.parse(f.format(tcp)) as Record<string, unknown>;
    expect(t["status"]).toBeNull();
    expect(t["upstream"]).toEqual({ host: null, cluster: "policy-server" });
    expect(t["protocol"]).toBe("-");
    expect(t["line"]).toBe("- -");
    expect(t["flags"]).toBe("UF,URX");
    expect(f.format(http).endsWith("}\n")).toBe(true);
  });

  it("names the key of a bad operator", () => {
    expect(() => jsonFormatter({ a: { b: "%NOPE%" } })).toThrow(
      "json_format.a.b: unsupported command operator %NOPE%",
    );
  });
});

describe("response flags", () => {
  it("are written in Envoy's order, joined by commas", () => {
    expect(responseFlagsString(0)).toBeUndefined();
    expect(responseFlagsString(RESPONSE_FLAGS.URX | RESPONSE_FLAGS.UF)).toBe("UF,URX");
    expect(responseFlagsString(RESPONSE_FLAGS.NC | RESPONSE_FLAGS.UH | RESPONSE_FLAGS.DC)).toBe("UH,DC,NC");
  });
});
