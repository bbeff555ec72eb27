import { describe, expect, it } from "vitest";
import { agent, broker, psc, route } from "../../test/fixtures/specs.ts";
import { agentEdsServices, renderAgentBootstrap } from "./agent-bootstrap.ts";
import { renderBroker, renderBrokerBootstrap, brokerEdsServices } from "./broker.ts";
import { renderAgent } from "./agent.ts";
import { LOCAL_ADMIN_CLUSTER, PUBLIC_ADMIN_LISTENER, type EnvoyObject } from "./envoy.ts";
import { dynamicListenersAndClusters, XDS_CLUSTER } from "./xds.ts";

const xds = { host: "tether-xds.tether-system.svc.cluster.local", port: 18000 };
const options = { sidecarImage: "sidecar:1", clusterDomain: "cluster.local", xds };

function agentInput(
  pscSpec = psc(),
  routes = [{ name: "app", spec: route({ backend: { serviceRef: { name: "app", port: 80 } } }) }],
) {
  return {
    name: "web",
    namespace: "team-a",
    spec: agent(),
    policyServers: { name: "ps", spec: pscSpec },
    routes,
    clusterDomain: "cluster.local",
    xds,
  };
}

type Bootstrap = EnvoyObject & { static_resources: { listeners: EnvoyObject[]; clusters: EnvoyObject[] } };

describe("bootstraps with xDS", () => {
  it("keep the full static config, add node, dynamic_resources and the tether_xds cluster", () => {
    const b = renderAgentBootstrap(agentInput()) as Bootstrap;
    expect(b["node"]).toEqual({ id: "team-a/web", cluster: "team-a/agent/web" });
    expect(b["dynamic_resources"]).toEqual({
      ads_config: {
        api_type: "GRPC",
        transport_api_version: "V3",
        grpc_services: [{ envoy_grpc: { cluster_name: "tether_xds" } }],
      },
      cds_config: { ads: {}, resource_api_version: "V3" },
      lds_config: { ads: {}, resource_api_version: "V3" },
    });
    const names = b.static_resources.clusters.map((c) => c["name"]);
    expect(names).toEqual(["policy-server", "route-app", LOCAL_ADMIN_CLUSTER, XDS_CLUSTER]);
    const policy = b.static_resources.clusters[0]!;
    expect(policy["type"]).toBe("STRICT_DNS"); // static: serves without the operator
    expect(b.static_resources.clusters[3]).toMatchObject({
      type: "STRICT_DNS",
      load_assignment: {
        endpoints: [
          {
            lb_endpoints: [
              { endpoint: { address: { socket_address: { address: xds.host, port_value: 18000 } } } },
            ],
          },
        ],
      },
      typed_extension_protocol_options: {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
          explicit_http_config: {
            http2_protocol_options: { connection_keepalive: { interval: "5s", timeout: "5s" } },
          },
        },
      },
    });
  });

  it("without options.xds the bootstrap is static only", () => {
    const b = renderAgentBootstrap({ ...agentInput(), xds: undefined });
    expect(b["dynamic_resources"]).toBeUndefined();
    expect((b as Bootstrap).static_resources.clusters.map((c) => c["name"])).not.toContain(XDS_CLUSTER);
  });

  it("the sidecar container takes its node id from the pod and its node cluster from the group", () => {
    const out = renderAgent({
      owner: { kind: "Agent", name: "web", namespace: "team-a", uid: "u" },
      spec: agent(),
      policyServers: { name: "ps", spec: psc() },
      routes: [],
      options,
    });
    // A native sidecar (an init container that keeps running) by default.
    const spec = out.deployment.spec.template.spec as { initContainers?: Record<string, unknown>[] };
    const sidecar = (spec.initContainers ?? []).find((c) => c["name"] === "tether-sidecar")!;
    const args = (sidecar["args"] as string[]).join(" ");
    expect(args).toMatch(/^--config \/etc\/tether\/sidecar\/envoy\.yaml /);
    expect(args).toContain("--service-node $(TETHER_NODE_ID) --service-cluster team-a/agent/web");
    expect(sidecar["env"]).toEqual([
      { name: "TETHER_POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
      { name: "TETHER_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "TETHER_NODE_ID", value: "$(TETHER_POD_NAMESPACE)/$(TETHER_POD_NAME)" },
    ]);
  });

  it("dynamic resources: no admin or xDS resources; in-cluster Services as EDS clusters", () => {
    const input = agentInput();
    const eds = agentEdsServices(input);
    expect(eds).toEqual([
      { cluster: "policy-server", namespace: "team-a", service: "ps", port: 44443 },
      { cluster: "route-app", namespace: "team-a", service: "app", port: 80 },
    ]);
    const { listeners, clusters } = dynamicListenersAndClusters(renderAgentBootstrap(input), eds);
    expect(listeners.map((l) => l["name"])).not.toContain(PUBLIC_ADMIN_LISTENER);
    expect(clusters.map((c) => c["name"])).toEqual(["policy-server", "route-app"]);
    for (const c of clusters) {
      expect(c["type"]).toBe("EDS");
      expect(c["load_assignment"]).toBeUndefined();
      expect(c["dns_refresh_rate"]).toBeUndefined();
      expect(c["eds_cluster_config"]).toEqual({
        eds_config: { ads: {}, resource_api_version: "V3" },
        service_name: c["name"],
      });
    }
    // Health checks and outlier detection travel unchanged.
    expect(clusters[0]!["health_checks"]).toBeDefined();
  });

  it("external policy servers keep their STATIC or STRICT_DNS cluster", () => {
    const external = psc({ managed: undefined, external: { servers: [{ host: "10.1.0.1", port: 9 }] } });
    const input = agentInput(external, []);
    expect(agentEdsServices(input)).toEqual([]);
    const { clusters } = dynamicListenersAndClusters(renderAgentBootstrap(input), []);
    expect(clusters[0]).toMatchObject({ name: "policy-server", type: "STATIC" });
  });

  it("a Broker: its serviceRef backends as EDS, its node cluster team-a/broker/<name>", () => {
    const owner = { kind: "Broker" as const, name: "b", namespace: "team-a", uid: "u" };
    const spec = broker({ backends: { serviceRef: { name: "tls", port: 443 } } });
    const b = renderBrokerBootstrap({ owner, spec, options }) as Bootstrap;
    expect(b["node"]).toEqual({ id: "team-a/b", cluster: "team-a/broker/b" });
    expect(brokerEdsServices({ owner, spec, options })).toEqual([
      { cluster: "backends", namespace: "team-a", service: "tls", port: 443 },
    ]);
    const sidecar = renderBroker({ owner, spec, options }).deployment.spec.template.spec.containers[0]!;
    expect(sidecar["args"]).toContain("team-a/broker/b");
  });
});
