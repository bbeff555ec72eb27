import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { INVALID_CASES } from "../../test/fixtures/invalid-resources.ts";
import { REPO_ROOT, staleFiles } from "./generate.ts";
import {
  agentSpec,
  brokerSpec,
  describeErrors,
  KINDS,
  parseSpec,
  policyServerClusterSpec,
  proxyRouteSpec,
} from "./index.ts";

const SPECS = {
  PolicyServerCluster: policyServerClusterSpec,
  Agent: agentSpec,
  Broker: brokerSpec,
  ProxyRoute: proxyRouteSpec,
} as const;

describe("API schemas", () => {
  it("apply every documented default to a minimal Agent", () => {
    const result = parseSpec(agentSpec, {
      policyServerClusterRef: { name: "ps" },
      template: { spec: { containers: [{ name: "a" }] } },
    });
    expect(result.ok && result.value).toMatchObject({
      replicas: 1,
      listener: {},
      pool: { maxConnections: 1024, idleTimeout: "30s", maxRequestsPerConnection: 0 },
      reconnect: { connectTimeout: "5s", retryInterval: "250ms", maxRetryInterval: "2s", holdTimeout: "30s" },
      cache: { enabled: false, ttl: "3m", notifications: true, keyHeaders: ["authorization", "cookie"] },
      sidecar: { adminPort: 9901, localAdminPort: 15000 },
    });
  });

  it("apply every documented default to minimal PolicyServerCluster, Broker and ProxyRoute", () => {
    const psc = parseSpec(policyServerClusterSpec, { port: 1, external: { servers: [{ host: "a" }] } });
    expect(psc.ok && psc.value).toMatchObject({
      protocol: "tcp",
      tls: { enabled: false, insecureSkipVerify: false },
      healthCheck: { type: "tcp", interval: "2s", timeout: "1s", unhealthyThreshold: 2, healthyThreshold: 1 },
      failover: { mode: "priority" },
      external: { servers: [{ host: "a", priority: 0 }] },
    });
    const broker = parseSpec(brokerSpec, { port: 1, backends: { serviceRef: { name: "s", port: 2 } } });
    expect(broker.ok && broker.value).toMatchObject({
      balance: "roundRobin",
      tls: { mode: "passthrough" },
      proxyProtocol: "none",
      idleTimeout: "1h",
      replicas: 1,
      service: { type: "ClusterIP" },
      healthCheck: { type: "tcp" },
    });
    const route = parseSpec(proxyRouteSpec, {
      agentRef: { name: "web" },
      match: { extensions: ["jsp"] },
      backend: { servers: [{ host: "w", port: 7001 }] },
    });
    expect(route.ok && route.value).toMatchObject({
      listenerPort: 8080,
      timeouts: { connect: "10s", retryInterval: "2s", request: "30s" },
      retries: { attempts: 3, onReset: "idempotentOnly" },
      keepAlive: { enabled: true, idleTimeout: "30s" },
      tls: { enabled: false, insecureSkipVerify: false },
    });
  });

  it.each(INVALID_CASES.map((c) => [`${c.kind}: ${c.name}`, c] as const))("reject %s", (_label, c) => {
    const result = parseSpec(SPECS[c.kind], c.spec());
    expect(result.ok).toBe(false);
    if (!result.ok) expect(describeErrors(result.errors)).toContain(c.field);
    if (!result.ok && c.message !== undefined) expect(describeErrors(result.errors)).toContain(c.message);
  });

  it("accept every quick-start example", () => {
    const dir = join(REPO_ROOT, "examples/quick-start");
    const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
    expect(files.length).toBeGreaterThanOrEqual(4);
    const kinds = new Set<string>();
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
        const obj = doc.toJS() as { kind: keyof typeof SPECS; spec: unknown };
        kinds.add(obj.kind);
        const result = parseSpec(SPECS[obj.kind], obj.spec);
        expect(result.ok ? "" : `${file}: ${describeErrors(result.errors)}`).toBe("");
      }
    }
    expect([...kinds].sort()).toEqual(KINDS.map((k) => k.kind).sort());
  });
});

describe("generated CRDs", () => {
  it("crds/ matches the schemas (run npm run generate when this fails)", () => {
    expect(staleFiles()).toEqual([]);
  });
});
