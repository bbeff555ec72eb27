import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { agent, psc, route } from "../../test/fixtures/specs.ts";
import type { AgentSpec, PolicyServerClusterSpec } from "../api/index.ts";
import { renderAgent, type AgentInput } from "./agent.ts";
import { reservedPorts } from "./agent-bootstrap.ts";
import { DECISION_CACHE_TYPE, HCM_TYPE, ROUTER_TYPE, TCP_PROXY_TYPE } from "@tether/envoy";
import { type EnvoyObject } from "./envoy.ts";
import { POD_TEMPLATE_HASH_ANNOTATION } from "./meta.ts";
import { evaluateRoutes, type AcceptedRoute } from "./routes.ts";

const owner = { kind: "Agent" as const, name: "web", namespace: "shop", uid: "uid-web" };
// The fallback for clusters without native sidecars: the sidecar is a plain container (lifecycle.test.ts covers native).
const options = {
  sidecarImage: "localhost/tether/sidecar:0.1.0",
  clusterDomain: "cluster.local",
  nativeSidecar: false,
};

function input(spec: AgentSpec, pscSpec: PolicyServerClusterSpec, routes: AcceptedRoute[] = []): AgentInput {
  return { owner, spec, policyServers: { name: "ps", spec: pscSpec }, routes, options };
}

interface Bootstrap {
  admin: EnvoyObject;
  static_resources: { listeners: EnvoyObject[]; clusters: EnvoyObject[] };
}
function bootstrapOf(i: AgentInput): Bootstrap {
  return parse(renderAgent(i).sidecarConfig.data["envoy.yaml"]!) as Bootstrap;
}
function filterOf(listener: EnvoyObject | undefined): EnvoyObject {
  return (listener as { filter_chains: { filters: { typed_config: EnvoyObject }[] }[] }).filter_chains[0]!
    .filters[0]!.typed_config;
}
type Container = Record<string, unknown> & { name: string };

describe("Agent children", () => {
  it("names and labels the three children and makes the Agent their controller", () => {
    const out = renderAgent(input(agent(), psc()));
    expect(out.deployment.metadata.name).toBe("web");
    expect(out.sidecarConfig.metadata.name).toBe("web-sidecar");
    expect(out.agentConfig.metadata.name).toBe("web-agent-config");
    for (const child of [out.deployment, out.sidecarConfig, out.agentConfig]) {
      expect(child.metadata.namespace).toBe("shop");
      expect(child.metadata.labels).toEqual({
        "app.kubernetes.io/name": "tether",
        "app.kubernetes.io/instance": "web",
        "app.kubernetes.io/component": "agent",
        "app.kubernetes.io/managed-by": "tether-operator",
      });
      expect(child.metadata.ownerReferences).toEqual([
        {
          apiVersion: "tether.dev/v1alpha1",
          kind: "Agent",
          name: "web",
          uid: "uid-web",
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
    }
  });

  it("adds the sidecar, env vars and config volumes to the user's pod template", () => {
    const spec = agent({
      replicas: 3,
      listener: { port: 15001 },
      sidecar: { resources: { limits: { memory: "128Mi" } } },
      template: {
        metadata: { labels: { team: "web" } },
        spec: {
          containers: [
            {
              name: "agent",
              image: "agent:1",
              env: [
                { name: "A", value: "1" },
                { name: "TETHER_POLICY_SERVER_PORT", value: "1" },
              ],
            },
          ],
        },
      },
    });
    const d = renderAgent(input(spec, psc())).deployment;
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.selector.matchLabels).toEqual({
      "app.kubernetes.io/name": "tether",
      "app.kubernetes.io/instance": "web",
      "app.kubernetes.io/component": "agent",
    });
    const tpl = d.spec.template;
    expect(tpl.metadata.labels).toMatchObject({ team: "web", "app.kubernetes.io/instance": "web" });
    const containers = tpl.spec.containers as Container[];
    expect(containers.map((c) => c.name)).toEqual(["agent", "tether-sidecar"]);
    expect(containers[0]!["env"]).toEqual([
      { name: "A", value: "1" },
      { name: "TETHER_POLICY_SERVER_HOST", value: "127.0.0.1" },
      { name: "TETHER_POLICY_SERVER_PORT", value: "15001" },
      { name: "TETHER_AGENT_CONFIG_DIR", value: "/etc/tether/agent" },
    ]);
    expect(containers[0]!["volumeMounts"]).toEqual([
      { name: "tether-agent-config", mountPath: "/etc/tether/agent", readOnly: true },
    ]);
    const sidecar = containers[1]!;
    expect(sidecar["image"]).toBe("localhost/tether/sidecar:0.1.0");
    expect(sidecar["args"]).toEqual([
      "--config",
      "/etc/tether/sidecar/envoy.yaml",
      "--drain-time-s",
      "5",
      "--drain-strategy",
      "gradual",
      "--parent-shutdown-time-s",
      "30",
    ]);
    expect(tpl.spec["terminationGracePeriodSeconds"]).toBe(30);
    expect(sidecar["readinessProbe"]).toMatchObject({ httpGet: { path: "/ready", port: 9901 } });
    expect(sidecar["livenessProbe"]).toMatchObject({ httpGet: { path: "/ready", port: 9901 } });
    expect(sidecar["resources"]).toEqual({ limits: { memory: "128Mi" } });
    expect(sidecar["securityContext"]).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(tpl.spec["volumes"]).toEqual([
      { name: "tether-sidecar-config", configMap: { name: "web-sidecar" } },
      { name: "tether-agent-config", configMap: { name: "web-agent-config" } },
    ]);
  });

  it("uses the PolicyServerCluster's port when listener.port is unset, and the Agent's own image if set", () => {
    const d = renderAgent(input(agent({ sidecar: { image: "mine:2" } }), psc({ port: 7000 }))).deployment;
    const [app, sidecar] = d.spec.template.spec.containers as Container[];
    expect(app!["env"]).toContainEqual({ name: "TETHER_POLICY_SERVER_PORT", value: "7000" });
    expect(sidecar!["image"]).toBe("mine:2");
    const empty = renderAgent(input(agent({ sidecar: { image: "" } }), psc())).deployment;
    expect((empty.spec.template.spec.containers as Container[])[1]!["image"]).toBe(
      "localhost/tether/sidecar:0.1.0",
    );
  });

  it("sets the sidecar's imagePullPolicy from the operator's option, and leaves Kubernetes' default without it", () => {
    const sidecarOf = (i: AgentInput): Container =>
      (renderAgent(i).deployment.spec.template.spec.containers as Container[])[1]!;
    const always = { ...input(agent(), psc()), options: { ...options, sidecarImagePullPolicy: "Always" } };
    expect(sidecarOf(always)["imagePullPolicy"]).toBe("Always");
    expect(sidecarOf(input(agent(), psc()))).not.toHaveProperty("imagePullPolicy");
  });

  it("puts agentConfig into the agent-config ConfigMap", () => {
    const out = renderAgent(input(agent({ agentConfig: { "agent.conf": "A=1\n" } }), psc()));
    expect(out.agentConfig.data).toEqual({ "agent.conf": "A=1\n" });
  });

  it("keeps the pod template (and its hash) when only the sidecar config changes, and changes it with the template", () => {
    const base = renderAgent(input(agent(), psc()));
    const configOnly = renderAgent(
      input(agent({ reconnect: { holdTimeout: "60s" } }), psc({ healthCheck: { interval: "5s" } }), [
        { name: "r", spec: route() },
        { name: "r2", spec: route({ listenerPort: 9090 }) },
      ]),
    );
    const hashOf = (d: typeof base.deployment): string | undefined =>
      d.spec.template.metadata.annotations?.[POD_TEMPLATE_HASH_ANNOTATION];
    expect(configOnly.sidecarConfig.data["envoy.yaml"]).not.toBe(base.sidecarConfig.data["envoy.yaml"]);
    expect(configOnly.deployment).toEqual(base.deployment);
    const newImage = renderAgent(input(agent({ sidecar: { image: "other:1" } }), psc()));
    expect(hashOf(newImage.deployment)).not.toBe(hashOf(base.deployment));
    const newPort = renderAgent(input(agent(), psc({ port: 5000 })));
    expect(hashOf(newPort.deployment)).not.toBe(hashOf(base.deployment)); // TETHER_POLICY_SERVER_PORT
    expect(hashOf(base.deployment)).toMatch(/^[0-9a-f]{16}$/);
  });

  it("mounts TLS Secrets into the sidecar only", () => {
    const spec = psc({
      tls: { enabled: true, caSecretRef: { name: "ps-ca" }, clientCertSecretRef: { name: "agent-cert" } },
    });
    const tpl = renderAgent(input(agent(), spec)).deployment.spec.template;
    const volumes = tpl.spec["volumes"] as { name: string; secret?: { secretName: string } }[];
    expect(volumes.filter((v) => v.secret !== undefined).map((v) => v.secret?.secretName)).toEqual([
      "agent-cert",
      "ps-ca",
    ]);
    const [app, sidecar] = tpl.spec.containers as Container[];
    expect(JSON.stringify(app!["volumeMounts"])).not.toContain("/etc/tether/secrets");
    expect(sidecar!["volumeMounts"]).toContainEqual({
      name: volumes.find((v) => v.secret?.secretName === "ps-ca")!.name,
      mountPath: "/etc/tether/secrets/ps-ca",
      readOnly: true,
    });
  });
});

describe("Agent sidecar bootstrap", () => {
  it("renders a tcp_proxy on 127.0.0.1 to a STRICT_DNS cluster on the headless Service", () => {
    const spec = agent({
      listener: { port: 15001 },
      pool: { maxConnections: 10, idleTimeout: "20s" },
      reconnect: { connectTimeout: "2s", retryInterval: "250ms", maxRetryInterval: "2s", holdTimeout: "30s" },
    });
    const b = bootstrapOf(input(spec, psc()));
    // The full admin on loopback only; its read-only paths are served on 9901 by a listener.
    expect(b.admin).toEqual({ address: { socket_address: { address: "127.0.0.1", port_value: 15000 } } });
    const [listener] = b.static_resources.listeners;
    expect(listener!["address"]).toEqual({ socket_address: { address: "127.0.0.1", port_value: 15001 } });
    const tcp = filterOf(listener);
    expect(tcp["@type"]).toBe(TCP_PROXY_TYPE);
    expect(tcp["cluster"]).toBe("policy-server");
    expect(tcp["backoff_options"]).toEqual({ base_interval: "0.250s", max_interval: "2s" });
    expect(tcp["idle_timeout"]).toBe("20s");
    expect(tcp["max_connect_attempts"]).toBeGreaterThan(10);
    const [cluster] = b.static_resources.clusters;
    expect(cluster).toMatchObject({
      name: "policy-server",
      type: "STRICT_DNS",
      connect_timeout: "2s",
      dns_refresh_rate: "2s",
      close_connections_on_host_health_failure: true,
      health_checks: [
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
      ],
      circuit_breakers: { thresholds: [{ max_connections: 20 }] },
    });
    expect(JSON.stringify(cluster!["load_assignment"])).toContain(
      '"address":"ps.shop.svc.cluster.local","port_value":44443',
    );
    expect(cluster!["typed_extension_protocol_options"]).toBeUndefined();
  });

  it("renders external servers with priorities, or all in priority 0 when balanced", () => {
    const external = {
      external: {
        servers: [
          { host: "192.0.2.1", priority: 0 },
          { host: "192.0.2.2", port: 5000, priority: 1 },
        ],
      },
    };
    const prio = bootstrapOf(input(agent(), psc({ managed: undefined, ...external })));
    const c = prio.static_resources.clusters[0]!;
    expect(c["type"]).toBe("STATIC");
    expect(c["dns_refresh_rate"]).toBeUndefined();
    expect(c["load_assignment"]).toEqual({
      cluster_name: "policy-server",
      endpoints: [
        {
          priority: 0,
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: "192.0.2.1", port_value: 44443 } } } },
          ],
        },
        {
          priority: 1,
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: "192.0.2.2", port_value: 5000 } } } },
          ],
        },
      ],
    });
    const balanced = bootstrapOf(
      input(agent(), psc({ managed: undefined, ...external, failover: { mode: "balanced" } })),
    );
    const endpoints = (
      balanced.static_resources.clusters[0]!["load_assignment"] as {
        endpoints: { priority: number; lb_endpoints: unknown[] }[];
      }
    ).endpoints;
    expect(endpoints).toHaveLength(1);
    expect(endpoints[0]?.lb_endpoints).toHaveLength(2);
  });

  it("renders an HTTP listener with hold-and-retry routes, the decision cache and pool settings for protocol http", () => {
    const spec = agent({
      cache: { enabled: true, ttl: "3m" },
      pool: { idleTimeout: "25s", maxRequestsPerConnection: 100 },
    });
    const b = bootstrapOf(
      input(spec, psc({ protocol: "http", healthCheck: { type: "http", path: "/healthz" } })),
    );
    const hcm = filterOf(b.static_resources.listeners[0]);
    expect(hcm["@type"]).toBe(HCM_TYPE);
    expect(hcm["http_filters"]).toEqual([
      {
        name: "tether.filters.http.decision_cache",
        typed_config: {
          "@type": DECISION_CACHE_TYPE,
          ttl: "180s",
          notifications: true,
          key_headers: ["authorization", "cookie"],
          notification_stream: {
            cluster: "policy-server",
            path: "/notifications/stream",
            timeout: "5s",
            retry_back_off: { base_interval: "0.250s", max_interval: "2s" },
          },
        },
        is_optional: true,
      },
      { name: "envoy.filters.http.router", typed_config: { "@type": ROUTER_TYPE } },
    ]);
    const routes = (
      hcm["route_config"] as { virtual_hosts: { routes: { name: string; route: EnvoyObject }[] }[] }
    ).virtual_hosts[0]!.routes;
    expect(routes.map((r) => r.name)).toEqual([
      "policy-server/POST",
      "policy-server/PATCH",
      "policy-server/CONNECT",
      "policy-server/idempotent",
    ]);
    expect(routes[3]!.route).toMatchObject({
      cluster: "policy-server",
      timeout: "30s",
      retry_policy: {
        retry_on: "connect-failure,reset",
        retry_back_off: { base_interval: "0.250s", max_interval: "2s" },
        per_try_timeout: "0.500s",
      },
    });
    // A POST may have reached the server: no per-try timeout, so it is never sent twice.
    for (const r of routes.slice(0, 3)) expect(r.route["retry_policy"]).not.toHaveProperty("per_try_timeout");
    const c = b.static_resources.clusters[0]!;
    expect(c["health_checks"]).toMatchObject([{ http_health_check: { path: "/healthz" } }]);
    expect(c["close_connections_on_host_health_failure"]).toBeUndefined();
    expect(c["typed_extension_protocol_options"]).toEqual({
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        common_http_protocol_options: { idle_timeout: "25s", max_requests_per_connection: 100 },
        explicit_http_config: { http_protocol_options: {} },
      },
    });
  });

  it("renders no per-try timeout when reconnect.perTryTimeout is 0s", () => {
    const b = bootstrapOf(
      input(
        agent({ reconnect: { perTryTimeout: "0s" } }),
        psc({ protocol: "http", healthCheck: { type: "http", path: "/healthz" } }),
      ),
    );
    const hcm = filterOf(b.static_resources.listeners[0]);
    const routes = (hcm["route_config"] as { virtual_hosts: { routes: { route: EnvoyObject }[] }[] })
      .virtual_hosts[0]!.routes;
    expect(routes).toHaveLength(4);
    for (const r of routes) expect(r.route["retry_policy"]).not.toHaveProperty("per_try_timeout");
  });

  it("verifies the policy servers' certificates: the CA, and serverName as their DNS name", () => {
    const spec = psc({
      tls: { enabled: true, caSecretRef: { name: "ps-ca" }, serverName: "ps.corp" },
    });
    const c = bootstrapOf(input(agent(), spec)).static_resources.clusters[0]!;
    expect(c["transport_socket"]).toMatchObject({
      typed_config: {
        sni: "ps.corp",
        common_tls_context: {
          validation_context: {
            trusted_ca: { filename: "/etc/tether/secrets/ps-ca/ca.crt" },
            match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: "ps.corp" } }],
          },
        },
      },
    });
    const insecure = psc({ tls: { enabled: true, serverName: "ps.corp", insecureSkipVerify: true } });
    const u = bootstrapOf(input(agent(), insecure)).static_resources.clusters[0]!;
    expect(u["transport_socket"]).toMatchObject({ typed_config: { sni: "ps.corp", common_tls_context: {} } });
    expect(JSON.stringify(u["transport_socket"])).not.toContain("validation_context");
  });

  it("subscribes the decision cache to the notification stream only with cache.notifications", () => {
    const cacheOf = (notifications: boolean): EnvoyObject => {
      const spec = agent({
        cache: { enabled: true, ttl: "1m", notifications },
        reconnect: { connectTimeout: "2s", retryInterval: "500ms", maxRetryInterval: "8s" },
      });
      const hcm = filterOf(bootstrapOf(input(spec, psc({ protocol: "http" }))).static_resources.listeners[0]);
      return (hcm["http_filters"] as { typed_config: EnvoyObject }[])[0]!.typed_config;
    };
    expect(cacheOf(true)).toEqual({
      "@type": DECISION_CACHE_TYPE,
      ttl: "60s",
      notifications: true,
      key_headers: ["authorization", "cookie"],
      notification_stream: {
        cluster: "policy-server",
        path: "/notifications/stream",
        timeout: "2s",
        retry_back_off: { base_interval: "0.500s", max_interval: "8s" },
      },
    });
    // Without the subscription, POST /notifications on the admin port still invalidates.
    expect(cacheOf(false)).toEqual({
      "@type": DECISION_CACHE_TYPE,
      ttl: "60s",
      notifications: true,
      key_headers: ["authorization", "cookie"],
    });
  });

  it("renders cache.keyHeaders into the decision cache's key_headers", () => {
    const keyHeadersOf = (cache: Record<string, unknown>): unknown => {
      const spec = agent({ cache: { enabled: true, ...cache } });
      const hcm = filterOf(bootstrapOf(input(spec, psc({ protocol: "http" }))).static_resources.listeners[0]);
      return (hcm["http_filters"] as { typed_config: EnvoyObject }[])[0]!.typed_config["key_headers"];
    };
    expect(keyHeadersOf({})).toEqual(["authorization", "cookie"]);
    expect(keyHeadersOf({ keyHeaders: ["cookie", "x-tenant"] })).toEqual(["cookie", "x-tenant"]);
    // An empty list keys on the method, path, Host, session header and Authorization alone.
    expect(keyHeadersOf({ keyHeaders: [] })).toEqual([]);
    expect(() => agent({ cache: { keyHeaders: ["X-Tenant"] } })).toThrow(/lower-case HTTP header name/);
  });

  it("leaves the decision cache out when disabled", () => {
    const b = bootstrapOf(input(agent(), psc({ protocol: "http" })));
    expect(JSON.stringify(b)).not.toContain("DecisionCache");
  });

  it("adds the routes' listeners and clusters after the policy server's", () => {
    const b = bootstrapOf(input(agent(), psc(), [{ name: "app", spec: route() }]));
    expect(b.static_resources.listeners.map((l) => l["name"])).toEqual([
      "policy-server",
      "http-8080",
      "tether-admin-public",
    ]);
    expect(b.static_resources.clusters.map((c) => c["name"])).toEqual([
      "policy-server",
      "route-app",
      "tether-admin-local",
    ]);
    const sidecar = (
      renderAgent(input(agent(), psc(), [{ name: "app", spec: route() }])).deployment.spec.template.spec
        .containers as Container[]
    )[1]!;
    expect(sidecar["ports"]).toEqual([{ name: "tether-admin", containerPort: 9901, protocol: "TCP" }]);
  });

  it("is deterministic", () => {
    const a = renderAgent(
      input(agent(), psc(), [
        { name: "b", spec: route() },
        { name: "a", spec: route({ listenerPort: 81 }) },
      ]),
    );
    const b = renderAgent(
      input(agent(), psc(), [
        { name: "a", spec: route({ listenerPort: 81 }) },
        { name: "b", spec: route() },
      ]),
    );
    expect(a).toEqual(b);
  });

  it("reserves the admin, local admin and listener ports for routes", () => {
    expect([...reservedPorts(agent({ listener: { port: 15001 } }), psc()).keys()].sort()).toEqual([
      15000, 15001, 9901,
    ]);
    expect([...reservedPorts(agent(), undefined).entries()]).toEqual([
      [9901, "the sidecar admin port"],
      [15000, "the sidecar's local admin port"],
    ]);
    const moved = agent({ sidecar: { adminPort: 9000, localAdminPort: 19000 } });
    expect([...reservedPorts(moved, undefined).keys()]).toEqual([9000, 19000]);
  });

  it("serves only GET /ready, /stats/prometheus and /metrics on the public admin port", () => {
    const spec = agent({ sidecar: { adminPort: 9000, localAdminPort: 19000 } });
    const b = bootstrapOf(input(spec, psc()));
    expect(b.admin).toEqual({ address: { socket_address: { address: "127.0.0.1", port_value: 19000 } } });
    const listener = b.static_resources.listeners.find((l) => l["name"] === "tether-admin-public");
    expect(listener!["address"]).toEqual({ socket_address: { address: "0.0.0.0", port_value: 9000 } });
    expect(listener!["drain_type"]).toBe("MODIFY_ONLY");
    const hcm = filterOf(listener);
    expect(hcm["@type"]).toBe(HCM_TYPE);
    expect(hcm["stat_prefix"]).toBe("tether_admin_public");
    expect(hcm["http_filters"]).toEqual([
      { name: "envoy.filters.http.router", typed_config: { "@type": ROUTER_TYPE } },
    ]);
    const routes = (hcm["route_config"] as { virtual_hosts: { routes: EnvoyObject[] }[] }).virtual_hosts[0]!
      .routes;
    expect(routes.map((r) => r["match"])).toEqual(
      ["/ready", "/stats/prometheus", "/metrics"].map((path) => ({
        path,
        headers: [{ name: ":method", string_match: { exact: "GET" } }],
      })),
    );
    expect(routes.every((r) => (r["route"] as EnvoyObject)["cluster"] === "tether-admin-local")).toBe(true);
    const cluster = b.static_resources.clusters.find((c) => c["name"] === "tether-admin-local");
    expect(cluster).toMatchObject({ type: "STATIC" });
    expect(cluster!["load_assignment"]).toEqual({
      cluster_name: "tether-admin-local",
      endpoints: [
        {
          priority: 0,
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: 19000 } } } },
          ],
        },
      ],
    });
    // Probes and the PodMonitor's tether-admin port stay on the public port.
    const sidecar = (
      renderAgent(input(spec, psc())).deployment.spec.template.spec.containers as Container[]
    )[1]!;
    expect(sidecar["ports"]).toEqual([{ name: "tether-admin", containerPort: 9000, protocol: "TCP" }]);
    expect(sidecar["readinessProbe"]).toMatchObject({ httpGet: { path: "/ready", port: 9000 } });
  });

  it("renders a route whose backend Service is missing as a 503 direct_response, without a cluster", () => {
    const missing = { name: "gone", spec: route({ match: { pathPrefix: "/gone/" } }), missingBackend: "wls" };
    const b = bootstrapOf(input(agent(), psc(), [missing, { name: "app", spec: route() }]));
    expect(b.static_resources.clusters.map((c) => c["name"])).toEqual([
      "policy-server",
      "route-app",
      "tether-admin-local",
    ]);
    const http = b.static_resources.listeners.find((l) => l["name"] === "http-8080");
    const routes = (filterOf(http)["route_config"] as { virtual_hosts: { routes: EnvoyObject[] }[] })
      .virtual_hosts[0]!.routes;
    // Most specific first, as any route: /gone/ is answered here and never reaches route-app's "/".
    expect(routes[0]).toEqual({
      name: "gone/any",
      match: { prefix: "/gone/" },
      direct_response: {
        status: 503,
        body: { inline_string: "ProxyRoute gone: backend Service wls does not exist\n" },
      },
    });
    expect(routes.slice(1).every((r) => (r["route"] as EnvoyObject)["cluster"] === "route-app")).toBe(true);
  });

  it("refuses a route on a TCP port the agent's containers declare, naming the port and the container", () => {
    const spec = agent({
      template: {
        spec: {
          containers: [
            {
              name: "web",
              image: "agent:1",
              ports: [{ containerPort: 8080 }, { containerPort: 5353, protocol: "UDP" }],
            },
          ],
          initContainers: [
            {
              name: "log-shipper",
              restartPolicy: "Always",
              ports: [{ name: "metrics", containerPort: 9100 }],
            },
            { name: "setup", ports: [{ containerPort: 7000 }] },
          ],
        },
      },
    });
    const reserved = reservedPorts(spec, psc());
    expect([...reserved.keys()].sort()).toEqual([15000, 44443, 8080, 9100, 9901]);
    const ctx = {
      namespace: "shop",
      agentName: "web",
      agentExists: true,
      reservedPorts: reserved,
      serviceExists: () => true,
    };
    // listenerPort defaults to 8080, the agent container's own port.
    const verdicts = evaluateRoutes(
      [
        { name: "app", spec: route() },
        { name: "metrics", spec: route({ listenerPort: 9100 }) },
        { name: "dns", spec: route({ listenerPort: 5353 }) },
        { name: "after-setup", spec: route({ listenerPort: 7000 }) },
      ],
      ctx,
    );
    expect(verdicts.map((v) => [v.route.name, v.accepted.reason, v.accepted.message])).toEqual([
      ["after-setup", "Accepted", "Served by Agent web on port 7000"],
      [
        "app",
        "PortConflict",
        "listenerPort 8080 is taken by container web (containerPort 8080) of Agent web",
      ],
      ["dns", "Accepted", "Served by Agent web on port 5353"],
      [
        "metrics",
        "PortConflict",
        "listenerPort 9100 is taken by container log-shipper (containerPort 9100) of Agent web",
      ],
    ]);
  });
});
