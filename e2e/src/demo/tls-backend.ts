// A demo TLS backend: the application server a broker passes TLS through to.
//
//   tls-backend --port 50001 --cert /etc/tls/tls.crt --key /etc/tls/tls.key [--name appserver-0]
//               [--host 0.0.0.0]
//
// On every connection it sends one JSON line naming itself, {"server": "<name>", "instance": "…"},
// then answers each line it receives with {"server": …, "echo": "<the line>"}. The certificate's CN
// is expected to be the backend's name (tls-client.ts checks it). Prints
// {"event":"listening","server":…,"host":…,"port":…,"instance":…,"pid":…} once listening; SIGTERM
// or SIGINT close it (connections are ended) and exit 0. A bad flag exits 2 naming it.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type net from "node:net";
import tls from "node:tls";
import { nameFlag, parseStringFlags, portFlag, runServerCli } from "./cli.ts";

export class TlsBackendConfigError extends Error {
  readonly code = "TETHER_ERR_DEMO_CONFIG";
  constructor(message: string) {
    super(`TETHER_ERR_DEMO_CONFIG: ${message}`);
    this.name = "TlsBackendConfigError";
  }
}

export interface TlsBackendOptions {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** PEM certificate (chain) and key. */
  readonly cert: string;
  readonly key: string;
}

export interface RunningTlsBackend {
  readonly name: string;
  readonly instance: string;
  readonly host: string;
  readonly port: number;
  /** Connections accepted (handshake done). */
  connections(): number;
  close(): Promise<void>;
}

const MAX_LINE = 64 * 1024;

/** Starts a TLS backend in this process; resolves once it listens. */
export async function listenTlsBackend(options: TlsBackendOptions): Promise<RunningTlsBackend> {
  const instance = `${process.pid.toString(36)}-${randomBytes(4).toString("hex")}`;
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = tls.createServer({ cert: options.cert, key: options.key }, (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.setEncoding("utf8");
    socket.write(JSON.stringify({ server: options.name, instance }) + "\n");
    let buffered = "";
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const line = buffered.slice(0, newline).replace(/\r$/, "");
        buffered = buffered.slice(newline + 1);
        socket.write(JSON.stringify({ server: options.name, echo: line }) + "\n");
        newline = buffered.indexOf("\n");
      }
      if (buffered.length > MAX_LINE) socket.destroy();
    });
    socket.on("end", () => socket.end());
  });
  // Handshake failures (a health check's bare TCP connect, a client refusing the certificate) are normal.
  server.on("tlsClientError", (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return {
    name: options.name,
    instance,
    host: options.host,
    port,
    connections: () => accepted,
    close: async () => {
      const closed = new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** Parses the flags and reads the PEM files; throws TlsBackendConfigError naming the bad flag. */
export function parseTlsBackendArgs(
  argv: readonly string[],
  defaultName: string,
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): TlsBackendOptions {
  const values = parseStringFlags(argv, ["port", "host", "name", "cert", "key"], TlsBackendConfigError);
  const port = portFlag(values.port, TlsBackendConfigError);
  const name = nameFlag(values.name ?? defaultName, TlsBackendConfigError);
  const pem = (flag: "cert" | "key"): string => {
    const path = values[flag];
    if (path === undefined) throw new TlsBackendConfigError(`--${flag}: required (a PEM file)`);
    try {
      return readFile(path);
    } catch (error) {
      throw new TlsBackendConfigError(
        `--${flag}: cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  };
  return { name, host: values.host ?? "0.0.0.0", port, cert: pem("cert"), key: pem("key") };
}

/** The command line: exit 2 naming a bad flag; listen, announce, close on SIGTERM/SIGINT. */
export async function runTlsBackendCli(argv: readonly string[], defaultName: string): Promise<void> {
  await runServerCli(
    () => parseTlsBackendArgs(argv, defaultName),
    listenTlsBackend,
    (running) => ({
      event: "listening",
      server: running.name,
      host: running.host,
      port: running.port,
      instance: running.instance,
      pid: process.pid,
    }),
  );
}
