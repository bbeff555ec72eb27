/** Binding a listener's server to its configured socket address (shared by the HTTP and TCP listeners). */
import type { Server } from "node:net";
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

/** Listens on the configured address; rejects with a ListenerBindError (address in use, ...). */
export async function listenOn(server: Server, sa: SocketAddress, listener: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new ListenerBindError(listener, sa, err));
    };
    server.once("error", onError);
    server.listen(sa.port_value, sa.address, () => {
      server.off("error", onError);
      resolve();
    });
  });
}
