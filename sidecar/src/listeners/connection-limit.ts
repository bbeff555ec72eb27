// A listener's cap on open downstream connections: Envoy's connection_limit network filter when the
// chain has one, else Tether's default (Envoy has no default; a sidecar without one runs out of file
// descriptors, and its agent with it, when a client opens connections and never closes them).
import type { Socket } from "node:net";
import { CONNECTION_LIMIT_TYPE, type ConnectionLimitConfig, type ListenerConfig } from "@tether/envoy";

export const DEFAULT_MAX_DOWNSTREAM_CONNECTIONS = 10_000;

/** The listener chain's connection_limit filter, if it has one. */
export function connectionLimitOf(listener: ListenerConfig): ConnectionLimitConfig | undefined {
  for (const f of listener.filter_chains[0]?.filters ?? []) {
    const tc = f.typed_config;
    if (tc["@type"] === CONNECTION_LIMIT_TYPE) return tc;
  }
  return undefined;
}

export class ConnectionLimitStats {
  /** connection_limit.<stat_prefix>.limited_connections: closed by the filter's limit. */
  limited_connections = 0;
  /** listener.<address>.downstream_cx_overflow: closed by the default limit (no filter). */
  downstream_cx_overflow = 0;
}

function closeHeld(socket: Socket): void {
  socket.destroy();
}

export class ConnectionLimit {
  readonly stats = new ConnectionLimitStats();
  /** The filter's stat_prefix; undefined while the default limit applies. */
  prefix: string | undefined;
  max = DEFAULT_MAX_DOWNSTREAM_CONNECTIONS;
  private delayMs = 0;
  /** Admitted connections still open (connection_limit.<stat_prefix>.active_connections). */
  active = 0;
  /** Connections over the limit held for `delay` before they are closed. */
  private readonly held = new Map<Socket, NodeJS.Timeout>();

  constructor(listener: ListenerConfig) {
    this.configure(listener);
  }

  /** A reload keeps the count of open connections; the new limit applies to the next ones. */
  configure(listener: ListenerConfig): void {
    const filter = connectionLimitOf(listener);
    this.prefix = filter?.stat_prefix;
    this.max = filter?.max_connections ?? DEFAULT_MAX_DOWNSTREAM_CONNECTIONS;
    this.delayMs = filter?.delay ?? 0;
  }

  /** True (and counted as open) when a new connection is under the limit; release() it at close. */
  admit(): boolean {
    if (this.active < this.max) {
      this.active++;
      return true;
    }
    if (this.prefix === undefined) this.stats.downstream_cx_overflow++;
    else this.stats.limited_connections++;
    return false;
  }

  release(): void {
    this.active--;
  }

  /** Closes a connection admit() refused: at once, or after the filter's delay without reading it. */
  reject(socket: Socket): void {
    if (this.delayMs <= 0) {
      socket.destroy();
      return;
    }
    socket.pause();
    socket.on("error", () => undefined);
    this.held.set(socket, setTimeout(closeHeld, this.delayMs, socket));
    socket.once("close", () => {
      clearTimeout(this.held.get(socket));
      this.held.delete(socket);
    });
  }

  isHeld(socket: Socket): boolean {
    return this.held.has(socket);
  }

  /** Drain: held connections go at once. */
  closeAllHeld(): void {
    for (const socket of [...this.held.keys()]) socket.destroy();
  }
}
