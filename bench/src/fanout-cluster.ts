// The Kubernetes side of the xDS fan-out bench: the objects it creates (a managed
// PolicyServerCluster, Agents, the EndpointSlice it changes by hand) and waits on.
import { BenchError, pause } from "./proc.ts";

export const PSC = "ps";
export const PS_PORT = 44443;
/** The cluster (and EDS service_name) of an Agent's managed policy servers. */
export const EDS_CLUSTER = "policy-server";

export interface KubeClient {
  request<T>(method: string, path: string, options?: { body?: unknown; contentType?: string }): Promise<T>;
  close(): Promise<void>;
}
interface AgentList {
  items: { metadata: { generation?: number }; status?: { observedGeneration?: number } }[];
}

/** Polls `check` every `intervalMs` until it returns true; throws at the deadline. */
export async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 500,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline)
      throw new BenchError(
        "TETHER_ERR_BENCH_TIMEOUT",
        `timed out after ${String(timeoutMs)} ms waiting for ${what}`,
      );
    await pause(intervalMs);
  }
}

export function agentManifest(namespace: string, name: string, listenerPort?: number): string {
  return `apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  policyServerClusterRef: {name: ${PSC}}${listenerPort === undefined ? "" : `\n  listener: {port: ${String(listenerPort)}}`}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}`;
}

export function pscManifest(namespace: string): string {
  return `apiVersion: v1
kind: Namespace
metadata: {name: ${namespace}}
---
apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ${PSC}, namespace: ${namespace}}
spec:
  port: ${String(PS_PORT)}
  managed:
    replicas: 3
    template: {spec: {containers: [{name: ps, image: "ps:1"}]}}`;
}

/** The Service an EndpointSlice of `rollingSlice` belongs to, and where its new pods' addresses come from. */
export interface SliceTarget {
  readonly namespace: string;
  readonly service: string;
  readonly sliceName: string;
  readonly port: { readonly name: string; readonly port: number };
  /** The first two octets of the new pods' addresses, e.g. "10.2". */
  readonly subnet: string;
}

/**
 * Step `k` of a rolling restart: two pods that stay, the previous new pod draining (serving,
 * terminating) and a new ready one.
 */
export function rollingSlice(target: SliceTarget, k: number): { body: object; newest: string } {
  const ip = (n: number): string =>
    `${target.subnet}.${String(Math.floor(n / 250))}.${String((n % 250) + 1)}`;
  const endpoint = (address: string, ready: boolean): object => ({
    addresses: [address],
    conditions: { ready, serving: true, terminating: !ready },
  });
  const endpoints = [endpoint("10.1.0.1", true), endpoint("10.1.0.2", true)];
  if (k > 0) endpoints.push(endpoint(ip(k - 1), false));
  endpoints.push(endpoint(ip(k), true));
  return {
    newest: ip(k),
    body: {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: target.sliceName,
        namespace: target.namespace,
        labels: { "kubernetes.io/service-name": target.service },
      },
      addressType: "IPv4",
      ports: [{ ...target.port, protocol: "TCP" }],
      endpoints,
    },
  };
}

/** Step `k` of a rolling restart of three policy-server pods: the previous new pod drains. */
export function sliceAt(namespace: string, k: number): { body: object; newest: string } {
  return rollingSlice(
    {
      namespace,
      service: PSC,
      sliceName: `${PSC}-fanout`,
      port: { name: EDS_CLUSTER, port: PS_PORT },
      subnet: "10.2",
    },
    k,
  );
}

export const slicePath = (namespace: string): string =>
  `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;

export class Bench {
  private readonly client: KubeClient;
  private readonly kubectl: (args: string[], input?: string) => Promise<void>;
  private readonly steps = new Map<string, number>();

  constructor(client: KubeClient, kubectl: (args: string[], input?: string) => Promise<void>) {
    this.client = client;
    this.kubectl = kubectl;
  }

  newest(namespace: string): string {
    return sliceAt(namespace, this.steps.get(namespace) ?? 0).newest;
  }

  async createSlice(namespace: string): Promise<void> {
    this.steps.set(namespace, 0);
    await this.client.request("POST", slicePath(namespace), { body: sliceAt(namespace, 0).body });
  }

  /** The next rolling step: the new pod's address, and the write (resolves when the PUT returned). */
  nextChange(namespace: string): { newest: string; write: () => Promise<number> } {
    const step = (this.steps.get(namespace) ?? 0) + 1;
    const { body, newest } = sliceAt(namespace, step);
    const write = async (): Promise<number> => {
      this.steps.set(namespace, step);
      await this.client.request("PUT", `${slicePath(namespace)}/${PSC}-fanout`, { body });
      return performance.now();
    };
    return { newest, write };
  }

  async createAgents(namespace: string, manifests: readonly string[]): Promise<void> {
    for (let i = 0; i < manifests.length; i += 300)
      await this.kubectl(["create", "-f", "-"], manifests.slice(i, i + 300).join("\n---\n"));
    await until(
      `${String(manifests.length)} Agents in ${namespace} reconciled`,
      async () => {
        const list = await this.client.request<AgentList>(
          "GET",
          `/apis/tether.dev/v1alpha1/namespaces/${namespace}/agents`,
        );
        const done = list.items.filter((o) => o.status?.observedGeneration === o.metadata.generation);
        return done.length >= list.items.length;
      },
      300_000,
      1000,
    );
  }
}
