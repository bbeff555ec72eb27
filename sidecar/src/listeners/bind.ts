/** Binding a listener's server to its configured socket address (shared by the HTTP and TCP listeners). */
import { isIP, type Server } from "node:net";
import type { SocketAddress } from "@tether/envoy";
import { TetherError } from "../errors.ts";

/** The configured address, with the port the kernel actually bound (port 0 picks a free one). */
export function boundAddress(server: Server, sa: SocketAddress): { address: string; port: number } {
  const bound = server.address();
  return {
    address: sa.address,
    port: typeof bound === "object" && bound !== null ? bound.port : sa.port_value,
  };
}

/** A listener that could not bind its address; names both so a log line says which one. */
export class ListenerBindError extends TetherError {
  readonly listener: string;
  readonly address: string;
  /** The system's error code (EADDRINUSE, EADDRNOTAVAIL, EACCES...) or message. */
  readonly reason: string;

  constructor(listener: string, sa: SocketAddress, cause: unknown) {
    const address = `${sa.address}:${sa.port_value}`;
    const reason = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
    super("TETHER_ERR_LISTEN", `listener "${listener}" cannot bind ${address}: ${reason}`);
    this.listener = listener;
    this.address = address;
    this.reason = reason;
  }
}

/** The step net.Server.listen() ends in, kept under its old name: creates, binds and listens the handle. */
type SetUpListen = (
  address: string,
  port: number,
  addressType: number,
  backlog: number,
  fd: undefined,
  flags: number,
) => void;

/**
 * Listens on `address` (an IP address, or a name to resolve) and `port`; resolves on "listening",
 * rejects with the server's "error". net.Server.listen() asks node:cluster whether this process is a
 * cluster worker before it binds, loading cluster, child_process and dgram into a process that never
 * forks (~2 MB of resident memory in the sidecar). For an IP address the server's handle is set up
 * directly with the step listen() ends in (its `_listen2`, which emits "listening" or "error" as
 * listen() does); a name goes through listen() and its lookup.
 */
export function listenAt(server: Server, port: number, address: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    const family = isIP(address);
    const setUp = (server as Server & { _listen2?: SetUpListen })._listen2;
    // listen() refuses a port out of range or a server already listening: so does this, through it.
    const plain = Number.isInteger(port) && port >= 0 && port <= 65535 && !server.listening;
    try {
      // 511: listen()'s default backlog (the kernel rounds backlog + 1 up to a power of two).
      if (family !== 0 && plain && typeof setUp === "function") {
        setUp.call(server, address, port, family, 511, undefined, 0);
      } else {
        server.listen(port, address);
      }
    } catch (err) {
      server.off("error", onError);
      onError(err as Error);
    }
  });
}

/** Listens on the configured address; rejects with a ListenerBindError (address in use, ...). */
export async function listenOn(server: Server, sa: SocketAddress, listener: string): Promise<void> {
  try {
    await listenAt(server, sa.port_value, sa.address);
  } catch (err) {
    throw new ListenerBindError(listener, sa, err);
  }
}
