import { describe, expect, it } from "vitest";
import { agent, broker, psc } from "../../test/fixtures/specs.ts";
import { agentSpec, brokerSpec } from "../api/index.ts";
import { renderAgent } from "./agent.ts";
import { renderBroker } from "./broker.ts";
import { parse } from "yaml";
import { ACCESS_LOG_JSON_FORMAT, sidecarDrainArgs } from "./lifecycle.ts";

type Container = Record<string, unknown> & { name: string };
const agentOwner = { kind: "Agent" as const, name: "web", namespace: "default", uid: "uid-1" };
const brokerOwner = { kind: "Broker" as const, name: "b", namespace: "default", uid: "uid-b" };
const options = { sidecarImage: "img", clusterDomain: "cluster.local" };

function agentPod(spec: Record<string, unknown>, nativeSidecar?: boolean): Record<string, unknown> {
  const out = renderAgent({
    owner: agentOwner,
    spec: agent(spec),
    policyServers: { name: "ps", spec: psc() },
    routes: [],
    options: nativeSidecar === undefined ? options : { ...options, nativeSidecar },
  });
  return out.deployment.spec.template.spec;
}

describe("native sidecar", () => {
  it("is the default: the sidecar is the first init container, restartPolicy Always, gated by a startupProbe on /ready", () => {
    const pod = agentPod({
      template: {
        spec: {
          initContainers: [{ name: "migrate", image: "m:1" }],
          containers: [{ name: "agent", image: "a:1" }],
        },
      },
    });
    const init = pod["initContainers"] as Container[];
    expect(init.map((c) => c.name)).toEqual(["tether-sidecar", "migrate"]);
    expect(init[0]!["restartPolicy"]).toBe("Always");
    expect(init[0]!["startupProbe"]).toMatchObject({ httpGet: { path: "/ready", port: 9901 } });
    expect(init[1]!["restartPolicy"]).toBeUndefined();
    expect((pod["containers"] as Container[]).map((c) => c.name)).toEqual(["agent"]);
  });

  it("falls back to a plain container, and replaces a sidecar the template already had", () => {
    const pod = agentPod(
      {
        template: {
          spec: {
            initContainers: [{ name: "tether-sidecar", image: "old" }],
            containers: [{ name: "agent", image: "a:1" }],
          },
        },
      },
      false,
    );
    expect(pod["initContainers"]).toEqual([]);
    expect((pod["containers"] as Container[]).map((c) => c.name)).toEqual(["agent", "tether-sidecar"]);
    expect((pod["containers"] as Container[])[1]!["restartPolicy"]).toBeUndefined();
    expect(agentPod({}, false)["initContainers"]).toBeUndefined();
  });
});

describe("termination and drain", () => {
  it("sets the grace period from the Agent, else the template, else 30 s, and the sidecar's flags to fit it", () => {
    const pod = agentPod({
      terminationGracePeriodSeconds: 45,
      sidecar: { drain: { drainTime: "10s", strategy: "immediate" } },
    });
    expect(pod["terminationGracePeriodSeconds"]).toBe(45);
    const sidecar = (pod["initContainers"] as Container[])[0]!;
    expect(sidecar["args"]).toEqual([
      "--config",
      "/etc/tether/sidecar/envoy.yaml",
      "--drain-time-s",
      "10",
      "--drain-strategy",
      "immediate",
      "--parent-shutdown-time-s",
      "45",
    ]);
    const fromTemplate = agentPod({
      template: { spec: { terminationGracePeriodSeconds: 20, containers: [{ name: "agent", image: "a" }] } },
    });
    expect(fromTemplate["terminationGracePeriodSeconds"]).toBe(20);
    expect(agentPod({})["terminationGracePeriodSeconds"]).toBe(30);
  });

  it("never gives the sidecar a shutdown deadline shorter than its drain time", () => {
    expect(sidecarDrainArgs({ drainTime: "1500ms", strategy: "gradual" }, 1)).toEqual([
      "--drain-time-s",
      "1.5",
      "--drain-strategy",
      "gradual",
      "--parent-shutdown-time-s",
      "1.5",
    ]);
  });

  it("refuses a drain time not shorter than the grace period, naming both fields", () => {
    const base = {
      policyServerClusterRef: { name: "ps" },
      template: { spec: { containers: [{ name: "a" }] } },
    };
    const bad = agentSpec.safeParse({
      ...base,
      terminationGracePeriodSeconds: 5,
      sidecar: { drain: { drainTime: "5s" } },
    });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toBe(
      "sidecar.drain.drainTime must be shorter than terminationGracePeriodSeconds",
    );
    expect(
      agentSpec.safeParse({
        ...base,
        terminationGracePeriodSeconds: 6,
        sidecar: { drain: { drainTime: "5s" } },
      }).success,
    ).toBe(true);
    const b = brokerSpec.safeParse({
      port: 1,
      backends: { servers: [{ host: "h", port: 2 }] },
      terminationGracePeriodSeconds: 2,
      sidecar: { drain: { drainTime: "3s" } },
    });
    expect(b.success).toBe(false);
  });
});

describe("Broker podTemplate", () => {
  it("places and sizes the broker pods; the operator's own fields win", () => {
    const spec = broker({
      podTemplate: {
        metadata: { labels: { team: "edge", "app.kubernetes.io/instance": "nope" }, annotations: { a: "1" } },
        resources: { requests: { cpu: "100m" } },
        nodeSelector: { zone: "a" },
        tolerations: [{ key: "dedicated", operator: "Equal", value: "edge", effect: "NoSchedule" }],
        affinity: { nodeAffinity: {} },
        imagePullSecrets: [{ name: "regcred" }],
        priorityClassName: "high",
      },
      terminationGracePeriodSeconds: 20,
    });
    const tpl = renderBroker({ owner: brokerOwner, spec, options }).deployment.spec.template;
    expect(tpl.metadata.labels).toMatchObject({ team: "edge", "app.kubernetes.io/instance": "b" });
    expect(tpl.metadata.annotations).toMatchObject({ a: "1" });
    expect(tpl.spec).toMatchObject({
      nodeSelector: { zone: "a" },
      tolerations: [{ key: "dedicated", operator: "Equal", value: "edge", effect: "NoSchedule" }],
      affinity: { nodeAffinity: {} },
      imagePullSecrets: [{ name: "regcred" }],
      priorityClassName: "high",
      terminationGracePeriodSeconds: 20,
    });
    const [sidecar] = tpl.spec.containers as Container[];
    expect(sidecar!["resources"]).toEqual({ requests: { cpu: "100m" } });
    expect(sidecar!["args"]).toContain("--parent-shutdown-time-s");
    // A Broker pod is the sidecar alone: it stays a regular container.
    expect(sidecar!["restartPolicy"]).toBeUndefined();
  });
});

describe("access logs", () => {
  type Listener = { name: string; filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[] };
  const listenersOf = (yaml: string): Listener[] =>
    (parse(yaml) as { static_resources: { listeners: Listener[] } }).static_resources.listeners;
  const terminal = (l: Listener): Record<string, unknown> => l.filter_chains[0]!.filters.at(-1)!.typed_config;

  it("are off by default", () => {
    const out = renderAgent({
      owner: agentOwner,
      spec: agent(),
      policyServers: { name: "ps", spec: psc() },
      routes: [],
      options,
    });
    for (const l of listenersOf(out.sidecarConfig.data["envoy.yaml"]!))
      expect(terminal(l)["access_log"]).toBeUndefined();
  });

  it("go on every listener but the public admin one: JSON to stdout by default", () => {
    const out = renderAgent({
      owner: agentOwner,
      spec: agent({ sidecar: { accessLog: { enabled: true } } }),
      policyServers: { name: "ps", spec: psc() },
      routes: [],
      options,
    });
    const listeners = listenersOf(out.sidecarConfig.data["envoy.yaml"]!);
    const policy = listeners.find((l) => l.name === "policy-server")!;
    expect(terminal(policy)["access_log"]).toEqual([
      {
        name: "envoy.access_loggers.stdout",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
          log_format: {
            json_format: ACCESS_LOG_JSON_FORMAT,
          },
        },
      },
    ]);
    expect(terminal(listeners.find((l) => l.name === "tether-admin-public")!)["access_log"]).toBeUndefined();
  });

  it("on a Broker: Envoy's default text line to a file", () => {
    const out = renderBroker({
      owner: brokerOwner,
      spec: broker({
        sidecar: { accessLog: { enabled: true, format: "text", path: "/var/log/access.log" } },
      }),
      options,
    });
    const listeners = listenersOf(out.sidecarConfig.data["envoy.yaml"]!);
    expect(terminal(listeners[0]!)["access_log"]).toEqual([
      {
        name: "envoy.access_loggers.file",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
          path: "/var/log/access.log",
        },
      },
    ]);
    // The root filesystem is read-only: the log's directory is an emptyDir.
    const pod = out.deployment.spec.template.spec;
    expect(pod["volumes"]).toContainEqual({ name: "tether-access-log", emptyDir: {} });
    expect((pod.containers[0] as Container)["volumeMounts"]).toContainEqual({
      name: "tether-access-log",
      mountPath: "/var/log",
    });
  });
});
