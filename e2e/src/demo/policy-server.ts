// A small demo policy server for Tether's demo, e2e tests and container images.
//
//   node e2e/src/demo/policy-server.ts --port 18081 --name ps1 [--protocol http|tcp]
//        [--host 127.0.0.1] [--keep-alive-timeout-ms 5000] [--handshake-timeout-ms 10000]
//
// HTTP mode answers decision requests (see http-server.ts); TCP mode speaks the line protocol
// with its own handshake (see line-protocol.ts). Once listening it prints one JSON line to
// stdout — {"event":"listening","server":…,"protocol":…,"host":…,"port":…,"instance":…,"pid":…} —
// which processes.ts waits for. `--port 0` picks a free port and reports it on that line.
// SIGTERM / SIGINT stop accepting, let in-flight requests finish (1 s at most) and exit 0.
import { randomBytes } from "node:crypto";
import type http from "node:http";
import type net from "node:net";
import { parseArgs } from "node:util";
import { createHttpPolicyServer } from "./http-server.ts";
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
}

export interface RunningPolicyServer {
  readonly identity: ServerIdentity;
  readonly protocol: PolicyProtocol;
  readonly host: string;
  readonly port: number;
  readonly counters: ServerCounters;
  /** Stops accepting, ends idle connections, waits for the rest up to `graceMs`. */
  close(graceMs?: number): Promise<void>;
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
  const server: net.Server | http.Server =
    protocol === "http"
      ? createHttpPolicyServer(identity, counters, { keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 5000 })
      : createTcpPolicyServer(identity, counters, {
          handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
        });
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
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return {
    identity,
    protocol,
    host,
    port,
    counters,
    close: async (graceMs = 1000) => {
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
    },
    strict: true,
  });
  const port = Number(values.port);
  if (values.port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new PolicyServerConfigError(`--port: expected an integer 0-65535, got ${values.port ?? "(none)"}`);
  }
  if (values.name === undefined || !/^[A-Za-z0-9._-]+$/.test(values.name)) {
    throw new PolicyServerConfigError(
      `--name: expected letters, digits, '.', '_' or '-', got ${values.name ?? "(none)"}`,
    );
  }
  if (values.protocol !== "http" && values.protocol !== "tcp") {
    throw new PolicyServerConfigError(`--protocol: expected http or tcp, got ${values.protocol}`);
  }
  return {
    name: values.name,
    port,
    host: values.host,
    protocol: values.protocol,
    ...(values.instance === undefined ? {} : { instance: values.instance }),
    keepAliveTimeoutMs: positiveInt(values["keep-alive-timeout-ms"], "--keep-alive-timeout-ms"),
    handshakeTimeoutMs: positiveInt(values["handshake-timeout-ms"], "--handshake-timeout-ms"),
  };
}

function positiveInt(value: string, flag: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) {
    throw new PolicyServerConfigError(`${flag}: expected a positive integer, got ${value}`);
  }
  return parsed;
}

async function main(): Promise<void> {
  let options: PolicyServerOptions;
  try {
    options = parsePolicyServerArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const running = await listenPolicyServer(options);
  process.stdout.write(
    JSON.stringify({
      event: "listening",
      server: running.identity.name,
      protocol: running.protocol,
      host: running.host,
      port: running.port,
      instance: running.identity.instance,
      pid: process.pid,
    }) + "\n",
  );
  const shutdown = (): void => {
    void running.close().then(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`policy server failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
