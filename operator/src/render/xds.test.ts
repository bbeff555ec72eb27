import { packResource, TYPE_URLS, unpackResource } from "@tether/xds";
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
        grpc_services: [
          {
            envoy_grpc: {
              cluster_name: "tether_xds",
              retry_policy: { retry_back_off: { base_interval: "0.25s", max_interval: "5s" } },
            },
          },
        ],
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

  it("with TLS: tether_xds trusts the mounted bundle and checks the Service's name; only the sidecar mounts it", () => {
    const tls = { ...xds, tls: true };
    const b = renderAgentBootstrap({ ...agentInput(), xds: tls }) as Bootstrap;
    expect(b.static_resources.clusters.find((c) => c["name"] === XDS_CLUSTER)?.["transport_socket"]).toEqual({
      name: "envoy.transport_sockets.tls",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        sni: xds.host,
        common_tls_context: {
          validation_context: {
            trusted_ca: { filename: "/etc/tether/xds-ca/ca.crt" },
            match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: xds.host } }],
          },
        },
      },
    });
    // Without TLS the cluster is plaintext.
    const plain = renderAgentBootstrap(agentInput()) as Bootstrap;
    expect(
      plain.static_resources.clusters.find((c) => c["name"] === XDS_CLUSTER)?.["transport_socket"],
    ).toBeUndefined();

    type Spec = { initContainers?: EnvoyObject[]; containers: EnvoyObject[]; volumes: EnvoyObject[] };
    const mounts = (spec: Spec): string[] =>
      [...(spec.initContainers ?? []), ...spec.containers]
        .filter((c) => (c["volumeMounts"] as EnvoyObject[]).some((m) => m["name"] === "tether-xds-ca"))
        .map((c) => String(c["name"]));
    const owner = { kind: "Agent" as const, name: "web", namespace: "team-a", uid: "u" };
    const agentPod = renderAgent({
      owner,
      spec: agent(),
      policyServers: { name: "ps", spec: psc() },
      routes: [],
      options: { ...options, xds: tls },
    }).deployment.spec.template.spec as Spec;
    expect(mounts(agentPod)).toEqual(["tether-sidecar"]);
    expect(agentPod.volumes).toContainEqual({ name: "tether-xds-ca", configMap: { name: "tether-xds-ca" } });
    const brokerPod = renderBroker({
      owner: { ...owner, kind: "Broker", name: "b" },
      spec: broker(),
      options: { ...options, xds: tls },
    }).deployment.spec.template.spec as Spec;
    expect(mounts(brokerPod)).toEqual(["tether-sidecar"]);
    expect(brokerPod.volumes).toContainEqual({ name: "tether-xds-ca", configMap: { name: "tether-xds-ca" } });
  });

  it("without options.xds the bootstrap is static only", () => {
    const b = renderAgentBootstrap({ ...agentInput(), xds: undefined });
    expect(b["dynamic_resources"]).toBeUndefined();
    expect((b as Bootstrap).static_resources.clusters.map((c) => c["name"])).not.toContain(XDS_CLUSTER);
  });

  it("the access log travels in the dynamic listeners too, not only in the ConfigMap", () => {
    const input = { ...agentInput(), spec: agent({ sidecar: { accessLog: { enabled: true } } }) };
    const { listeners } = dynamicListenersAndClusters(renderAgentBootstrap(input), agentEdsServices(input));
    expect(listeners.length).toBeGreaterThan(0);
    for (const l of listeners) {
      expect(JSON.stringify(l)).toContain("envoy.access_loggers.stdout");
      // LDS carries it as protobuf: the access loggers' types are in the xDS descriptor.
      const packed = packResource(TYPE_URLS.listener, l, "listener");
      expect(JSON.stringify(unpackResource(TYPE_URLS.listener, packed.value))).toContain("%DURATION%");
    }
    const owner = { kind: "Broker" as const, name: "b", namespace: "team-a", uid: "u" };
    const spec = broker({ sidecar: { accessLog: { enabled: true } } });
    const b = dynamicListenersAndClusters(renderBrokerBootstrap({ owner, spec, options }), []);
    expect(JSON.stringify(b.listeners)).toContain("envoy.access_loggers.stdout");
  });

  it("sidecar.xds.enabled false: a static bootstrap and no xDS node cluster, even when the operator serves xDS", () => {
    const owner = { kind: "Agent" as const, name: "web", namespace: "team-a", uid: "u" };
    const spec = agent({ sidecar: { xds: { enabled: false } } });
    const out = renderAgent({ owner, spec, policyServers: { name: "ps", spec: psc() }, routes: [], options });
    expect(out.sidecarConfig.data["envoy.yaml"]).not.toContain("dynamic_resources");
    const pod = out.deployment.spec.template.spec as { initContainers?: Record<string, unknown>[] };
    const sidecar = (pod.initContainers ?? []).find((c) => c["name"] === "tether-sidecar")!;
    expect((sidecar["args"] as string[]).join(" ")).not.toContain("--service-cluster");
    // The default subscribes.
    const subscribed = renderAgent({
      owner,
      spec: agent(),
      policyServers: { name: "ps", spec: psc() },
      routes: [],
      options,
    });
    expect(subscribed.sidecarConfig.data["envoy.yaml"]).toContain("dynamic_resources");

    const bOwner = { kind: "Broker" as const, name: "b", namespace: "team-a", uid: "u" };
    const bSpec = broker({ sidecar: { xds: { enabled: false } } });
    expect(
      renderBrokerBootstrap({ owner: bOwner, spec: bSpec, options })["dynamic_resources"],
    ).toBeUndefined();
    const bSidecar = renderBroker({ owner: bOwner, spec: bSpec, options }).deployment.spec.template.spec
      .containers[0]!;
    expect((bSidecar["args"] as string[]).join(" ")).not.toContain("--service-cluster");
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

  it("with tokenAuth, a Broker's pod gets the projected token volume, mounted and passed to the sidecar", () => {
    const owner = { kind: "Broker" as const, name: "b", namespace: "team-a", uid: "u" };
    const spec = broker({ backends: { serviceRef: { name: "tls", port: 443 } } });
    const render = (tokenAuth: boolean) =>
      renderBroker({ owner, spec, options: { ...options, xds: { ...xds, tokenAuth } } }).deployment.spec
        .template.spec;
    const pod = render(true);
    expect(pod["volumes"]).toContainEqual({
      name: "tether-xds-token",
      projected: {
        sources: [{ serviceAccountToken: { audience: "tether", expirationSeconds: 600, path: "token" } }],
      },
    });
    const sidecar = pod.containers[0]!;
    expect((sidecar["args"] as string[]).join(" ")).toContain(
      "--xds-token-file /var/run/secrets/tether.dev/xds/token",
    );
    expect(sidecar["volumeMounts"]).toContainEqual({
      name: "tether-xds-token",
      mountPath: "/var/run/secrets/tether.dev/xds",
      readOnly: true,
    });
    // Without it (chart xds.auth.enabled=false), no token is projected at all.
    expect(JSON.stringify(render(false))).not.toContain("tether-xds-token");
  });
});
