import { describe, expect, it } from "vitest";
import { route } from "../../test/fixtures/specs.ts";
import {
  compareSpecificity,
  evaluateRoutes,
  methodGroups,
  renderEnvoyRoutes,
  renderRouteCluster,
  renderRoutes,
  type AcceptedRoute,
  type RouteContext,
} from "./routes.ts";
import { HCM_TYPE, HTTP_PROTOCOL_OPTIONS_KEY, Re2Regex, Rewrite, UPSTREAM_TLS_TYPE } from "@tether/envoy";
import { type EnvoyObject } from "./envoy.ts";

const ctx = (over: Partial<RouteContext> = {}): RouteContext => ({
  namespace: "default",
  agentName: "web",
  agentExists: true,
  reservedPorts: new Map([
    [9901, "the sidecar admin port"],
    [15001, "the policy-server listener"],
  ]),
  serviceExists: () => true,
  ...over,
});

type Route = { name: string; match: EnvoyObject; route: EnvoyObject };
const envoyRoutes = (r: AcceptedRoute): Route[] => renderEnvoyRoutes(r) as Route[];

describe("evaluateRoutes", () => {
  it("accepts a valid route and names the Agent and port", () => {
    const [v] = evaluateRoutes([{ name: "app", spec: route() }], ctx());
    expect(v?.accepted).toEqual({
      status: "True",
      reason: "Accepted",
      message: "Served by Agent web on port 8080",
    });
    expect(v?.resolvedRefs.status).toBe("True");
  });

  it("reports a missing Agent by name, in ResolvedRefs and Accepted", () => {
    const [v] = evaluateRoutes([{ name: "app", spec: route() }], ctx({ agentExists: false }));
    expect(v?.resolvedRefs).toEqual({
      status: "False",
      reason: "AgentNotFound",
      message: "Agent web not found in namespace default",
    });
    expect(v?.accepted.status).toBe("False");
    expect(v?.accepted.reason).toBe("UnresolvedRefs");
  });

  it("reports a missing backend Service by name, and keeps the route's match for a 503", () => {
    const spec = route({ backend: { serviceRef: { name: "wls", port: 7001 } } });
    const [v] = evaluateRoutes([{ name: "app", spec }], ctx({ serviceExists: (n) => n !== "wls" }));
    expect(v?.resolvedRefs.reason).toBe("BackendNotFound");
    expect(v?.resolvedRefs.message).toContain("Service wls not found");
    expect(v?.accepted.status).toBe("False");
    expect(v?.accepted.reason).toBe("UnresolvedRefs");
    expect(v?.accepted.message).toContain("its requests get 503");
    expect(v?.missingBackend).toBe("wls");
  });

  it("a route whose backend is missing still holds its match against newer routes, not a taken port", () => {
    const spec = route({ backend: { serviceRef: { name: "wls", port: 7001 } } });
    const verdicts = evaluateRoutes(
      [
        { name: "a-old", creationTimestamp: "2026-01-01T00:00:00Z", spec },
        { name: "b-new", creationTimestamp: "2026-01-02T00:00:00Z", spec: route() },
        { name: "c-port", spec: { ...spec, listenerPort: 9901 } },
      ],
      ctx({ serviceExists: (n) => n !== "wls" }),
    );
    expect(verdicts.map((v) => [v.route.name, v.accepted.reason, v.missingBackend])).toEqual([
      ["a-old", "UnresolvedRefs", "wls"],
      ["b-new", "Conflicted", undefined],
      ["c-port", "UnresolvedRefs", undefined],
    ]);
  });

  it("rejects a listenerPort the Agent already uses", () => {
    const [v] = evaluateRoutes([{ name: "app", spec: route({ listenerPort: 15001 }) }], ctx());
    expect(v?.accepted.reason).toBe("PortConflict");
    expect(v?.accepted.message).toContain("policy-server listener");
  });

  it("lets the older of two identical matches win, and names it", () => {
    const verdicts = evaluateRoutes(
      [
        { name: "b-new", creationTimestamp: "2026-01-02T00:00:00Z", spec: route() },
        { name: "a-old", creationTimestamp: "2026-01-01T00:00:00Z", spec: route() },
      ],
      ctx(),
    );
    expect(verdicts.map((v) => [v.route.name, v.accepted.reason])).toEqual([
      ["a-old", "Accepted"],
      ["b-new", "Conflicted"],
    ]);
    expect(verdicts[1]?.accepted.message).toContain("ProxyRoute a-old");
  });

  it("does not conflict on disjoint methods or other ports", () => {
    const verdicts = evaluateRoutes(
      [
        { name: "get", spec: route({ methods: ["GET"] }) },
        { name: "post", spec: route({ methods: ["POST"] }) },
        { name: "other", spec: route({ listenerPort: 8081 }) },
      ],
      ctx(),
    );
    expect(verdicts.every((v) => v.accepted.status === "True")).toBe(true);
  });

  it("reports an invalid spec with its message", () => {
    const [v] = evaluateRoutes([{ name: "bad", spec: undefined, specError: "spec.match: required" }], ctx());
    expect(v?.accepted).toEqual({ status: "False", reason: "InvalidSpec", message: "spec.match: required" });
  });
});

describe("route ordering", () => {
  it("puts exact paths first, then longer prefixes, then extensions", () => {
    const routes: AcceptedRoute[] = [
      { name: "ext", spec: route({ match: { extensions: ["jsp"] } }) },
      { name: "short", spec: route({ match: { pathPrefix: "/" } }) },
      { name: "long", spec: route({ match: { pathPrefix: "/app/admin/" } }) },
      { name: "exact", spec: route({ match: { path: "/app/login" } }) },
    ];
    expect([...routes].sort(compareSpecificity).map((r) => r.name)).toEqual([
      "exact",
      "long",
      "short",
      "ext",
    ]);
  });

  it("renders one listener per port with routes in that order", () => {
    const { listeners } = renderRoutes(
      [
        { name: "short", spec: route({ match: { pathPrefix: "/" }, retries: { onReset: "never" } }) },
        { name: "exact", spec: route({ match: { path: "/x" }, retries: { onReset: "never" } }) },
        { name: "p9", spec: route({ listenerPort: 9090 }) },
      ],
      "default",
      "cluster.local",
    );
    expect(listeners.map((l) => l["name"])).toEqual(["http-8080", "http-9090"]);
    const hcm = (listeners[0] as { filter_chains: { filters: { typed_config: EnvoyObject }[] }[] })
      .filter_chains[0]!.filters[0]!.typed_config;
    expect(hcm["@type"]).toBe(HCM_TYPE);
    const vh = (hcm["route_config"] as { virtual_hosts: { domains: string[]; routes: Route[] }[] })
      .virtual_hosts[0]!;
    expect(vh.domains).toEqual(["*"]);
    expect(vh.routes.map((r) => r.name)).toEqual(["exact/any", "short/any"]);
  });
});

describe("safe retries", () => {
  it("splits non-idempotent methods into reset-before-request routes before an idempotent catch-all", () => {
    const routes = envoyRoutes({ name: "app", spec: route() });
    expect(routes.map((r) => [r.name, (r.route["retry_policy"] as EnvoyObject)["retry_on"]])).toEqual([
      ["app/POST", "connect-failure,reset-before-request"],
      ["app/PATCH", "connect-failure,reset-before-request"],
      ["app/CONNECT", "connect-failure,reset-before-request"],
      ["app/idempotent", "connect-failure,reset"],
    ]);
    expect(routes[0]?.match["headers"]).toEqual([{ name: ":method", string_match: { exact: "POST" } }]);
    expect(routes[3]?.match["headers"]).toBeUndefined();
  });

  it("matches listed methods one by one", () => {
    const groups = methodGroups(route({ methods: ["GET", "POST"] }));
    expect(groups).toEqual([
      { method: "GET", idempotent: true },
      { method: "POST", idempotent: false },
    ]);
  });

  it("never retries a reset after sending when onReset is never", () => {
    const routes = envoyRoutes({ name: "app", spec: route({ retries: { onReset: "never", attempts: 2 } }) });
    expect(routes).toHaveLength(1);
    expect(routes[0]?.route["retry_policy"]).toEqual({
      retry_on: "connect-failure,reset-before-request",
      num_retries: 2,
      retry_back_off: { base_interval: "2s", max_interval: "2s" },
    });
  });

  it("leaves retries out when attempts is 0", () => {
    const routes = envoyRoutes({ name: "app", spec: route({ retries: { attempts: 0 } }) });
    expect(routes.every((r) => r.route["retry_policy"] === undefined)).toBe(true);
  });
});

describe("matches and rewrites", () => {
  it("trims and prepends on a prefix match", () => {
    const spec = route({ rewrite: { pathTrim: "/app", pathPrepend: "/api" } });
    const r = envoyRoutes({ name: "app", spec }).at(-1)!;
    expect(r.match["prefix"]).toBe("/app/");
    expect(r.route["prefix_rewrite"]).toBe("/api/");
    expect(r.route["timeout"]).toBe("30s");
  });

  it("rewrites a fully trimmed path to /", () => {
    const spec = route({ match: { path: "/legacy" }, rewrite: { pathTrim: "/legacy" } });
    expect(envoyRoutes({ name: "x", spec }).at(-1)!.route["prefix_rewrite"]).toBe("/");
  });

  /**
   * What Envoy does with a rendered route: replace the matched prefix, or the regex over the path
   * (RE2::GlobalReplace, with the sidecar's RE2 engine: what it cannot compile fails here).
   */
  function forwardedPath(
    r: { match: Record<string, unknown>; route: Record<string, unknown> },
    path: string,
  ): string {
    const regex = r.route["regex_rewrite"] as
      { pattern: { regex: string }; substitution: string } | undefined;
    if (regex !== undefined) {
      return new Re2Regex(regex.pattern.regex).replaceAll(path, new Rewrite(regex.substitution));
    }
    const prefix = (r.match["prefix"] ?? r.match["path"]) as string;
    const replacement = r.route["prefix_rewrite"] as string | undefined;
    return replacement === undefined ? path : replacement + path.slice(prefix.length);
  }

  it.each([
    // [pathPrefix, pathTrim, pathPrepend, request, forwarded]
    ["/weblogic", "/weblogic", undefined, "/weblogic/console", "/console"],
    ["/weblogic", "/weblogic", undefined, "/weblogic", "/"],
    ["/weblogic/", "/weblogic", undefined, "/weblogic/console", "/console"],
    ["/weblogic/", "/weblogic/", undefined, "/weblogic/console", "/console"],
    ["/weblogic", "/weblogic", "/jspfiles", "/weblogic/a.jsp", "/jspfiles/a.jsp"],
    ["/weblogic/", "/weblogic", "/jspfiles/", "/weblogic/a.jsp", "/jspfiles/a.jsp"],
    ["/app/v1/", "/app", "/api", "/app/v1/orders", "/api/v1/orders"],
    ["/app", undefined, "/api", "/app/orders", "/api/app/orders"],
    // Regex metacharacters in a prefix are escaped so that RE2 reads them literally.
    ["/a.b+(c)[d]{2}|e^$?*\\f", "/a.b+(c)[d]{2}|e^$?*\\f", "/x", "/a.b+(c)[d]{2}|e^$?*\\f/p", "/x/p"],
  ] as const)(
    "prefix %s, trim %s, prepend %s: %s is forwarded as %s",
    (prefix, trim, prepend, request, expected) => {
      const rewrite = {
        ...(trim !== undefined ? { pathTrim: trim } : {}),
        ...(prepend !== undefined ? { pathPrepend: prepend } : {}),
      };
      const spec = route({ match: { pathPrefix: prefix }, rewrite });
      expect(forwardedPath(envoyRoutes({ name: "x", spec }).at(-1)!, request)).toBe(expected);
    },
  );

  it.each([
    ["/legacy/page", "/legacy", "/new", "/new/page"],
    ["/legacy/page", "/legacy", "/new/", "/new/page"],
    ["/legacy", "/legacy", "/new", "/new"],
  ] as const)("exact path %s, trim %s, prepend %s: forwarded as %s", (path, trim, prepend, expected) => {
    const spec = route({ match: { path }, rewrite: { pathTrim: trim, pathPrepend: prepend } });
    expect(forwardedPath(envoyRoutes({ name: "x", spec }).at(-1)!, path)).toBe(expected);
  });

  it("matches extensions with an escaped safe_regex and prepends with regex_rewrite", () => {
    const spec = route({ match: { extensions: ["jspx", "jsp"] }, rewrite: { pathPrepend: "/jspfiles" } });
    const r = envoyRoutes({ name: "jsp", spec }).at(-1)!;
    expect(r.match["safe_regex"]).toEqual({ regex: ".*\\.(jsp|jspx)" });
    const regex = new Re2Regex((r.match["safe_regex"] as { regex: string }).regex);
    expect(regex.fullMatch("/a/b.jsp")).toBe(true);
    expect(regex.fullMatch("/a/bjsp")).toBe(false);
    expect(r.route["regex_rewrite"]).toEqual({ pattern: { regex: "^(.*)$" }, substitution: "/jspfiles\\1" });
  });

  it("hashes on the session cookie", () => {
    const r = envoyRoutes({ name: "a", spec: route({ sessionAffinity: { cookieName: "JSESSIONID" } }) })[0]!;
    expect(r.route["hash_policy"]).toEqual([{ cookie: { name: "JSESSIONID" } }]);
  });
});

describe("renderRouteCluster", () => {
  it("renders a STATIC cluster with priorities, timeouts and keep-alive", () => {
    const spec = route({
      backend: {
        servers: [
          { host: "10.0.0.2", port: 7001, priority: 1 },
          { host: "10.0.0.1", port: 7001 },
        ],
      },
      timeouts: { connect: "3s" },
      keepAlive: { idleTimeout: "15s" },
    });
    const c = renderRouteCluster({ name: "app", spec }, "default", "cluster.local");
    expect(c["name"]).toBe("route-app");
    expect(c["type"]).toBe("STATIC");
    expect(c["connect_timeout"]).toBe("3s");
    expect(c["lb_policy"]).toBe("ROUND_ROBIN");
    // A TCP check, fast while a backend is down, so a restarted backend is found within 250 ms.
    expect(c["health_checks"]).toEqual([
      {
        timeout: "1s",
        interval: "2s",
        no_traffic_interval: "2s",
        unhealthy_interval: "0.250s",
        unhealthy_edge_interval: "0.250s",
        healthy_edge_interval: "0.250s",
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        tcp_health_check: {},
      },
    ]);
    expect(c["load_assignment"]).toEqual({
      cluster_name: "route-app",
      endpoints: [
        {
          priority: 0,
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: 7001 } } } },
          ],
        },
        {
          priority: 1,
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: "10.0.0.2", port_value: 7001 } } } },
          ],
        },
      ],
    });
    const opts = (c["typed_extension_protocol_options"] as Record<string, EnvoyObject>)[
      HTTP_PROTOCOL_OPTIONS_KEY
    ]!;
    expect(opts["common_http_protocol_options"]).toEqual({ idle_timeout: "15s" });
  });

  it("uses STRICT_DNS on the Service name, RING_HASH for affinity, one request per connection without keep-alive", () => {
    const spec = route({
      backend: { serviceRef: { name: "wls", port: 7001 } },
      sessionAffinity: { cookieName: "JSESSIONID" },
      keepAlive: { enabled: false },
    });
    const c = renderRouteCluster({ name: "app", spec }, "shop", "cluster.local");
    expect(c["type"]).toBe("STRICT_DNS");
    expect(c["lb_policy"]).toBe("RING_HASH");
    expect(JSON.stringify(c["load_assignment"])).toContain(
      '"address":"wls.shop.svc.cluster.local","port_value":7001',
    );
    const opts = (c["typed_extension_protocol_options"] as Record<string, EnvoyObject>)[
      HTTP_PROTOCOL_OPTIONS_KEY
    ]!;
    expect(opts["common_http_protocol_options"]).toEqual({
      idle_timeout: "30s",
      max_requests_per_connection: 1,
    });
  });

  it("adds a verified TLS transport socket: the CA Secret, and serverName as SNI and the certificate's DNS name", () => {
    const spec = route({ tls: { enabled: true, serverName: "wls.corp", caSecretRef: { name: "wls-ca" } } });
    const c = renderRouteCluster({ name: "app", spec }, "default", "cluster.local");
    expect(c["transport_socket"]).toEqual({
      name: "envoy.transport_sockets.tls",
      typed_config: {
        "@type": UPSTREAM_TLS_TYPE,
        sni: "wls.corp",
        common_tls_context: {
          validation_context: {
            trusted_ca: { filename: "/etc/tether/secrets/wls-ca/ca.crt" },
            match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: "wls.corp" } }],
          },
        },
      },
    });
  });

  it("verifies only the chain without serverName, and nothing with insecureSkipVerify", () => {
    const chainOnly = route({ tls: { enabled: true, caSecretRef: { name: "wls-ca" } } });
    expect(
      renderRouteCluster({ name: "app", spec: chainOnly }, "default", "cluster.local")["transport_socket"],
    ).toMatchObject({
      typed_config: {
        common_tls_context: {
          validation_context: { trusted_ca: { filename: "/etc/tether/secrets/wls-ca/ca.crt" } },
        },
      },
    });
    const insecure = route({ tls: { enabled: true, serverName: "wls.corp", insecureSkipVerify: true } });
    expect(
      renderRouteCluster({ name: "app", spec: insecure }, "default", "cluster.local")["transport_socket"],
    ).toEqual({
      name: "envoy.transport_sockets.tls",
      typed_config: { "@type": UPSTREAM_TLS_TYPE, sni: "wls.corp", common_tls_context: {} },
    });
  });
});
