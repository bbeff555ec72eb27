import { describe, expect, it } from "vitest";
import { agent, psc } from "../../test/fixtures/specs.ts";
import type { AgentSpec, PolicyServerClusterSpec } from "../api/index.ts";
import type { JsonObject } from "../render/index.ts";
import {
  containedIn,
  injectionPatch,
  requestedAgent,
  type InjectionInput,
  type JsonPatchOperation,
} from "./inject.ts";

type Container = JsonObject & { name: string; env?: { name: string; value?: string }[] };
type Volume = JsonObject & { name: string };

const owner = { kind: "Agent" as const, name: "web", namespace: "shop", uid: "uid-web" };
const options = { sidecarImage: "registry.test/tether/sidecar:1", clusterDomain: "cluster.local" };

function input(
  spec: AgentSpec = agent(),
  pscSpec: PolicyServerClusterSpec = psc(),
  nativeSidecar?: boolean,
): InjectionInput {
  return {
    owner,
    spec,
    policyServers: { name: "ps", spec: pscSpec },
    routes: [],
    options: nativeSidecar === undefined ? options : { ...options, nativeSidecar },
  };
}

/** A Deployment's pod as the API server hands it to the webhook (already defaulted). */
function userPod(): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: "shop-web-7d9f-",
      namespace: "shop",
      labels: { app: "shop-web", "pod-template-hash": "7d9f" },
      annotations: { "tether.dev/agent": "web" },
    },
    spec: {
      containers: [
        {
          name: "httpd",
          image: "httpd:2.4",
          env: [{ name: "LANG", value: "C" }],
          terminationMessagePath: "/dev/termination-log",
          imagePullPolicy: "IfNotPresent",
        },
      ],
      volumes: [{ name: "html", emptyDir: {} }],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
    },
  };
}

/** RFC 6902 `add` at /spec/<field>, the only operation the injection emits. */
function applyPatch(pod: JsonObject, patch: readonly JsonPatchOperation[]): JsonObject {
  const out = structuredClone(pod);
  for (const op of patch) {
    const [, first, field, ...rest] = op.path.split("/");
    expect(op.op).toBe("add");
    expect(first).toBe("spec");
    expect(rest).toEqual([]);
    (out["spec"] as JsonObject)[field!] = structuredClone(op.value);
  }
  return out;
}

/** What the API server's defaulting adds to what we inject (a few of its fields). */
function defaulted(pod: JsonObject): JsonObject {
  const out = structuredClone(pod);
  const spec = out["spec"] as { initContainers?: Container[]; containers: Container[]; volumes?: Volume[] };
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    c["terminationMessagePath"] ??= "/dev/termination-log";
    c["terminationMessagePolicy"] ??= "File";
    for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
      const p = c[probe] as { httpGet?: JsonObject; successThreshold?: number } | undefined;
      if (p?.httpGet !== undefined) {
        p.httpGet["scheme"] = "HTTP";
        p.successThreshold = 1;
      }
    }
  }
  for (const v of spec.volumes ?? []) {
    const source = (v["configMap"] ?? v["secret"]) as JsonObject | undefined;
    if (source !== undefined) source["defaultMode"] = 420;
  }
  return out;
}

const specOf = (
  pod: JsonObject,
): { initContainers?: Container[]; containers: Container[]; volumes: Volume[] } =>
  pod["spec"] as { initContainers?: Container[]; containers: Container[]; volumes: Volume[] };
const envOf = (c: Container | undefined): Record<string, string | undefined> =>
  Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));

describe("sidecar injection", () => {
  it("adds the native sidecar, its config volume and the agent environment, leaving metadata alone", () => {
    const patch = injectionPatch(userPod(), input());
    expect(patch.every((op) => op.path.startsWith("/spec/"))).toBe(true);
    const pod = applyPatch(userPod(), patch);
    const spec = specOf(pod);
    const sidecar = spec.initContainers?.[0];
    expect(sidecar?.name).toBe("tether-sidecar");
    expect(sidecar?.["restartPolicy"]).toBe("Always");
    expect(sidecar?.["image"]).toBe("registry.test/tether/sidecar:1");
    expect(spec.containers.map((c) => c.name)).toEqual(["httpd"]);
    expect(envOf(spec.containers[0])).toEqual({
      LANG: "C",
      TETHER_POLICY_SERVER_HOST: "127.0.0.1",
      TETHER_POLICY_SERVER_PORT: "44443",
      TETHER_AGENT_CONFIG_DIR: "/etc/tether/agent",
    });
    // The user's own fields stay.
    expect(spec.containers[0]?.["terminationMessagePath"]).toBe("/dev/termination-log");
    expect(spec.volumes).toEqual([
      { name: "html", emptyDir: {} },
      { name: "tether-sidecar-config", configMap: { name: "web-sidecar" } },
      { name: "tether-agent-config", configMap: { name: "web-agent-config" } },
    ]);
    expect(pod["metadata"]).toEqual(userPod()["metadata"]);
  });

  it("uses the Agent's listener port, sidecar image and resources, not its template or replicas", () => {
    const spec = agent({
      replicas: 5,
      listener: { port: 15001 },
      sidecar: { image: "mine/sidecar:2", resources: { requests: { cpu: "50m" } } },
      template: { spec: { containers: [{ name: "from-the-agent", image: "x:1" }] } },
    });
    const pod = applyPatch(userPod(), injectionPatch(userPod(), input(spec)));
    const { initContainers, containers } = specOf(pod);
    expect(containers.map((c) => c.name)).toEqual(["httpd"]);
    expect(envOf(containers[0])["TETHER_POLICY_SERVER_PORT"]).toBe("15001");
    expect(initContainers?.[0]?.["image"]).toBe("mine/sidecar:2");
    expect(initContainers?.[0]?.["resources"]).toEqual({ requests: { cpu: "50m" } });
  });

  it("mounts the PolicyServerCluster's TLS Secrets into the sidecar", () => {
    const tls = psc({
      tls: {
        enabled: true,
        caSecretRef: { name: "ps-ca", key: "ca.crt" },
        clientCertSecretRef: { name: "agent-cert" },
        serverName: "ps.corp.example",
      },
    });
    const pod = applyPatch(userPod(), injectionPatch(userPod(), input(agent(), tls)));
    const { initContainers, volumes } = specOf(pod);
    const secretVolumes = volumes.filter((v) => v["secret"] !== undefined);
    expect(secretVolumes.map((v) => (v["secret"] as { secretName: string }).secretName)).toEqual([
      "agent-cert",
      "ps-ca",
    ]);
    const mounts = initContainers?.[0]?.["volumeMounts"] as { name: string; mountPath: string }[];
    expect(mounts.map((m) => m.mountPath)).toEqual(
      expect.arrayContaining(["/etc/tether/secrets/ps-ca", "/etc/tether/secrets/agent-cert"]),
    );
    // The Secrets are the sidecar's: the user's containers do not get them.
    const userMounts = (pod["spec"] as { containers: Container[] }).containers[0]?.["volumeMounts"] as {
      name: string;
    }[];
    expect(userMounts.map((m) => m.name)).toEqual(["tether-agent-config"]);
    // Injecting again (a reinvocation) does not mount them twice.
    expect(injectionPatch(defaulted(pod), input(agent(), tls))).toEqual([]);
  });

  it("is idempotent: a pod already injected, as the API server stored it, gets an empty patch", () => {
    const once = applyPatch(userPod(), injectionPatch(userPod(), input()));
    expect(injectionPatch(once, input())).toEqual([]);
    expect(injectionPatch(defaulted(once), input())).toEqual([]);
  });

  it("on reinvocation after another webhook added a container, gives it the environment and nothing else", () => {
    const once = defaulted(applyPatch(userPod(), injectionPatch(userPod(), input())));
    specOf(once).containers.push({ name: "log-shipper", image: "shipper:1" });
    const patch = injectionPatch(once, input());
    expect(patch.map((op) => op.path)).toEqual(["/spec/containers"]);
    const containers = patch[0]?.value as Container[];
    expect(containers[0]).toEqual(specOf(once).containers[0]);
    expect(envOf(containers[1])["TETHER_POLICY_SERVER_HOST"]).toBe("127.0.0.1");
  });

  it("keeps the user's init containers after the sidecar, so they can reach the policy servers too", () => {
    const pod = userPod();
    (pod["spec"] as JsonObject)["initContainers"] = [{ name: "migrate", image: "m:1" }];
    const out = applyPatch(pod, injectionPatch(pod, input()));
    expect(specOf(out).initContainers?.map((c) => c.name)).toEqual(["tether-sidecar", "migrate"]);
  });

  it("adds a plain sidecar container when native sidecars are off", () => {
    const out = applyPatch(userPod(), injectionPatch(userPod(), input(agent(), psc(), false)));
    expect(specOf(out).initContainers).toBeUndefined();
    expect(specOf(out).containers.map((c) => c.name)).toEqual(["httpd", "tether-sidecar"]);
  });

  it("reads the Agent name from the tether.dev/agent annotation", () => {
    expect(requestedAgent(userPod())).toBe("web");
    expect(requestedAgent({ metadata: { annotations: { other: "x" } } })).toBeUndefined();
    expect(requestedAgent({})).toBeUndefined();
  });
});

describe("containedIn", () => {
  it("holds when every field of the first is equal in the second, arrays element by element", () => {
    expect(
      containedIn({ a: 1, b: { c: [1, { d: 2 }] } }, { a: 1, x: 0, b: { c: [1, { d: 2, e: 3 }] } }),
    ).toBe(true);
    expect(containedIn({ a: 1 }, { a: 2 })).toBe(false);
    expect(containedIn([1, 2], [1, 2, 3])).toBe(false);
    expect(containedIn({ a: { b: 1 } }, { a: [1] })).toBe(false);
  });
});
