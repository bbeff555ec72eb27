// Test helpers: child-process upstreams and sidecars on loopback, free ports, waiting with deadlines.
import { execSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { Agent, request } from "undici";

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, "../../bin/tether-sidecar.js");
const UPSTREAM = path.resolve(here, "upstream.ts");
const POLICY_SERVER = path.resolve(here, "../../../e2e/src/demo/policy-server.ts");

/**
 * A port nothing listens on now. Picked at random below Linux's ephemeral range (32768+), so the
 * outgoing connections of the tests running beside this one cannot take it between this call and
 * the bind that follows (with port 0 the kernel hands out ports from that very range).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    if (await bindable(candidate)) return candidate;
  }
  return listenOn(0);
}

async function bindable(port: number): Promise<boolean> {
  try {
    await listenOn(port);
    return true;
  } catch {
    return false;
  }
}

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => {
      const a = s.address();
      const bound = typeof a === "object" && a !== null ? a.port : 0;
      s.close(() => {
        resolve(bound);
      });
    });
  });
}

/** Polls `check` every 20 ms until it returns a value other than undefined/false, or throws at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastErr instanceof Error ? `: ${lastErr.message}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function waitForLine(
  proc: ChildProcess,
  match: (line: string) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf("\n")) !== -1) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (match(line)) {
          cleanup();
          resolve(line);
          return;
        }
      }
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`${what}: process exited with ${code}`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      proc.stdout?.off("data", onData);
      proc.off("exit", onExit);
    };
    proc.stdout?.on("data", onData);
    proc.once("exit", onExit);
  });
}

export function exited(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) =>
    proc.once("exit", (code) => {
      resolve(code);
    }),
  );
}

export interface UpstreamStats {
  connections: number;
  openConnections: number;
  lastServername?: string | false;
  lastClientCn?: string;
  paths: Record<string, number>;
}

/** A server run as a child process, which a test can kill, hang and resume. */
class ServerProcess {
  proc: ChildProcess | undefined;

  /** SIGKILL, then waits for the exit. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) return;
    this.proc = undefined;
    proc.kill("SIGKILL");
    await exited(proc);
  }

  /** SIGSTOP: the process hangs; its sockets stay open but nothing answers. */
  pause(): void {
    this.proc?.kill("SIGSTOP");
  }

  resume(): void {
    this.proc?.kill("SIGCONT");
  }
}

export class Upstream extends ServerProcess {
  readonly port: number;
  readonly name: string;
  readonly mode: "http" | "tcp";

  readonly tls: { cert: string; key: string } | undefined;
  readonly extraArgs: readonly string[];

  constructor(
    port: number,
    name: string,
    mode: "http" | "tcp" = "http",
    tls?: { cert: string; key: string },
    extraArgs: readonly string[] = [],
  ) {
    super();
    this.port = port;
    this.name = name;
    this.mode = mode;
    this.tls = tls;
    this.extraArgs = extraArgs;
  }

  async start(): Promise<this> {
    const tlsArgs = this.tls === undefined ? [] : ["--tls-cert", this.tls.cert, "--tls-key", this.tls.key];
    const args = [
      UPSTREAM,
      "--port",
      String(this.port),
      "--name",
      this.name,
      "--mode",
      this.mode,
      ...tlsArgs,
      ...this.extraArgs,
    ];
    const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    this.proc = proc;
    await waitForLine(proc, (l) => l.includes('"listening"'), `upstream ${this.name} to listen`);
    return this;
  }

  async stats(): Promise<UpstreamStats> {
    if (this.tls !== undefined) {
      const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
      const res = await request(`https://127.0.0.1:${this.port}/__stats`, { dispatcher });
      const body = (await res.body.json()) as UpstreamStats;
      await dispatcher.close();
      return body;
    }
    const res = await request(`http://127.0.0.1:${this.port}/__stats`, { reset: true });
    return (await res.body.json()) as UpstreamStats;
  }
}

export interface PolicyServerOptions {
  /** Address to bind (default 127.0.0.1). */
  readonly host?: string;
  /** `tcp`: the line protocol with its handshake (default http). */
  readonly protocol?: "http" | "tcp";
  /** Starts the process (argv[0] is node); default a plain child process. E.g. inside a netns. */
  readonly spawn?: (argv: readonly string[]) => ChildProcess;
}

/**
 * The demo policy server (e2e/src/demo/policy-server.ts) as a child process. HTTP mode: decisions on
 * GET /authorize, GET /healthz, and the notification stream (GET /notifications/stream, fed by
 * POST /notifications/publish); TCP mode: the line protocol (e2e/src/demo/line-protocol.ts).
 */
export class PolicyServer extends ServerProcess {
  readonly port: number;
  readonly name: string;
  readonly host: string;
  readonly protocol: "http" | "tcp";
  private readonly spawner: (argv: readonly string[]) => ChildProcess;

  constructor(port: number, name: string, options: PolicyServerOptions = {}) {
    super();
    this.port = port;
    this.name = name;
    this.host = options.host ?? "127.0.0.1";
    this.protocol = options.protocol ?? "http";
    this.spawner =
      options.spawn ??
      ((argv) => spawn(argv[0] ?? process.execPath, argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] }));
  }

  async start(): Promise<this> {
    const proc = this.spawner([
      process.execPath,
      POLICY_SERVER,
      "--port",
      String(this.port),
      "--name",
      this.name,
      "--host",
      this.host,
      "--protocol",
      this.protocol,
    ]);
    this.proc = proc;
    await waitForLine(proc, (l) => l.includes('"listening"'), `policy server ${this.name} to listen`);
    return this;
  }

  /** SIGTERM: the server stops accepting, closes idle connections, finishes in-flight requests, exits. */
  terminate(): Promise<number | null> {
    const proc = this.proc;
    if (proc === undefined) return Promise.resolve(null);
    this.proc = undefined;
    proc.kill("SIGTERM");
    return exited(proc);
  }

  /** Sends `event` to every open notification stream; returns how many streams got it. */
  async publish(event: object): Promise<number> {
    const res = await request(`http://${this.host}:${this.port}/notifications/publish`, {
      method: "POST",
      body: JSON.stringify(event),
    });
    const body = (await res.body.json()) as { delivered?: number };
    if (res.statusCode !== 200 || body.delivered === undefined) {
      throw new Error(`publish answered ${res.statusCode}: ${JSON.stringify(body)}`);
    }
    return body.delivered;
  }
}

export class Sidecar extends ServerProcess {
  readonly adminPort: number;
  readonly configFile: string;
  logs = "";

  constructor(adminPort: number, configFile: string) {
    super();
    this.adminPort = adminPort;
    this.configFile = configFile;
  }

  static writeConfig(yaml: string, dir = mkdtempSync(path.join(os.tmpdir(), "tether-test-"))): string {
    const file = path.join(dir, "envoy.yaml");
    writeFileSync(file, yaml);
    return file;
  }

  /** Command-line flags after the defaults (a later flag wins), e.g. the drain flags. */
  extraArgs: string[] = [];
  /** Flags for node itself, before the sidecar's script (the bin passes them on to its snapshot start). */
  nodeArgs: string[] = [];

  async start(waitReady = true): Promise<this> {
    const proc = spawn(
      process.execPath,
      [
        ...this.nodeArgs,
        BIN,
        "--config",
        this.configFile,
        "--log-level",
        "info",
        // No drain period: SIGTERM stops accepting at once, in-flight work gets 5 s.
        "--drain-time-s",
        "0",
        "--parent-shutdown-time-s",
        "5",
        ...this.extraArgs,
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    this.proc = proc;
    proc.stdout.on("data", (c: Buffer) => {
      this.logs += c.toString();
    });
    proc.stderr.on("data", (c: Buffer) => {
      this.logs += c.toString();
    });
    if (waitReady) {
      await waitFor("sidecar /ready", async () => {
        if (proc.exitCode !== null) throw new Error(`sidecar exited: ${this.logs}`);
        const res = await request(`http://127.0.0.1:${this.adminPort}/ready`);
        await res.body.text();
        return res.statusCode === 200;
      });
    }
    return this;
  }

  async metrics(): Promise<Map<string, number>> {
    const res = await request(`http://127.0.0.1:${this.adminPort}/stats/prometheus`);
    const text = await res.body.text();
    const out = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (line.startsWith("#") || line === "") continue;
      const i = line.lastIndexOf(" ");
      out.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return out;
  }

  async metric(name: string, cluster?: string): Promise<number> {
    const m = await this.metrics();
    const key = cluster === undefined ? name : `${name}{envoy_cluster_name="${cluster}"}`;
    return m.get(key) ?? NaN;
  }

  /** The health_flags the admin /clusters page shows for `cluster`'s host 127.0.0.1:`port` ("" if absent). */
  async healthFlags(cluster: string, port: number): Promise<string> {
    const text = await (await request(`http://127.0.0.1:${this.adminPort}/clusters`)).body.text();
    const line = text.split("\n").find((l) => l.startsWith(`${cluster}::127.0.0.1:${port}::health_flags::`));
    return line?.split("::")[3] ?? "";
  }

  /** SIGKILL, then waits for the exit. */
  stop(): Promise<void> {
    return this.kill();
  }
}

export interface ClusterOptions {
  name?: string;
  endpoints: { port: number; priority?: number }[];
  extra?: string;
  healthCheck?: string;
  lbPolicy?: string;
}

/** YAML for one STATIC cluster on loopback. */
export function clusterYaml(o: ClusterOptions): string {
  const name = o.name ?? "backend";
  const byPriority = new Map<number, number[]>();
  for (const e of o.endpoints) {
    const p = e.priority ?? 0;
    byPriority.set(p, [...(byPriority.get(p) ?? []), e.port]);
  }
  const endpoints = [...byPriority.entries()]
    .map(
      ([p, ports]) =>
        `        - priority: ${p}\n          lb_endpoints:\n` +
        ports
          .map(
            (port) =>
              `            - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } }`,
          )
          .join("\n"),
    )
    .join("\n");
  return `    - name: ${name}
      type: STATIC
      connect_timeout: 0.25s
      lb_policy: ${o.lbPolicy ?? "ROUND_ROBIN"}
      load_assignment:
        cluster_name: ${name}
        endpoints:
${endpoints}
${o.healthCheck ?? ""}${o.extra ?? ""}`;
}

export function healthCheckYaml(
  kind: "tcp" | "http",
  intervalS = 0.1,
  unhealthy = 2,
  healthy = 1,
  timeoutS = 0.25,
): string {
  const check = kind === "tcp" ? "tcp_health_check: {}" : "http_health_check: { path: /healthz }";
  return `      health_checks:
        - timeout: ${timeoutS}s
          interval: ${intervalS}s
          no_traffic_interval: ${intervalS}s
          unhealthy_threshold: ${unhealthy}
          healthy_threshold: ${healthy}
          ${check}
`;
}

export function bootstrapYaml(adminPort: number, listeners: string, clusters: string): string {
  return `admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ${adminPort} } }
static_resources:
  listeners:
${listeners}
  clusters:
${clusters}
`;
}

export interface RouteOptions {
  cluster?: string;
  timeout?: string;
  retryOn?: string;
  numRetries?: number;
  perTryTimeout?: string;
  backoff?: string;
  method?: string;
}

export function routeYaml(r: RouteOptions): string {
  const headers =
    r.method === undefined
      ? ""
      : `\n                          headers: [{ name: ":method", string_match: { exact: ${r.method} } }]`;
  const retry =
    r.retryOn === undefined
      ? ""
      : `
                          retry_policy:
                            retry_on: ${r.retryOn}
                            num_retries: ${r.numRetries ?? 1}${r.perTryTimeout ? `\n                            per_try_timeout: ${r.perTryTimeout}` : ""}
                            retry_back_off: { base_interval: ${r.backoff ?? "0.02s"}, max_interval: 0.2s }`;
  return `                      - match:
                          prefix: "/"${headers}
                        route:
                          cluster: ${r.cluster ?? "backend"}
                          timeout: ${r.timeout ?? "5s"}${retry}`;
}

/**
 * A bootstrap with the admin on `admin`, one HTTP listener on `listen` whose one route sends every
 * request to the cluster: `cluster` as YAML, or the options of a clusterYaml.
 */
export function oneRouteYaml(admin: number, listen: number, cluster: ClusterOptions | string): string {
  const clusters = typeof cluster === "string" ? cluster : clusterYaml(cluster);
  return bootstrapYaml(admin, httpListenerYaml(listen, [routeYaml({})]), clusters);
}

export function httpListenerYaml(port: number, routes: string[], name = "http"): string {
  return `    - name: ${name}
      address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress_http
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
${routes.join("\n")}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }`;
}

export function tcpListenerYaml(port: number, extra = "", cluster = "backend"): string {
  return `    - name: tcp
      address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.tcp_proxy
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                stat_prefix: tcp
                cluster: ${cluster}${extra}`;
}

export function protocolOptionsYaml(idle = "30s", maxRequests?: number): string {
  return `      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          common_http_protocol_options:
            idle_timeout: ${idle}${maxRequests === undefined ? "" : `\n            max_requests_per_connection: ${maxRequests}`}
          explicit_http_config: { http_protocol_options: {} }
`;
}

/** A CA, a server certificate for `policy.test` signed by it, and an unrelated CA, made with openssl. */
/**
 * A TLS client to 127.0.0.1:`port` for `servername`, trusting only `caFile`: resolves with the
 * fingerprint of the certificate it was shown once the handshake verifies, rejects otherwise or after 5 s.
 */
export async function tlsPeerFingerprint(
  port: number,
  caFile: string,
  servername = "policy.test",
): Promise<string | undefined> {
  const socket = tls.connect({ host: "127.0.0.1", port, servername, ca: readFileSync(caFile) });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no TLS handshake with 127.0.0.1:${port} within 5 s`));
      }, 5000);
      socket.once("secureConnect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    if (!socket.authorized) throw new Error(`TLS peer not authorized: ${String(socket.authorizationError)}`);
    return socket.getPeerX509Certificate()?.fingerprint256;
  } finally {
    socket.destroy();
  }
}

export function makeCertificates(): {
  dir: string;
  ca: string;
  wrongCa: string;
  cert: string;
  key: string;
  clientCert: string;
  clientKey: string;
} {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tether-tls-"));
  const f = (n: string): string => path.join(dir, n);
  const openssl = (args: string): void => {
    execSync(`openssl ${args}`, { cwd: dir, stdio: "ignore" });
  };
  openssl(`req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=tether-test-ca -keyout ca.key -out ca.pem`);
  openssl(`req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem`);
  openssl(`req -newkey rsa:2048 -nodes -subj /CN=policy.test -keyout server.key -out server.csr`);
  openssl(`req -newkey rsa:2048 -nodes -subj /CN=tether-agent -keyout client.key -out client.csr`);
  openssl(`x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem`);
  writeFileSync(f("san.ext"), "subjectAltName=DNS:policy.test\n");
  openssl(
    `x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem`,
  );
  return {
    dir,
    ca: f("ca.pem"),
    wrongCa: f("other.pem"),
    cert: f("server.pem"),
    key: f("server.key"),
    clientCert: f("client.pem"),
    clientKey: f("client.key"),
  };
}

/**
 * A line-oriented client of a tcp echo upstream (`whoami` answers with the backend's name), through
 * the sidecar at `port`. Its socket is destroyed by the test's `cleanups`.
 */
export class LineClient {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  /** When the connection closed (performance.now()), once it has. */
  closedAt: number | undefined;
  private buf = "";
  private readonly waiters: ((line: string) => void)[] = [];

  constructor(port: number, cleanups: (() => Promise<void> | void)[]) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.on("error", () => undefined);
    this.socket.on("data", (c: Buffer) => {
      this.buf += c.toString();
      let i;
      while ((i = this.buf.indexOf("\n")) !== -1) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        this.waiters.shift()?.(line);
      }
    });
    this.closed = new Promise((resolve) => {
      this.socket.once("close", () => {
        this.closedAt = performance.now();
        resolve();
      });
    });
    cleanups.push(() => {
      this.socket.destroy();
    });
  }

  ask(text: string, timeoutMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no answer to ${text}`));
      }, timeoutMs);
      this.waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
      this.socket.write(text + "\n");
    });
  }
}
