/**
 * The scenarios' client pod: a pod of the demo image running its `idle` role, into which the suite
 * `kubectl exec`s the image's `load` command (constant-rate traffic, held open through `exec -i`
 * while the scenario disturbs the servers, stopped by a "stop" line and the end of stdin, then a
 * JSON summary) and its `request` command (one HTTP request or TLS exchange). Traffic thus starts
 * inside the cluster — Service DNS, kube-proxy and the pod network are on its path — and needs no
 * registry or extra image: only `kubectl exec` and `kubectl logs`.
 */
import type { LoadSummary } from "../demo/load.ts";
import type { ChildHandle } from "../demo/processes.ts";
import { ClusterError, type Cluster } from "./cluster.ts";
import { CLIENT_POD, clientPod, type Mount } from "./fixtures.ts";

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly elapsedMs: number;
}

export interface TlsAnswer {
  readonly server: string;
  readonly subject: string;
  readonly fingerprint256: string;
  readonly elapsedMs: number;
}

export interface LoadSpec {
  /** http://host:port/path or tls://host:port, as seen from the client pod. */
  readonly target: string;
  readonly ratePerSecond?: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Answers later than this count as slow (time to recover). Default the load command's, 1000. */
  readonly slowMs?: number;
  /** Per-request deadline. Default 45 s: longer than an Agent's default hold (30 s). */
  readonly timeoutMs?: number;
  /** tls:// only: the CA file inside the client pod and the name to verify. */
  readonly ca?: string;
  readonly servername?: string;
}

const DEFAULT_TIMEOUT_MS = 45_000;

/** The `load` command's flags for a spec. */
export function loadArgs(spec: LoadSpec): string[] {
  return [
    "--target",
    spec.target,
    "--rate",
    String(spec.ratePerSecond ?? 20),
    "--timeout-ms",
    String(spec.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    ...(spec.slowMs === undefined ? [] : ["--slow-ms", String(spec.slowMs)]),
    ...Object.entries(spec.headers ?? {}).flatMap(([name, value]) => ["--header", `${name}: ${value}`]),
    ...(spec.ca === undefined ? [] : ["--ca", spec.ca]),
    ...(spec.servername === undefined ? [] : ["--servername", spec.servername]),
  ];
}

/** The JSON object lines of some output, in order (other lines skipped). */
export function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const value = JSON.parse(line) as unknown;
      if (typeof value === "object" && value !== null) out.push(value as Record<string, unknown>);
    } catch {
      // not JSON after all
    }
  }
  return out;
}

/** The exec command line from the client pod's idle line (undefined until it was printed). */
export function execFromIdle(logs: string): string[] | undefined {
  const idle = jsonLines(logs).find((line) => line["event"] === "idle");
  const exec = idle?.["exec"];
  if (!Array.isArray(exec) || exec.length === 0 || !exec.every((part) => typeof part === "string"))
    return undefined;
  return exec;
}

async function pause(ms: number): Promise<void> {
  await new Promise<void>((resolve) => setTimeout(resolve, ms));
}

export class ClientPod {
  readonly cluster: Cluster;
  readonly namespace: string;
  readonly name: string;
  /** How to run the demo image's entry point inside the pod (from its idle line). */
  readonly exec: readonly string[];

  constructor(cluster: Cluster, namespace: string, name: string, exec: readonly string[]) {
    this.cluster = cluster;
    this.namespace = namespace;
    this.name = name;
    this.exec = exec;
  }

  /** Creates the client pod (with `mounts`), waits until it runs and has printed its idle line. */
  static async start(
    cluster: Cluster,
    namespace: string,
    options: { name?: string; mounts?: readonly Mount[]; timeoutMs?: number } = {},
  ): Promise<ClientPod> {
    const name = options.name ?? CLIENT_POD;
    const timeoutMs = options.timeoutMs ?? 180_000;
    await cluster.apply(
      namespace,
      clientPod({ name, ...(options.mounts === undefined ? {} : { mounts: options.mounts }) }),
    );
    await cluster.wait(namespace, `pod/${name}`, "condition=Ready", Math.ceil(timeoutMs / 1000));
    const deadline = performance.now() + 30_000;
    let logs = "";
    while (performance.now() < deadline) {
      logs = await cluster.logs(namespace, name);
      const exec = execFromIdle(logs);
      if (exec !== undefined) return new ClientPod(cluster, namespace, name, exec);
      await pause(250);
    }
    throw new ClusterError(
      `client pod ${namespace}/${name}: no idle line within 30 s; logs: ${logs.slice(-2000)}`,
    );
  }

  /** Runs one demo-image command in the pod; resolves with its last JSON line. */
  async run(args: readonly string[], timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const result = await this.cluster.exec(this.namespace, this.name, [...this.exec, ...args], timeoutMs);
    const last = jsonLines(result.stdout).at(-1);
    if (last === undefined) {
      throw new ClusterError(
        `${args[0] ?? ""} in ${this.namespace}/${this.name} printed no JSON (exit ${result.code}): ${result.stderr.slice(-2000)}`,
      );
    }
    return last;
  }

  /** One HTTP request from the pod; throws when no answer came back. */
  async request(
    url: string,
    options: {
      method?: string;
      headers?: Readonly<Record<string, string>>;
      data?: string;
      timeoutMs?: number;
    } = {},
  ): Promise<HttpAnswer> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const line = await this.run(
      [
        "request",
        "--url",
        url,
        "--timeout-ms",
        String(timeoutMs),
        ...(options.method === undefined ? [] : ["--method", options.method]),
        ...Object.entries(options.headers ?? {}).flatMap(([name, value]) => [
          "--header",
          `${name}: ${value}`,
        ]),
        ...(options.data === undefined ? [] : ["--data", options.data]),
      ],
      timeoutMs + 30_000,
    );
    if (line["event"] !== "response") {
      throw new ClusterError(`request ${url} from ${this.name}: ${JSON.stringify(line)}`);
    }
    return line as unknown as HttpAnswer;
  }

  /** One verified TLS exchange from the pod (`tls://host:port`); throws on any failure. */
  async tls(url: string, ca: string, servername: string, timeoutMs = 30_000): Promise<TlsAnswer> {
    const line = await this.run(
      ["request", "--url", url, "--ca", ca, "--servername", servername, "--timeout-ms", String(timeoutMs)],
      timeoutMs + 30_000,
    );
    if (line["event"] !== "tls")
      throw new ClusterError(`tls ${url} from ${this.name}: ${JSON.stringify(line)}`);
    return line as unknown as TlsAnswer;
  }

  /** Starts the load command in the pod; resolves once it reports that traffic started. */
  async startLoad(spec: LoadSpec): Promise<RunningLoad> {
    const child = this.cluster.spawn(
      `load in ${this.namespace}/${this.name}`,
      ["exec", "-i", "-n", this.namespace, this.name, "--", ...this.exec, "load", ...loadArgs(spec)],
      "pipe",
    );
    try {
      await child.waitForLine(
        (line) => (jsonLines(line)[0]?.["event"] === "started" ? true : undefined),
        60_000,
      );
    } catch (error) {
      await child.kill();
      throw error;
    }
    return new RunningLoad(child, spec.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }
}

/** A load command running in the client pod, held open by this process's pipe to `kubectl exec -i`. */
export class RunningLoad {
  private readonly child: ChildHandle;
  private readonly timeoutMs: number;

  constructor(child: ChildHandle, timeoutMs: number) {
    this.child = child;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Tells the load to stop (a "stop" line, then the end of stdin), and resolves with its summary.
   * The load waits for its in-flight requests (at most the request timeout) before it answers.
   */
  async stop(): Promise<LoadSummary> {
    const summary = this.child.waitForLine((line) => {
      const parsed = jsonLines(line)[0];
      return parsed?.["event"] === "summary" ? (parsed as unknown as LoadSummary) : undefined;
    }, this.timeoutMs + 60_000);
    this.child.write("stop\n");
    this.child.endInput();
    try {
      return await summary;
    } finally {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.child.exited,
        new Promise((resolve) => (timer = setTimeout(resolve, 15_000))),
      ]);
      clearTimeout(timer);
      await this.child.kill();
    }
  }

  /** Kills the kubectl exec (the load in the pod sees its stdin end and stops). */
  async abort(): Promise<void> {
    await this.child.kill();
  }
}
