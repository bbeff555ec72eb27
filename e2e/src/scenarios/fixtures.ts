/**
 * The scenarios' resources, taken from examples/quick-start so the end-to-end suite runs what users
 * apply, with the few changes a scenario needs (replica counts, names).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../controlplane/binaries.ts";

type Resource = { metadata: { name: string }; spec: Record<string, unknown> } & Record<string, unknown>;

function example(file: string): Resource {
  return parse(readFileSync(join(REPO_ROOT, "examples/quick-start", file), "utf8")) as Resource;
}

/** The quick-start PolicyServerCluster (demo policy servers over HTTP, health-checked). */
export function policyServerCluster(options: { name?: string; replicas?: number } = {}): string {
  const psc = example("01-policy-server-cluster.yaml");
  psc.metadata.name = options.name ?? psc.metadata.name;
  const managed = psc.spec["managed"] as Record<string, unknown>;
  if (options.replicas !== undefined) managed["replicas"] = options.replicas;
  return stringify(psc);
}

/**
 * The quick-start Agent (demo agent + tether-sidecar), one replica by default so a port-forward
 * reaches the pod whose restarts are counted. The decision cache is off until the sidecar has it.
 */
export function agent(
  options: { name?: string; policyServerCluster?: string; replicas?: number } = {},
): string {
  const a = example("02-agent.yaml");
  a.metadata.name = options.name ?? a.metadata.name;
  a.spec["replicas"] = options.replicas ?? 1;
  if (options.policyServerCluster !== undefined) {
    a.spec["policyServerClusterRef"] = { name: options.policyServerCluster };
  }
  a.spec["cache"] = { enabled: false };
  return stringify(a);
}

/** Label selector of the pods of an Agent or a managed PolicyServerCluster (API.md's child labels). */
export function podsOf(name: string, component: "agent" | "policy-server"): string {
  return `app.kubernetes.io/instance=${name},app.kubernetes.io/component=${component}`;
}

/** The port the demo agent serves on in the example. */
export const AGENT_PORT = 8000;

/**
 * ProxyRoutes on the Agent `web` to the demo servers of a PolicyServerCluster (their headless
 * Service): `/app/…` with the prefix trimmed and sticky sessions by the JSESSIONID cookie, and
 * `*.jsp` by extension. The demo servers answer with their own name (the pod's), so a test sees
 * which server served each request.
 */
export function proxyRoutes(options: { backend?: string; listenerPort?: number } = {}): string {
  const backend = { serviceRef: { name: options.backend ?? "ps-main", port: 8080 } };
  const common = {
    agentRef: { name: "web" },
    listenerPort: options.listenerPort ?? PROXY_PORT,
    backend,
    timeouts: { connect: "1s", retryInterval: "250ms", request: "30s" },
  };
  return [
    {
      apiVersion: "tether.dev/v1alpha1",
      kind: "ProxyRoute",
      metadata: { name: "app" },
      spec: {
        ...common,
        match: { pathPrefix: "/app/" },
        rewrite: { pathTrim: "/app" },
        sessionAffinity: { cookieName: "JSESSIONID" },
      },
    },
    {
      apiVersion: "tether.dev/v1alpha1",
      kind: "ProxyRoute",
      metadata: { name: "pages" },
      spec: { ...common, match: { extensions: ["jsp"] } },
    },
  ]
    .map((doc) => stringify(doc))
    .join("---\n");
}

/** The sidecar's inbound HTTP port for the scenarios' ProxyRoutes. */
export const PROXY_PORT = 8080;
