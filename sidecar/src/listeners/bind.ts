/** Binding a listener's server to its configured socket address (shared by the HTTP and TCP listeners). */
import type { Server } from "node:net";
import type { SocketAddress } from "../config/schema.ts";

/** The configured address, with the port the kernel actually bound (port 0 picks a free one). */
export function boundAddress(server: Server, sa: SocketAddress): { address: string; port: number } {
  const bound = server.address();
  return {
    address: sa.address,
    port: typeof bound === "object" && bound !== null ? bound.port : sa.port_value,
  };
}

/** Listens on the configured address; rejects with the bind error (address in use, ...). */
export async function listenOn(server: Server, sa: SocketAddress): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(sa.port_value, sa.address, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
