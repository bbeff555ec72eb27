import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { agent, podsOf, policyServerCluster, proxyRoutes } from "./fixtures.ts";
import { parseAllDocuments } from "yaml";

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
});
