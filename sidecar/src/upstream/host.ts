// One upstream endpoint: its address, priority, health flags, passive-failure counters and pools.
import type { HealthStatus } from "@tether/envoy";
import { PLAIN_TRANSPORT, type Transport } from "./connect.ts";
import type { Pool } from "./pool.ts";
import { HostStats } from "./stats.ts";

/** Something holding a connection to this host that can be told to close (a tcp_proxy session). */
export interface HostSession {
  close(reason: string): void;
}

export class Host {
  readonly address: string;
  readonly port: number;
  readonly priority: number;
  readonly hostname: string | undefined;
  readonly key: string;
  readonly stats = new HostStats();
  /** Failed (or has not yet passed) active health checking. */
  failedActiveHc = false;
  /** Waiting for the first active health check result. */
  pendingActiveHc = false;
  outlierEjected = false;
  /**
   * The last connect to this host (traffic or an active check) failed before the TCP handshake
   * completed: refused, timed out, unreachable, reset. Panic routing skips such a host while it is out
   * of rotation; a completed handshake clears it.
   */
  unreachable = false;
  /** The control plane's view (EDS health_status); UNKNOWN for STATIC and STRICT_DNS hosts. */
  edsHealth: HealthStatus = "UNKNOWN";
  ejectedUntil = 0;
  ejectionCount = 0;
  consecutive5xx = 0;
  consecutiveGatewayFailure = 0;
  consecutiveLocalOriginFailure = 0;
  readonly sessions = new Set<HostSession>();
  pool: Pool | undefined;
  /** How connections to this endpoint are made: the cluster's transport socket, or a matched one. */
  readonly transport: Transport;

  constructor(
    address: string,
    port: number,
    priority: number,
    hostname?: string,
    transport: Transport = PLAIN_TRANSPORT,
  ) {
    this.address = address;
    this.port = port;
    this.priority = priority;
    this.hostname = hostname;
    this.transport = transport;
    this.key = address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
  }

  isHealthy(): boolean {
    return !this.failedActiveHc && !this.outlierEjected && !this.failedEdsHealth();
  }

  /** EDS says UNHEALTHY or TIMEOUT: out of rotation (used only in panic, as an unhealthy host). */
  failedEdsHealth(): boolean {
    return this.edsHealth === "UNHEALTHY" || this.edsHealth === "TIMEOUT";
  }

  /** EDS says DRAINING: no new requests or connections, not even in panic; in-flight work finishes. */
  draining(): boolean {
    return this.edsHealth === "DRAINING";
  }

  /** Envoy's health_flags text for /clusters. */
  healthFlags(): string {
    const flags: string[] = [];
    if (this.failedActiveHc) flags.push("/failed_active_hc");
    if (this.pendingActiveHc) flags.push("/pending_active_hc");
    if (this.outlierEjected) flags.push("/failed_outlier_check");
    if (this.failedEdsHealth()) flags.push("/failed_eds_health");
    if (this.draining()) flags.push("/eds_status_draining");
    return flags.length === 0 ? "healthy" : flags.join("");
  }
}
