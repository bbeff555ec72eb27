// A small demo policy server for Tether's demo, e2e tests and container images.
//
//   node e2e/src/demo/policy-server.ts --port 18081 --name ps1 [--protocol http|tcp]
//        [--host 127.0.0.1] [--keep-alive-timeout-ms 5000] [--handshake-timeout-ms 10000]
//        [--tls-cert tls.crt --tls-key tls.key]
//
// HTTP mode answers decision requests (see http-server.ts); TCP mode speaks the line protocol
// with its own handshake (see line-protocol.ts). Once listening it prints one JSON line to
// stdout — {"event":"listening","server":…,"protocol":…,"host":…,"port":…,"instance":…,"pid":…} —
// which processes.ts waits for. `--port 0` picks a free port and reports it on that line.
// SIGTERM / SIGINT stop accepting, let in-flight requests finish (1 s at most) and exit 0.
//
// HTTP mode also serves the decision cache's notification stream: `GET /notifications/stream`
// answers 200 with newline-delimited JSON kept open (a blank heartbeat line every 15 s), and
// `POST /notifications/publish` with `{"session": "<id>"}` or `{"type": "policy-changed"}` sends
// that line to every open stream and answers `{"delivered": n}`.
//
// With --tls-cert and --tls-key (HTTP mode) it serves HTTPS and follows the two files while they
// rotate (serving-cert.ts): a Secret update gives new handshakes the new certificate, announced as
// {"event":"tls-rotated","serial":…,"previousSerial":…}; a bad pair is announced on stderr as
// {"event":"tls-refused","error":"TETHER_ERR_DEMO_TLS: …"} and the previous pair stays.
import { randomBytes } from "node:crypto";
import type http from "node:http";
import type net from "node:net";
import type tls from "node:tls";
import { parseArgs } from "node:util";
import { nameFlag, portFlag, runServerCli } from "./cli.ts";
import { createHttpPolicyServer } from "./http-server.ts";
import { ServingCertificate, readServingPair, type ServingCertFiles } from "./serving-cert.ts";
import { newCounters } from "./server-common.ts";
import type { ServerCounters, ServerIdentity } from "./server-common.ts";
import { createTcpPolicyServer } from "./tcp-server.ts";

export type PolicyProtocol = "http" | "tcp";

export interface PolicyServerOptions {
  readonly name: string;
  readonly port: number;
  readonly host?: string;
  readonly protocol?: PolicyProtocol;
  /** Defaults to a fresh random id: each start is a new instance. */
  readonly instance?: string;
  readonly keepAliveTimeoutMs?: number;
  readonly handshakeTimeoutMs?: number;
  /** HTTP mode only: serve HTTPS with these files, followed while they rotate. */
  readonly tls?: ServingCertFiles;
  /** Where the server reports what happens to it (a certificate rotated or refused). Default: nowhere. */
  readonly report?: (event: Record<string, unknown>) => void;
}

export interface RunningPolicyServer {
  readonly identity: ServerIdentity;
  readonly protocol: PolicyProtocol;
  readonly host: string;
  readonly port: number;
  readonly counters: ServerCounters;
  /** With TLS: the serial number of the certificate new handshakes present; else null. */
  certificateSerial(): string | null;
  /** Sends one notification line to every open notification stream (HTTP only); returns how many. */
  notify(event: object): number;
  /** Stops accepting, ends idle connections, waits for the rest up to `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

export const NOTIFICATION_STREAM_PATH = "/notifications/stream";
export const NOTIFICATION_PUBLISH_PATH = "/notifications/publish";
const HEARTBEAT_MS = 15_000;

/** Streams of notifications to subscribed sidecars; a separate layer in front of the decision handler. */
class NotificationStreams {
  private readonly open = new Set<http.ServerResponse>();

  /** Routes the notification paths here and every other request to the server's own handler. */
  attach(server: http.Server): void {
    const decisions = server.listeners("request") as ((
      req: http.IncomingMessage,
      res: http.ServerResponse,
    ) => void)[];
    server.removeAllListeners("request");
    server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && path === NOTIFICATION_STREAM_PATH) this.subscribe(res);
      else if (req.method === "POST" && path === NOTIFICATION_PUBLISH_PATH) this.publishFrom(req, res);
      else for (const handler of decisions) handler.call(server, req, res);
    });
  }

  notify(event: object): number {
    const line = JSON.stringify(event) + "\n";
    for (const res of this.open) res.write(line);
    return this.open.size;
  }

  endAll(): void {
    for (const res of this.open) res.end();
  }

  private subscribe(res: http.ServerResponse): void {
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    res.flushHeaders();
    this.open.add(res);
    const heartbeat = setInterval(() => res.write("\n"), HEARTBEAT_MS);
    res.on("close", () => {
      clearInterval(heartbeat);
      this.open.delete(res);
    });
  }

  private publishFrom(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let event: unknown;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        event = undefined;
      }
      const ok =
        typeof event === "object" &&
        event !== null &&
        (typeof (event as { session?: unknown }).session === "string" ||
          (event as { type?: unknown }).type === "policy-changed");
      res.setHeader("content-type", "application/json");
      if (!ok) {
        res.statusCode = 400;
        res.end(JSON.stringify({ error: 'expected {"session": "<id>"} or {"type": "policy-changed"}' }));
        return;
      }
      res.end(JSON.stringify({ delivered: this.notify(event as object) }));
    });
  }
}

export class PolicyServerConfigError extends Error {
  readonly code = "TETHER_ERR_DEMO_CONFIG";
  constructor(message: string) {
    super(`TETHER_ERR_DEMO_CONFIG: ${message}`);
    this.name = "PolicyServerConfigError";
  }
}

export function newInstanceId(): string {
  return `${process.pid.toString(36)}-${randomBytes(4).toString("hex")}`;
}

/** Starts a policy server in this process and resolves once it listens. */
export async function listenPolicyServer(options: PolicyServerOptions): Promise<RunningPolicyServer> {
  const identity: ServerIdentity = { name: options.name, instance: options.instance ?? newInstanceId() };
  const protocol = options.protocol ?? "http";
  const host = options.host ?? "127.0.0.1";
  const counters = newCounters();
  if (options.tls !== undefined && protocol !== "http") {
    throw new PolicyServerConfigError("--tls-cert: TLS is served in http mode only");
  }
  const pair = options.tls === undefined ? undefined : await readServingPair(options.tls);
  const server: net.Server | http.Server =
    protocol === "http"
      ? createHttpPolicyServer(identity, counters, {
          keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 5000,
          ...(pair === undefined ? {} : { tls: pair }),
        })
      : createTcpPolicyServer(identity, counters, {
          handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
        });
  const report = options.report ?? ((): void => undefined);
  const certificate =
    options.tls === undefined || pair === undefined
      ? undefined
      : new ServingCertificate(options.tls, pair, {
          onRotate: (next, previous) => {
            // New handshakes present the new pair; open connections keep the one they were given.
            (server as tls.Server).setSecureContext({ cert: next.cert, key: next.key });
            report({
              event: "tls-rotated",
              server: identity.name,
              serial: next.serial,
              previousSerial: previous.serial,
            });
          },
          onRefused: (error) => {
            report({ event: "tls-refused", server: identity.name, error: error.message });
          },
        });
  const notifications = new NotificationStreams();
  if (protocol === "http") notifications.attach(server as http.Server);
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: options.port, host }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  certificate?.watch();
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return {
    identity,
    protocol,
    host,
    port,
    counters,
    certificateSerial: () => certificate?.current.serial ?? null,
    notify: (event) => notifications.notify(event),
    close: async (graceMs = 1000) => {
      certificate?.close();
      notifications.endAll();
      const closed = new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
      if ("closeIdleConnections" in server) server.closeIdleConnections();
      if (protocol === "tcp") for (const socket of sockets) socket.end();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          for (const socket of sockets) socket.destroy();
          resolve();
        }, graceMs);
      });
      await Promise.race([closed, deadline]);
      clearTimeout(timer);
    },
  };
}

/** Parses the command line; throws PolicyServerConfigError naming the bad flag. */
export function parsePolicyServerArgs(argv: readonly string[]): PolicyServerOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      port: { type: "string" },
      name: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      protocol: { type: "string", default: "http" },
      instance: { type: "string" },
      "keep-alive-timeout-ms": { type: "string", default: "5000" },
      "handshake-timeout-ms": { type: "string", default: "10000" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
    },
    strict: true,
  });
  const port = portFlag(values.port, PolicyServerConfigError);
  const name = nameFlag(values.name, PolicyServerConfigError);
  if (values.protocol !== "http" && values.protocol !== "tcp") {
    throw new PolicyServerConfigError(`--protocol: expected http or tcp, got ${values.protocol}`);
  }
  const certFile = values["tls-cert"];
  const keyFile = values["tls-key"];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new PolicyServerConfigError(
      certFile === undefined ? "--tls-cert: required with --tls-key" : "--tls-key: required with --tls-cert",
    );
  }
  if (certFile !== undefined && values.protocol !== "http") {
    throw new PolicyServerConfigError("--tls-cert: TLS is served in http mode only");
  }
  return {
    name,
    port,
    host: values.host,
    protocol: values.protocol,
    ...(values.instance === undefined ? {} : { instance: values.instance }),
    keepAliveTimeoutMs: positiveInt(values["keep-alive-timeout-ms"], "--keep-alive-timeout-ms"),
    handshakeTimeoutMs: positiveInt(values["handshake-timeout-ms"], "--handshake-timeout-ms"),
    ...(certFile === undefined || keyFile === undefined ? {} : { tls: { certFile, keyFile } }),
  };
}

function positiveInt(value: string, flag: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) {
    throw new PolicyServerConfigError(`${flag}: expected a positive integer, got ${value}`);
  }
  return parsed;
}

/** One JSON line per event: a refused certificate on stderr, anything else on stdout. */
function reportLine(event: Record<string, unknown>): void {
  (event["event"] === "tls-refused" ? process.stderr : process.stdout).write(JSON.stringify(event) + "\n");
}

/**
 * The command line: parse `argv` (exit 2 naming the bad flag), listen, announce a "listening" JSON
 * line on stdout, close on SIGTERM/SIGINT. Shared by this file's main and the image entry point.
 */
export async function runPolicyServerCli(argv: readonly string[]): Promise<void> {
  await runServerCli(
    () => parsePolicyServerArgs(argv),
    (options) => listenPolicyServer({ ...options, report: reportLine }),
    (running) => {
      const certSerial = running.certificateSerial();
      return {
        event: "listening",
        server: running.identity.name,
        protocol: running.protocol,
        host: running.host,
        port: running.port,
        instance: running.identity.instance,
        pid: process.pid,
        ...(certSerial === null ? {} : { tls: true, certSerial }),
      };
    },
  );
}

if (import.meta.main) {
  runPolicyServerCli(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`policy server failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
