import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { broker } from "../../test/fixtures/specs.ts";
import {
  brokerAdminPort,
  brokerLocalAdminPort,
  renderBroker,
  renderBrokerBootstrap,
  TLS_HEALTH_CHECK_SOCKET,
} from "./broker.ts";
import {
  PROXY_PROTOCOL_UPSTREAM_TYPE,
  RAW_BUFFER_TYPE,
  TCP_PROXY_TYPE,
  UPSTREAM_TLS_TYPE,
} from "@tether/envoy";
import { type EnvoyObject } from "./envoy.ts";

const owner = { kind: "Broker" as const, name: "appserver-broker", namespace: "default", uid: "uid-b" };
const options = { sidecarImage: "localhost/tether/sidecar:0.1.0", clusterDomain: "cluster.local" };

interface Bootstrap {
  admin: EnvoyObject;
  static_resources: {
    listeners: { address: EnvoyObject; filter_chains: { filters: { typed_config: EnvoyObject }[] }[] }[];
    clusters: EnvoyObject[];
  };
}

describe("renderBroker", () => {
  it("renders a Deployment running the sidecar alone, a Service and the sidecar ConfigMap", () => {
    const out = renderBroker({
      owner,
      spec: broker({ replicas: 2, service: { type: "NodePort", port: 30001 } }),
      options,
    });
    expect(out.deployment.metadata.name).toBe("appserver-broker");
    expect(out.service.metadata.name).toBe("appserver-broker");
    expect(out.sidecarConfig.metadata.name).toBe("appserver-broker-sidecar");
    expect(out.deployment.metadata.labels["app.kubernetes.io/component"]).toBe("broker");
    expect(out.deployment.spec.replicas).toBe(2);
    const containers = out.deployment.spec.template.spec.containers as EnvoyObject[];
    expect(containers.map((c) => c["name"])).toEqual(["tether-sidecar"]);
    expect(containers[0]!["ports"]).toEqual([
      { name: "tether-admin", containerPort: 9901, protocol: "TCP" },
      { name: "broker", containerPort: 20001, protocol: "TCP" },
    ]);
    expect(containers[0]!["readinessProbe"]).toMatchObject({ httpGet: { path: "/ready", port: 9901 } });
    expect(out.service.spec).toEqual({
      type: "NodePort",
      selector: out.deployment.spec.selector.matchLabels,
      ports: [{ name: "broker", port: 30001, targetPort: 20001, protocol: "TCP" }],
    });
  });

  it("sets the sidecar's imagePullPolicy from the operator's option", () => {
    const out = renderBroker({
      owner,
      spec: broker(),
      options: { ...options, sidecarImagePullPolicy: "IfNotPresent" },
    });
    const containers = out.deployment.spec.template.spec.containers as EnvoyObject[];
    expect(containers[0]!["imagePullPolicy"]).toBe("IfNotPresent");
  });

  it("renders a tcp_proxy listener on all interfaces to health-checked backends", () => {
    const spec = broker({
      backends: {
        servers: [
          { host: "app-0.app", port: 50001 },
          { host: "app-1.app", port: 50001, priority: 1 },
        ],
      },
      balance: "leastConnections",
      healthCheck: { type: "tls", interval: "5s", timeout: "2s" },
      idleTimeout: "1h",
    });
    const b = parse(renderBroker({ owner, spec, options }).sidecarConfig.data["envoy.yaml"]!) as Bootstrap;
    const listener = b.static_resources.listeners[0]!;
    expect(listener.address).toEqual({ socket_address: { address: "0.0.0.0", port_value: 20001 } });
    expect(listener.filter_chains[0]!.filters[0]!.typed_config).toEqual({
      "@type": TCP_PROXY_TYPE,
      stat_prefix: "broker",
      cluster: "backends",
      idle_timeout: "3600s",
      max_connect_attempts: 3,
      backoff_options: { base_interval: "0.100s", max_interval: "1s" },
    });
    expect(b.static_resources.clusters[0]).toMatchObject({
      name: "backends",
      type: "STRICT_DNS",
      lb_policy: "LEAST_REQUEST",
      close_connections_on_host_health_failure: true,
      health_checks: [{ interval: "5s", timeout: "2s", tcp_health_check: {} }],
    });
    expect(b.static_resources.clusters[0]!["transport_socket"]).toBeUndefined();
  });

  it("resolves a serviceRef by DNS and adds PROXY protocol v2 when asked", () => {
    const spec = broker({
      backends: { serviceRef: { name: "appserver", port: 50001 } },
      proxyProtocol: "v2",
    });
    const b = parse(renderBroker({ owner, spec, options }).sidecarConfig.data["envoy.yaml"]!) as Bootstrap;
    const c = b.static_resources.clusters[0]!;
    expect(JSON.stringify(c["load_assignment"])).toContain("appserver.default.svc.cluster.local");
    expect(c["transport_socket"]).toMatchObject({
      typed_config: { "@type": PROXY_PROTOCOL_UPSTREAM_TYPE, config: { version: "V2" } },
    });
  });

  it("renders a tls health check as a tcp check over a TLS socket picked by transport_socket_matches", () => {
    const spec = broker({ healthCheck: { type: "tls", interval: "5s", timeout: "2s" } });
    const b = parse(renderBroker({ owner, spec, options }).sidecarConfig.data["envoy.yaml"]!) as Bootstrap;
    const c = b.static_resources.clusters[0]!;
    // The data path stays raw TCP (passthrough): no cluster transport socket.
    expect(c["transport_socket"]).toBeUndefined();
    expect(c["health_checks"]).toEqual([
      {
        timeout: "2s",
        interval: "5s",
        no_traffic_interval: "5s",
        unhealthy_interval: "0.250s",
        unhealthy_edge_interval: "0.250s",
        healthy_edge_interval: "0.250s",
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        tcp_health_check: {},
        transport_socket_match_criteria: { tether_health_check: "tls" },
      },
    ]);
    expect(c["transport_socket_matches"]).toEqual([
      {
        name: TLS_HEALTH_CHECK_SOCKET,
        match: { tether_health_check: "tls" },
        transport_socket: {
          name: "envoy.transport_sockets.tls",
          typed_config: { "@type": UPSTREAM_TLS_TYPE, common_tls_context: {} },
        },
      },
    ]);
  });

  it("renders a tcp health check without transport socket matches", () => {
    const b = parse(
      renderBroker({ owner, spec: broker({ healthCheck: { type: "tcp" } }), options }).sidecarConfig.data[
        "envoy.yaml"
      ]!,
    ) as Bootstrap;
    const c = b.static_resources.clusters[0]!;
    expect(c["transport_socket_matches"]).toBeUndefined();
    expect((c["health_checks"] as EnvoyObject[])[0]).not.toHaveProperty("transport_socket_match_criteria");
    expect((c["health_checks"] as EnvoyObject[])[0]).toHaveProperty("tcp_health_check", {});
  });

  it("sends the PROXY v2 header before the tls check's handshake too", () => {
    const spec = broker({ healthCheck: { type: "tls" }, proxyProtocol: "v2" });
    const b = parse(renderBroker({ owner, spec, options }).sidecarConfig.data["envoy.yaml"]!) as Bootstrap;
    const c = b.static_resources.clusters[0]!;
    const proxy = (inner: string): EnvoyObject => ({
      name: "envoy.transport_sockets.upstream_proxy_protocol",
      typed_config: {
        "@type": PROXY_PROTOCOL_UPSTREAM_TYPE,
        config: { version: "V2" },
        transport_socket: { typed_config: expect.objectContaining({ "@type": inner }) as unknown },
      },
    });
    expect(c["transport_socket"]).toMatchObject(proxy(RAW_BUFFER_TYPE));
    expect((c["transport_socket_matches"] as EnvoyObject[])[0]).toMatchObject({
      name: TLS_HEALTH_CHECK_SOCKET,
      transport_socket: proxy(UPSTREAM_TLS_TYPE),
    });
  });

  it("moves the admin ports off the broker's own port", () => {
    expect(brokerAdminPort(broker({ port: 9901 }))).toBe(9902);
    expect(brokerAdminPort(broker())).toBe(9901);
    expect(brokerLocalAdminPort(broker({ port: 15000 }))).toBe(15001);
    expect(brokerLocalAdminPort(broker())).toBe(15000);
  });

  it("keeps the full admin on loopback and serves its read-only paths on the public admin port", () => {
    const b = renderBrokerBootstrap({ owner, spec: broker(), options }) as unknown as Bootstrap;
    expect(b.admin).toEqual({ address: { socket_address: { address: "127.0.0.1", port_value: 15000 } } });
    const publicAdmin = b.static_resources.listeners[1]!;
    expect(publicAdmin.address).toEqual({ socket_address: { address: "0.0.0.0", port_value: 9901 } });
    const hcm = publicAdmin.filter_chains[0]!.filters[0]!.typed_config;
    const routes = (hcm["route_config"] as { virtual_hosts: { routes: { match: { path: string } }[] }[] })
      .virtual_hosts[0]!.routes;
    expect(routes.map((r) => r.match.path)).toEqual(["/ready", "/stats/prometheus", "/metrics"]);
    expect(b.static_resources.clusters.map((c) => c["name"])).toEqual(["backends", "tether-admin-local"]);
  });
});
