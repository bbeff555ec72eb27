import { describe, expect, it } from "vitest";
import { policyServerClusterSpec } from "../../../operator/src/api/policy-server-cluster.ts";
import { parse } from "yaml";
import { parseAllDocuments } from "yaml";
import {
  AGENT_PORT,
  BROKER,
  CA_MOUNT,
  PROXY_PORT,
  TLS_BACKEND_PORT,
  TLS_MOUNT,
  agent,
  agentService,
  broker,
  caConfigMap,
  caSecret,
  clientPod,
  demoImage,
  httpBackends,
  podsOf,
  policyServerCluster,
  prefixRoute,
  proxyRoutes,
  tlsBackends,
  tlsSecret,
} from "./fixtures.ts";

describe("scenario fixtures (from examples/quick-start)", () => {
  it("scales the policy servers and keeps the rest of the example", () => {
    const psc = parse(policyServerCluster({ replicas: 3 })) as {
      kind: string;
      metadata: { name: string };
      spec: { managed: { replicas: number; template: unknown }; healthCheck: { type: string } };
    };
    expect(psc.kind).toBe("PolicyServerCluster");
    expect(psc.metadata.name).toBe("ps-main");
    expect(psc.spec.managed.replicas).toBe(3);
    expect(psc.spec.healthCheck.type).toBe("http");
  });

  it("serves the policy servers over HTTPS from a mounted Secret, verified by the agents (S13)", () => {
    const tls = { certSecret: "ps-tls", caSecret: "ps-ca", serverName: "ps.tether.test" };
    const psc = parse(policyServerCluster({ replicas: 2, tls })) as {
      spec: {
        tls: unknown;
        managed: { template: { spec: { containers: Record<string, unknown>[]; volumes: unknown[] } } };
      };
    };
    // What the API server (and the operator) accept: the fixture is a valid spec.
    expect(policyServerClusterSpec.safeParse(psc.spec).success).toBe(true);
    expect(psc.spec.tls).toEqual({
      enabled: true,
      caSecretRef: { name: "ps-ca", key: "ca.crt" },
      serverName: "ps.tether.test",
    });
    const pod = psc.spec.managed.template.spec;
    expect(pod.containers[0]?.["args"]).toEqual(
      ["policy-server", "--port", "8080", "--protocol", "http"].concat([
        "--tls-cert",
        `${TLS_MOUNT}/tls.crt`,
        "--tls-key",
        `${TLS_MOUNT}/tls.key`,
      ]),
    );
    expect(pod.containers[0]?.["readinessProbe"]).toMatchObject({ httpGet: { scheme: "HTTPS" } });
    expect(pod.containers[0]?.["volumeMounts"]).toEqual([
      { name: "tls", mountPath: TLS_MOUNT, readOnly: true },
    ]);
    expect(pod.volumes).toEqual([{ name: "tls", secret: { secretName: "ps-tls" } }]);
    expect(parse(caSecret("ps-ca", "PEM"))).toMatchObject({
      kind: "Secret",
      stringData: { "ca.crt": "PEM" },
    });
    const a = parse(agent({ pool: { maxRequestsPerConnection: 20 } })) as { spec: { pool: unknown } };
    expect(a.spec.pool).toEqual({ maxRequestsPerConnection: 20 });
  });

  it("runs one agent replica, without the decision cache, against the named cluster", () => {
    const a = parse(agent({ policyServerCluster: "ps-other" })) as {
      kind: string;
      spec: { replicas: number; cache: unknown; policyServerClusterRef: unknown; listener: { port: number } };
    };
    expect(a.kind).toBe("Agent");
    expect(a.spec.replicas).toBe(1);
    expect(a.spec.cache).toEqual({ enabled: false });
    expect(a.spec.policyServerClusterRef).toEqual({ name: "ps-other" });
    expect(a.spec.listener.port).toBe(15001);
  });

  it("selects pods by the child labels", () => {
    expect(podsOf("web", "agent")).toBe("app.kubernetes.io/instance=web,app.kubernetes.io/component=agent");
  });

  it("routes /app/ (sticky) and *.jsp from the agent's sidecar to the demo servers", () => {
    const routes = parseAllDocuments(proxyRoutes()).map(
      (d) => d.toJS() as { metadata: { name: string }; spec: Record<string, unknown> },
    );
    expect(routes.map((r) => r.metadata.name)).toEqual(["app", "pages"]);
    expect(routes[0]?.spec).toMatchObject({
      agentRef: { name: "web" },
      match: { pathPrefix: "/app/" },
      rewrite: { pathTrim: "/app" },
      sessionAffinity: { cookieName: "JSESSIONID" },
      backend: { serviceRef: { name: "ps-main", port: 8080 } },
    });
    expect(routes[1]?.spec["match"]).toEqual({ extensions: ["jsp"] });
  });

  it("moves one route to a new prefix, trimmed, to the demo HTTP backends (S9)", () => {
    const route = parse(prefixRoute({ name: "s9", prefix: "/v7/" })) as {
      kind: string;
      metadata: { name: string };
      spec: Record<string, unknown>;
    };
    expect(route.kind).toBe("ProxyRoute");
    expect(route.metadata.name).toBe("s9");
    expect(route.spec).toMatchObject({
      agentRef: { name: "web" },
      listenerPort: PROXY_PORT,
      match: { pathPrefix: "/v7/" },
      rewrite: { pathTrim: "/v7" },
      backend: { serviceRef: { name: "app", port: 8080 } },
    });
  });
});

describe("scenario fixtures for the client pod, S6 and S7", () => {
  type Doc = { kind: string; metadata: { name: string }; spec: Record<string, unknown> } & Record<
    string,
    unknown
  >;
  const docs = (text: string): Doc[] => parseAllDocuments(text).map((d) => d.toJS() as Doc);

  it("runs the client as the demo image's idle role, restricted, with the CA mounted when asked", () => {
    const pod = parse(
      clientPod({ mounts: [{ name: "ca", mountPath: CA_MOUNT, configMap: "appserver-ca" }] }),
    ) as Doc;
    expect(pod.kind).toBe("Pod");
    expect(pod.metadata.name).toBe("client");
    const [container] = pod.spec["containers"] as Record<string, unknown>[];
    expect(container).toMatchObject({
      image: demoImage(),
      args: ["idle"],
      securityContext: { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
      volumeMounts: [{ name: "ca", mountPath: CA_MOUNT, readOnly: true }],
    });
    expect(pod.spec["volumes"]).toEqual([{ name: "ca", configMap: { name: "appserver-ca" } }]);
    expect(demoImage()).toMatch(/^localhost\/tether\/demo:/);
  });

  it("puts a Service named like the Agent in front of its pods: agent and proxy ports", () => {
    const svc = parse(agentService()) as Doc;
    expect(svc.metadata.name).toBe("web");
    expect(svc.spec["selector"]).toEqual({
      "app.kubernetes.io/instance": "web",
      "app.kubernetes.io/component": "agent",
    });
    expect((svc.spec["ports"] as { port: number }[]).map((p) => p.port)).toEqual([AGENT_PORT, PROXY_PORT]);
  });

  it("makes bare TLS backend pods with their own Secret, behind a headless Service", () => {
    const [svc, ...pods] = docs(tlsBackends());
    expect(svc).toMatchObject({
      kind: "Service",
      metadata: { name: "appserver" },
      spec: { clusterIP: "None" },
    });
    expect(pods.map((p) => p.metadata.name)).toEqual(["appserver-0", "appserver-1"]);
    expect(pods[1]?.spec).toMatchObject({
      hostname: "appserver-1",
      subdomain: "appserver",
      restartPolicy: "Never",
      volumes: [{ name: "tls", secret: { secretName: "appserver-1-tls" } }],
    });
    const [container] = pods[1]?.spec["containers"] as { args: string[] }[];
    expect(container?.args.slice(0, 3)).toEqual(["tls-backend", "--port", String(TLS_BACKEND_PORT)]);
    expect(container?.args).toContain(`${TLS_MOUNT}/tls.key`);
  });

  it("points the quick-start Broker at the backends' Service, with quick health checks", () => {
    const b = parse(broker()) as Doc;
    expect(b.kind).toBe("Broker");
    expect(b.metadata.name).toBe(BROKER.name);
    expect(b.spec["port"]).toBe(BROKER.port);
    expect(b.spec["backends"]).toEqual({ serviceRef: { name: "appserver", port: TLS_BACKEND_PORT } });
    expect(b.spec["tls"]).toEqual({ mode: "passthrough" });
    expect(b.spec["healthCheck"]).toMatchObject({ type: "tls", interval: "1s" });
  });

  it("serves demo HTTP backends for the proxy routes, and TLS Secrets and the CA", () => {
    const [svc, pod] = docs(httpBackends());
    expect(svc?.metadata.name).toBe("app");
    expect((pod?.spec["containers"] as { args: string[] }[])[0]?.args[0]).toBe("policy-server");
    expect(parse(tlsSecret("s", "C", "K"))).toMatchObject({
      type: "kubernetes.io/tls",
      stringData: { "tls.crt": "C", "tls.key": "K" },
    });
    expect(parse(caConfigMap("ca", "PEM"))).toMatchObject({ kind: "ConfigMap", data: { "ca.crt": "PEM" } });
  });

  it("turns the decision cache on with a ttl when asked", () => {
    const a = parse(agent({ cache: { ttl: "10s" } })) as Doc;
    expect(a.spec["cache"]).toEqual({ enabled: true, ttl: "10s", notifications: true });
  });
});
