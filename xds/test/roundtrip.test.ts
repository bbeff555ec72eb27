// Every listener and cluster of the sidecar's examples and of the operator's rendered bootstraps,
// through protobuf binary and back: the bytes are stable, the JSON is the original less the proto3
// defaults it spelled out, the ADS client's decoder (decode.ts) and protobufjs' reflection read the
// bytes alike, and the sidecar's own schema reads the same config from either.
import { readFileSync } from "node:fs";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { agent, broker, psc, route } from "../../operator/test/fixtures/specs.ts";
import { renderAgent } from "../../operator/src/render/agent.ts";
import { renderBroker } from "../../operator/src/render/broker.ts";
import type { AcceptedRoute } from "../../operator/src/render/routes.ts";
import { bootstrapSchema } from "@tether/envoy";
import { messageType } from "../src/descriptor.ts";
import { packResource, toJson, typeForUrl, unpackResource } from "../src/json.ts";
import { TYPE_URLS } from "../src/types.ts";

type Obj = Record<string, unknown>;
interface Bootstrap {
  static_resources: { listeners?: Obj[]; clusters?: Obj[] };
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** A duration in protojson's canonical text: 0, 3, 6 or 9 fractional digits ("0.25s" -> "0.250s"). */
function canonicalDuration(text: string): string {
  const m = /^(\d+)(?:\.(\d+))?s$/.exec(text);
  if (m === null) return text;
  let fraction = (m[2] ?? "").padEnd(9, "0");
  while (fraction.endsWith("000")) fraction = fraction.slice(0, -3);
  return `${m[1] ?? ""}${fraction === "" ? "" : `.${fraction}`}s`;
}

/**
 * `json` as it comes back from protobuf: without the fields proto3 cannot tell from unset
 * (implicit-presence zero values), durations in canonical text.
 */
function withoutDefaults(type: protobuf.Type, json: unknown): unknown {
  if (type.fullName === ".google.protobuf.Duration" && typeof json === "string")
    return canonicalDuration(json);
  if (!isObj(json)) return json;
  if (type.fullName === ".google.protobuf.Any") {
    const inner = typeForUrl(String(json["@type"]), "");
    return { ...(withoutDefaults(inner, json) as Obj), "@type": json["@type"] };
  }
  if (type.fullName === ".google.protobuf.Struct") return json;
  const out: Obj = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fields[key];
    if (field === undefined) {
      out[key] = value;
      continue;
    }
    const resolved = field.resolvedType;
    const implicit = !(resolved instanceof protobuf.Type) && field.partOf === null && !field.repeated;
    if (implicit) {
      const zero: unknown = resolved instanceof protobuf.Enum ? resolved.valuesById[0] : field.typeDefault;
      if (value === zero || value === 0 || value === false || value === "") continue;
    }
    if (field.repeated && Array.isArray(value) && value.length === 0) continue;
    const nested = (v: unknown): unknown =>
      resolved instanceof protobuf.Type ? withoutDefaults(resolved, v) : v;
    if (field instanceof protobuf.MapField && isObj(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, nested(v)]));
    } else {
      out[key] = Array.isArray(value) ? value.map(nested) : nested(value);
    }
  }
  return out;
}

function roundTrip(kind: "cluster" | "listener", resource: Obj): Obj {
  const any = packResource(TYPE_URLS[kind], resource, String(resource["name"]));
  const back = unpackResource(TYPE_URLS[kind], any.value);
  // Stable: the decoded JSON encodes to the very same bytes.
  expect(Buffer.from(packResource(TYPE_URLS[kind], back).value)).toEqual(Buffer.from(any.value));
  const type = messageType(TYPE_URLS[kind].slice("type.googleapis.com/".length));
  expect(back).toEqual(withoutDefaults(type, resource));
  // The ADS client's table-driven decoder reads the bytes as protobufjs' reflection does, to the
  // order of the keys.
  const reflected = toJson(type, type.decode(any.value) as unknown as Obj);
  expect(JSON.stringify(back)).toBe(JSON.stringify(reflected));
  return back;
}

function checkBootstrap(yamlText: string): number {
  const doc = parse(yamlText) as Bootstrap;
  const listeners = doc.static_resources.listeners ?? [];
  const clusters = doc.static_resources.clusters ?? [];
  const after = {
    ...doc,
    static_resources: {
      ...doc.static_resources,
      listeners: listeners.map((l) => roundTrip("listener", l)),
      clusters: clusters.map((c) => roundTrip("cluster", c)),
    },
  };
  // The sidecar reads the same config from the resources as they come out of ADS.
  const before = bootstrapSchema.safeParse(doc);
  expect(before.success, JSON.stringify(before.error?.issues)).toBe(true);
  expect(bootstrapSchema.parse(after)).toEqual(before.data);
  return listeners.length + clusters.length;
}

const options = { sidecarImage: "img", clusterDomain: "cluster.local" };
const agentOwner = { kind: "Agent" as const, name: "web", namespace: "default", uid: "u" };
const brokerOwner = { kind: "Broker" as const, name: "b", namespace: "default", uid: "u" };

function agentYaml(pscSpec = psc(), routes: AcceptedRoute[] = [], spec = agent()): string {
  const cm = renderAgent({
    owner: agentOwner,
    spec,
    policyServers: { name: "ps", spec: pscSpec },
    routes,
    options,
  }).sidecarConfig;
  return cm.data["envoy.yaml"] ?? "";
}

describe("Envoy JSON <-> protobuf round trip", () => {
  it.each(["envoy-http.yaml", "envoy-tcp.yaml"])("examples/sidecar/%s", (file) => {
    const text = readFileSync(new URL(`../../examples/sidecar/${file}`, import.meta.url), "utf8");
    expect(checkBootstrap(text)).toBeGreaterThan(1);
  });

  it("the operator's rendered Agent bootstrap (tcp, managed policy servers, decision cache)", () => {
    expect(checkBootstrap(agentYaml())).toBeGreaterThan(1);
  });

  it("the operator's rendered Agent bootstrap (http, TLS, ProxyRoutes of every kind)", () => {
    const pscSpec = psc({
      protocol: "http",
      healthCheck: { type: "http", path: "/healthz" },
      managed: undefined,
      external: { servers: [{ host: "10.0.0.1" }, { host: "ps2.corp", priority: 1 }] },
      tls: {
        enabled: true,
        caSecretRef: { name: "ca" },
        clientCertSecretRef: { name: "cert" },
        serverName: "ps",
      },
    });
    const routes: AcceptedRoute[] = [
      { name: "prefix", spec: route({ rewrite: { pathTrim: "/app", pathPrepend: "/api" } }) },
      { name: "exact", spec: route({ match: { path: "/login" }, methods: ["GET", "POST"] }) },
      {
        name: "jsp",
        spec: route({
          match: { extensions: ["jsp"] },
          rewrite: { pathPrepend: "/jspfiles" },
          backend: { serviceRef: { name: "wls", port: 7001 } },
          keepAlive: { enabled: false },
          tls: { enabled: true, caSecretRef: { name: "wls-ca" }, serverName: "wls" },
        }),
      },
      { name: "other-port", spec: route({ listenerPort: 9090, retries: { onReset: "never" } }) },
    ];
    expect(checkBootstrap(agentYaml(pscSpec, routes))).toBeGreaterThan(3);
  });

  it("the operator's rendered Agent bootstrap with the decision cache (Tether's own filter)", () => {
    const pscSpec = psc({ protocol: "http", healthCheck: { type: "http", path: "/healthz" } });
    const spec = agent({ cache: { enabled: true, ttl: "90s", keyHeaders: ["x-user", "cookie"] } });
    const text = agentYaml(pscSpec, [], spec);
    expect(text).toContain("type.googleapis.com/tether.v1alpha1.DecisionCache");
    expect(checkBootstrap(text)).toBeGreaterThan(1);
  });

  it("the operator's rendered Broker bootstrap", () => {
    const cm = renderBroker({ owner: brokerOwner, spec: broker({ replicas: 2 }), options }).sidecarConfig;
    expect(checkBootstrap(cm.data["envoy.yaml"] ?? "")).toBeGreaterThan(1);
  });
});
