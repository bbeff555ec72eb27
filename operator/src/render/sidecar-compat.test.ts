/**
 * Everything the operator renders must be accepted by the sidecar's own config schema (the Envoy
 * subset it implements): an unsupported field would make the sidecar refuse the file.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { bootstrapSchema } from "@tether/envoy";
import { agent, broker, example, psc, route } from "../../test/fixtures/specs.ts";
import { agentSpec, brokerSpec, policyServerClusterSpec, proxyRouteSpec } from "../api/index.ts";
import { renderAgent } from "./agent.ts";
import type { AcceptedRoute } from "./routes.ts";
import { renderBroker } from "./broker.ts";
import type { ConfigMap } from "./configmap.ts";

const owner = { kind: "Agent" as const, name: "web", namespace: "default", uid: "u" };
const options = { sidecarImage: "img", clusterDomain: "cluster.local" };

function problems(cm: ConfigMap): string[] {
  const result = bootstrapSchema.safeParse(parse(cm.data["envoy.yaml"] ?? ""));
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

function agentConfig(pscSpec = psc(), routes: AcceptedRoute[] = [], spec = agent()): ConfigMap {
  return renderAgent({ owner, spec, policyServers: { name: "ps", spec: pscSpec }, routes, options })
    .sidecarConfig;
}

describe("rendered configs the sidecar accepts", () => {
  it("tcp policy servers, managed (STRICT_DNS), with hold-and-retry and connection cutting", () => {
    expect(problems(agentConfig())).toEqual([]);
  });

  it("access logs (json and text, stdout and file) on an agent and a broker", () => {
    for (const accessLog of [
      { enabled: true },
      { enabled: true, format: "text", path: "/var/log/tether/access.log" },
    ]) {
      expect(problems(agentConfig(psc(), [], agent({ sidecar: { accessLog } })))).toEqual([]);
      expect(problems(agentConfig(psc({ protocol: "http" }), [], agent({ sidecar: { accessLog } })))).toEqual(
        [],
      );
      const b = renderBroker({
        owner: { kind: "Broker", name: "b", namespace: "default", uid: "u" },
        spec: broker({ sidecar: { accessLog } }),
        options,
      });
      expect(problems(b.sidecarConfig)).toEqual([]);
    }
  });

  it("tcp policy servers, external with priorities and TLS (CA, client certificate, SNI)", () => {
    const spec = psc({
      managed: undefined,
      external: { servers: [{ host: "10.0.0.1" }, { host: "ps2.corp", priority: 1 }] },
      tls: {
        enabled: true,
        caSecretRef: { name: "ca" },
        clientCertSecretRef: { name: "cert" },
        serverName: "ps",
      },
    });
    expect(problems(agentConfig(spec))).toEqual([]);
  });

  it("http policy servers with http health checks and ProxyRoutes of every match kind", () => {
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
    const spec = psc({ protocol: "http", healthCheck: { type: "http", path: "/healthz" } });
    expect(problems(agentConfig(spec, routes))).toEqual([]);
  });

  it("ProxyRoutes whose prefix is full of regex metacharacters, and the most extensions the API allows", () => {
    // The rendered safe_regex and regex_rewrite patterns must compile under RE2, as the sidecar does.
    const extensions = Array.from(
      { length: 32 },
      (_, i) => `e${String(i).padStart(2, "0")}${"x".repeat(29)}`,
    );
    const routes: AcceptedRoute[] = [
      {
        name: "meta",
        spec: route({
          match: { pathPrefix: "/a.b+(c)[d]{2}|e^$?*\\f" },
          rewrite: { pathTrim: "/a.b+(c)[d]{2}|e^$?*\\f", pathPrepend: "/x" },
        }),
      },
      { name: "ext", spec: route({ match: { extensions }, rewrite: { pathPrepend: "/x" } }) },
    ];
    const spec = psc({ protocol: "http", healthCheck: { type: "http", path: "/healthz" } });
    expect(problems(agentConfig(spec, routes))).toEqual([]);
  });

  it("the quick-start Broker", () => {
    const cm = renderBroker({
      owner: { ...owner, kind: "Broker" },
      spec: brokerSpec.parse(example("04-broker.yaml")),
      options,
    });
    expect(problems(cm.sidecarConfig)).toEqual([]);
  });

  it("the decision cache filter (tether.v1alpha1.DecisionCache)", () => {
    const spec = agent({ cache: { enabled: true } });
    expect(problems(agentConfig(psc({ protocol: "http" }), [], spec))).toEqual([]);
  });

  it("sticky sessions: route hash_policy cookie with a RING_HASH cluster", () => {
    const routes = [{ name: "sticky", spec: route({ sessionAffinity: { cookieName: "JSESSIONID" } }) }];
    expect(problems(agentConfig(psc(), routes))).toEqual([]);
  });

  it("a Broker sending PROXY protocol v2 (upstream_proxy_protocol transport socket)", () => {
    const cm = renderBroker({
      owner: { ...owner, kind: "Broker" },
      spec: broker({ proxyProtocol: "v2" }),
      options,
    });
    expect(problems(cm.sidecarConfig)).toEqual([]);
  });

  it("a Broker with a tls health check (transport_socket_matches), plain and with PROXY v2", () => {
    for (const proxyProtocol of ["none", "v2"]) {
      const cm = renderBroker({
        owner: { ...owner, kind: "Broker" },
        spec: broker({ healthCheck: { type: "tls" }, proxyProtocol }),
        options,
      });
      expect(problems(cm.sidecarConfig)).toEqual([]);
    }
  });

  it("the full quick-start Agent (cache and sticky route)", () => {
    const cm = renderAgent({
      owner,
      spec: agentSpec.parse(example("02-agent.yaml")),
      policyServers: {
        name: "ps-main",
        spec: policyServerClusterSpec.parse(example("01-policy-server-cluster.yaml")),
      },
      routes: [{ name: "app", spec: proxyRouteSpec.parse(example("03-proxy-route.yaml")) }],
      options,
    }).sidecarConfig;
    expect(problems(cm)).toEqual([]);
  });
});

const SIDECAR_BIN = fileURLToPath(new URL("../../../sidecar/bin/tether-sidecar.js", import.meta.url));

/** Runs the built sidecar's `--mode validate` on a rendered config: exit code and output. */
function validateWithSidecar(cm: ConfigMap): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), "tether-render-"));
  try {
    const file = join(dir, "envoy.yaml");
    writeFileSync(file, cm.data["envoy.yaml"] ?? "");
    const r = spawnSync(process.execPath, [SIDECAR_BIN, "--config", file, "--mode", "validate"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("rendered configs pass the built sidecar's --mode validate", () => {
  it("Brokers with a tls health check, plain and with PROXY v2", () => {
    for (const proxyProtocol of ["none", "v2"]) {
      const cm = renderBroker({
        owner: { ...owner, kind: "Broker" },
        spec: broker({ healthCheck: { type: "tls" }, proxyProtocol }),
        options,
      }).sidecarConfig;
      const result = validateWithSidecar(cm);
      expect(result.output).toContain("OK");
      expect(result.status).toBe(0);
    }
  });

  it("an Agent whose decision cache subscribes to the policy servers' notification stream", () => {
    const spec = agent({ cache: { enabled: true, notifications: true } });
    const cm = agentConfig(psc({ protocol: "http" }), [], spec);
    expect(cm.data["envoy.yaml"]).toContain("notification_stream");
    const result = validateWithSidecar(cm);
    expect(result.output).toContain("OK");
    expect(result.status).toBe(0);
  });
});
