/**
 * `kubectl tether` — a kubectl plugin for Tether, as `istioctl proxy-status` and `linkerd check` are
 * for their meshes:
 *   check                 the CRDs are established, the operator is ready and leads, xDS is reachable,
 *                         versions agree
 *   status [-n NS | -A]   every Agent and Broker: Ready, ready replicas, config synced or stale
 *   upstreams NAME [-n NS] the healthy / unhealthy hosts each sidecar of an Agent or Broker sees
 * Talks to the cluster only through kubectl (the user's kubeconfig and context).
 */
import type { Kubectl } from "./kubectl.ts";
import { forwardedPort, parseClusters } from "./upstreams.ts";

export const CRD_NAMES = [
  "policyserverclusters.tether.dev",
  "agents.tether.dev",
  "brokers.tether.dev",
  "proxyroutes.tether.dev",
] as const;
const VERSION = "v1alpha1";
const DEFAULT_LOCAL_ADMIN_PORT = 15000;

export interface PluginIo {
  readonly kubectl: Kubectl;
  out(line: string): void;
  /** GET a URL on the local end of a port-forward; the body. */
  fetchText(url: string): Promise<string>;
}

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
}
interface KubeItem {
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown> & { conditions?: Condition[] };
}

export const USAGE = `Usage: kubectl tether <command>
  check                      CRDs established, operator ready and leading, xDS reachable, versions
  status [-n NS | -A]        every Agent and Broker: ready, replicas, config synced or stale
  upstreams NAME [-n NS]     healthy / unhealthy hosts each sidecar of an Agent or Broker sees
                             (its loopback admin's /clusters, through kubectl port-forward)`;

async function getJson<T>(io: PluginIo, args: readonly string[]): Promise<T | undefined> {
  const r = await io.kubectl.run([...args, "-o", "json"]);
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout) as T;
}

function condition(item: KubeItem, type: string): Condition | undefined {
  return item.status?.conditions?.find((c) => c.type === type);
}

function tagOf(image: string): string {
  const at = image.indexOf("@");
  if (at >= 0) return image.slice(at + 1);
  const colon = image.lastIndexOf(":");
  return colon > image.lastIndexOf("/") ? image.slice(colon + 1) : "latest";
}

type CheckState = "ok" | "FAIL" | "warn" | "info";
type Report = (state: CheckState, text: string) => void;

interface OperatorContainer {
  image?: string;
  env?: { name: string; value?: string }[];
}

/** The CRDs: established and serving v1alpha1; returns the chart versions they carry. */
async function checkCrds(io: PluginIo, report: Report): Promise<Set<string>> {
  const versions = new Set<string>();
  for (const name of CRD_NAMES) {
    const crd = await getJson<KubeItem & { spec: { versions?: { name: string; served: boolean }[] } }>(io, [
      "get",
      "crd",
      name,
    ]);
    if (crd === undefined) {
      report("FAIL", `CRD ${name}: not installed (helm install the chart, or crds.enabled)`);
      continue;
    }
    const established = condition(crd, "Established")?.status === "True";
    const served = crd.spec.versions?.some((v) => v.name === VERSION && v.served) === true;
    const version = crd.metadata.labels?.["app.kubernetes.io/version"];
    if (version !== undefined) versions.add(version);
    const state = `${established ? "established" : "not established"}, ${VERSION} ${served ? "served" : "not served"}`;
    report(
      established && served ? "ok" : "FAIL",
      `CRD ${name}: ${state}${version === undefined ? "" : `, version ${version}`}`,
    );
  }
  return versions;
}

async function checkLeader(
  io: PluginIo,
  report: Report,
  namespace: string,
  env: Map<string, string>,
): Promise<void> {
  if (env.get("TETHER_LEADER_ELECT") === "false") return;
  const leaseName = env.get("TETHER_LEASE_NAME") ?? "tether-operator";
  const lease = await getJson<{ spec?: { holderIdentity?: string; renewTime?: string } }>(io, [
    "get",
    "lease",
    leaseName,
    "-n",
    namespace,
  ]);
  const holder = lease?.spec?.holderIdentity ?? "";
  if (holder === "") report("FAIL", `leader: no replica holds lease ${leaseName}`);
  else report("ok", `leader: ${holder} (lease ${leaseName}, renewed ${lease?.spec?.renewTime ?? "?"})`);
}

/** The ADS server's Service `<fullname>-xds`, when the chart enables it, has a ready endpoint. */
async function checkXds(io: PluginIo, report: Report, namespace: string, fullname: string): Promise<void> {
  const xds = `${fullname}-xds`;
  if ((await getJson<KubeItem>(io, ["get", "service", xds, "-n", namespace])) === undefined) {
    report("info", `xDS: no Service ${xds} (xds.enabled is off, or this chart version has no xDS server)`);
    return;
  }
  const slices = await getJson<{ items: { endpoints?: { conditions?: { ready?: boolean } }[] }[] }>(io, [
    "get",
    "endpointslices",
    "-n",
    namespace,
    "-l",
    `kubernetes.io/service-name=${xds}`,
  ]);
  const ready = (slices?.items ?? [])
    .flatMap((s) => s.endpoints ?? [])
    .filter((e) => e.conditions?.ready !== false);
  report(ready.length > 0 ? "ok" : "FAIL", `xDS: Service ${xds} has ${ready.length} ready endpoint(s)`);
}

async function checkOperator(
  io: PluginIo,
  report: Report,
  d: KubeItem,
  crdVersions: Set<string>,
): Promise<void> {
  const namespace = d.metadata.namespace ?? "default";
  const template = d.spec?.["template"] as { spec?: { containers?: OperatorContainer[] } } | undefined;
  const container = template?.spec?.containers?.[0];
  const ready = Number(d.status?.["readyReplicas"] ?? 0);
  const wanted = Number(d.spec?.["replicas"] ?? 1);
  const image = container?.image ?? "?";
  report(
    ready >= 1 || wanted === 0 ? "ok" : "FAIL",
    `operator ${namespace}/${d.metadata.name}: ${ready}/${wanted} ready, image ${image}`,
  );
  const env = new Map((container?.env ?? []).map((e) => [e.name, e.value ?? ""]));
  await checkLeader(io, report, namespace, env);
  await checkXds(io, report, namespace, d.metadata.name);
  const tag = tagOf(image);
  const sidecar = tagOf(env.get("TETHER_SIDECAR_IMAGE") ?? "?");
  const agree = [...crdVersions].every((v) => v === tag) && sidecar === tag;
  report(
    agree ? "ok" : "warn",
    `versions: operator ${tag}, sidecar ${sidecar}, CRDs ${[...crdVersions].join(", ") || "?"}`,
  );
}

/** `kubectl tether check`; resolves to the exit code (1 when a check failed). */
export async function check(io: PluginIo): Promise<number> {
  let failed = 0;
  const report: Report = (state, text) => {
    if (state === "FAIL") failed++;
    io.out(`${state.padEnd(4)} ${text}`);
  };
  const crdVersions = await checkCrds(io, report);
  const deployments = await getJson<{ items: KubeItem[] }>(io, [
    "get",
    "deployments",
    "-A",
    "-l",
    "app.kubernetes.io/component=operator,app.kubernetes.io/instance",
  ]);
  // The chart's operator Deployment: the one that configures a sidecar image.
  const operators = (deployments?.items ?? []).filter((d) =>
    JSON.stringify(d.spec).includes("TETHER_SIDECAR_IMAGE"),
  );
  if (operators.length === 0)
    report("FAIL", "operator: no Deployment found (label app.kubernetes.io/component=operator)");
  for (const d of operators) await checkOperator(io, report, d, crdVersions);
  io.out(failed === 0 ? "Tether is ready." : `${failed} check(s) failed.`);
  return failed === 0 ? 0 : 1;
}

/** `kubectl tether status`: one line per Agent and Broker. */
export async function status(io: PluginIo, scope: readonly string[]): Promise<number> {
  const list = await io.kubectl.run(["get", "agents.tether.dev,brokers.tether.dev", ...scope, "-o", "json"]);
  if (list.code !== 0) {
    io.out(`cannot list Agents and Brokers: ${list.stderr.trim()}`);
    return 1;
  }
  const items = (JSON.parse(list.stdout) as { items: KubeItem[] }).items;
  const rows = [["KIND", "NAMESPACE", "NAME", "READY", "REASON", "REPLICAS", "CONFIG"]];
  for (const item of items) {
    const ready = condition(item, "Ready");
    // Whether the sidecars accepted the config the operator pushes over xDS (ConfigRejected, set from
    // their ACKs and NACKs); `-` before any sidecar answered.
    const rejected = condition(item, "ConfigRejected");
    rows.push([
      item.kind ?? "?",
      item.metadata.namespace ?? "",
      item.metadata.name,
      ready?.status ?? "Unknown",
      ready?.reason ?? "",
      `${Number(item.status?.["readyReplicas"] ?? 0)}/${Number(item.spec?.["replicas"] ?? 1)}`,
      rejected === undefined
        ? "-"
        : rejected.status === "True"
          ? `rejected (${rejected.reason ?? "?"})`
          : "accepted",
    ]);
  }
  if (items.length === 0) io.out("No Agents or Brokers found.");
  else for (const line of table(rows)) io.out(line);
  return 0;
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("   ")
      .trimEnd(),
  );
}

/** Forwards a local port to `port` of the pod and runs `fn` with it; always stops the forward. */
async function withPortForward<T>(
  io: PluginIo,
  namespace: string,
  pod: string,
  port: number,
  fn: (localPort: number) => Promise<T>,
): Promise<T> {
  const child = io.kubectl.spawn(["port-forward", "-n", namespace, `pod/${pod}`, `:${port}`]);
  try {
    const localPort = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`port-forward to ${pod}:${port} timed out`));
      }, 15_000);
      let stderr = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n")) {
          const p = forwardedPort(line);
          if (p !== undefined) {
            clearTimeout(timer);
            resolve(p);
          }
        }
      });
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`port-forward to ${pod}:${port} exited (${code ?? "signal"}): ${stderr.trim()}`));
      });
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return await fn(localPort);
  } finally {
    child.kill();
  }
}

/** `kubectl tether upstreams NAME`: the hosts each sidecar of the Agent (or Broker) sees. */
export async function upstreams(io: PluginIo, name: string, namespace: string): Promise<number> {
  const owner =
    (await getJson<KubeItem>(io, ["get", "agents.tether.dev", name, "-n", namespace])) ??
    (await getJson<KubeItem>(io, ["get", "brokers.tether.dev", name, "-n", namespace]));
  if (owner === undefined) {
    io.out(`no Agent or Broker ${namespace}/${name}`);
    return 1;
  }
  const sidecar = owner.spec?.["sidecar"] as { localAdminPort?: number } | undefined;
  const adminPort = sidecar?.localAdminPort ?? DEFAULT_LOCAL_ADMIN_PORT;
  const pods = await getJson<{ items: (KubeItem & { status?: { phase?: string } })[] }>(io, [
    "get",
    "pods",
    "-n",
    namespace,
    "-l",
    `app.kubernetes.io/instance=${name},app.kubernetes.io/managed-by=tether-operator`,
  ]);
  const running = (pods?.items ?? []).filter((p) => p.status?.phase === "Running");
  if (running.length === 0) {
    io.out(`${owner.kind ?? "Agent"} ${namespace}/${name} has no running pod`);
    return 1;
  }
  let failed = 0;
  for (const pod of running) {
    io.out(`pod ${pod.metadata.name}:`);
    try {
      const body = await withPortForward(io, namespace, pod.metadata.name, adminPort, (local) =>
        io.fetchText(`http://127.0.0.1:${local}/clusters?format=json`),
      );
      const hosts = parseClusters(JSON.parse(body) as unknown);
      const rows = [["CLUSTER", "HOST", "PRIORITY", "HEALTH"]];
      for (const h of hosts) {
        rows.push([
          h.cluster,
          h.address,
          String(h.priority),
          h.healthy ? "healthy" : `unhealthy (${h.flags.join(", ") || "?"})`,
        ]);
      }
      for (const line of table(rows)) io.out(`  ${line}`);
    } catch (error) {
      failed++;
      io.out(`  cannot read /clusters: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return failed === 0 ? 0 : 1;
}

/** Parses the command line and runs the command; resolves to the exit code. */
export async function runPlugin(argv: readonly string[], io: PluginIo): Promise<number> {
  const [command, ...rest] = argv;
  const flag = (names: readonly string[]): string | undefined => {
    const i = rest.findIndex((a) => names.includes(a));
    return i >= 0 ? rest[i + 1] : undefined;
  };
  const positional = rest.filter(
    (a, i) => !a.startsWith("-") && !["-n", "--namespace"].includes(rest[i - 1] ?? ""),
  );
  const currentNamespace = async (): Promise<string> => {
    const r = await io.kubectl.run(["config", "view", "--minify", "-o", "jsonpath={..namespace}"]);
    return r.code === 0 && r.stdout.trim() !== "" ? r.stdout.trim() : "default";
  };
  switch (command) {
    case "check":
      return check(io);
    case "status": {
      if (rest.includes("-A") || rest.includes("--all-namespaces")) return status(io, ["-A"]);
      return status(io, ["-n", flag(["-n", "--namespace"]) ?? (await currentNamespace())]);
    }
    case "upstreams": {
      const name = positional[0];
      if (name === undefined) break;
      return upstreams(io, name, flag(["-n", "--namespace"]) ?? (await currentNamespace()));
    }
    default:
      break;
  }
  io.out(USAGE);
  return command === undefined || command === "help" || command === "--help" ? 0 : 2;
}
