// Opening upstream TCP connections: connect timeout, keepalive, per-cluster/host accounting, and
// failure classes (refused / timeout / dns / tls / unreachable) with elapsed time in logs and metrics.
// Signs that a server is going away — it closed or reset a connection we did not close, or refused
// or reset a new one — are passed to the context (the cluster checks the host at once).
import net from "node:net";
import tls, { type ConnectionOptions } from "node:tls";
import type { Logger } from "../log.ts";
import { nextConnectionId } from "../log.ts";
import { timerDelay } from "../timers.ts";
import type { Host } from "./host.ts";
import { proxyHeaderV1, proxyHeaderV2, type ProxiedAddresses } from "./proxy-protocol.ts";
import { SubjectAltNameMismatch, type SubjectAltNameVerifier } from "./san.ts";
import type { TlsMaterial } from "./tls-material.ts";
import type { ClusterStats, ConnectFailureClass, ImmediateCheckReason } from "./stats.ts";

export class UpstreamConnectError extends Error {
  readonly code = "TETHER_ERR_UPSTREAM_CONNECT";
  readonly failureClass: ConnectFailureClass;
  readonly elapsedMs: number;
  readonly endpoint: string;

  constructor(
    endpoint: string,
    failureClass: ConnectFailureClass,
    elapsedMs: number,
    cause: Error | undefined,
  ) {
    super(`connect to ${endpoint} failed (${failureClass}) after ${Math.round(elapsedMs)} ms`, { cause });
    this.name = "UpstreamConnectError";
    this.failureClass = failureClass;
    this.elapsedMs = elapsedMs;
    this.endpoint = endpoint;
  }
}

export function classifyConnectError(err: unknown): ConnectFailureClass {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return "other";
  if (code === "ECONNREFUSED") return "refused";
  if (code === "ETIMEDOUT" || code === "UND_ERR_CONNECT_TIMEOUT") return "timeout";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_FAIL") return "dns";
  if (code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || code.includes("CERT")) return "tls";
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "EHOSTDOWN") return "unreachable";
  if (code === "ECONNRESET" || code === "EPIPE") return "reset";
  return "other";
}

/** How bytes reach the upstream: optional PROXY protocol header first, then optional TLS. */
export interface Transport {
  readonly tls: ConnectionOptions | undefined;
  readonly proxyProtocol: "V1" | "V2" | undefined;
  /** match_typed_subject_alt_names, checked once the TLS handshake is done. */
  readonly subjectAltNames?: SubjectAltNameVerifier | undefined;
  /** The TLS files behind `tls`, followed while they rotate (tls-material.ts). */
  readonly material?: TlsMaterial;
}

export const PLAIN_TRANSPORT: Transport = { tls: undefined, proxyProtocol: undefined };

export interface ConnectContext {
  readonly clusterName: string;
  readonly stats: ClusterStats;
  readonly log: Logger;
  readonly connectTimeoutMs: number;
  /** Seconds of idle before TCP keepalive probes, when upstream_connection_options.tcp_keepalive is set. */
  readonly keepAliveTimeS: number | undefined;
  /** The server at `host` closed, reset or refused a connection: it may be going away. */
  onUpstreamSignal?(host: Host, reason: ImmediateCheckReason): void;
  /**
   * A connect to `host` ended: `reachable` is whether its TCP handshake completed, `established`
   * whether the whole connect (PROXY header, TLS) did.
   */
  onConnectResult?(host: Host, reachable: boolean, established: boolean): void;
}

/** Why a dial failed, and whether the TCP handshake had completed (a TLS failure, not an unreachable host). */
export interface DialFailure {
  readonly cls: ConnectFailureClass;
  readonly cause: Error | undefined;
  readonly tcpConnected: boolean;
}

export type DialCallback = (failure: DialFailure | null, socket: net.Socket | null) => void;

/**
 * TCP connect, then the PROXY header (when configured), then the TLS handshake (when configured),
 * all within `timeoutMs`. The callback runs exactly once; on failure the socket is destroyed.
 */
export function dial(
  host: Host,
  transport: Transport,
  proxied: ProxiedAddresses | undefined,
  timeoutMs: number,
  callback: DialCallback,
  onread?: net.OnReadOpts,
): net.Socket {
  // `onread` reads straight into the caller's buffer; TLS reads the raw socket itself, so not there.
  const plainOnread = transport.tls === undefined ? onread : undefined;
  const raw = net.connect({
    host: host.address,
    port: host.port,
    noDelay: true,
    ...(plainOnread !== undefined ? { onread: plainOnread } : {}),
  });
  let current: net.Socket = raw;
  let tcpConnected = false;
  let settled = false;
  const settle = (failure: { cls: ConnectFailureClass; cause: Error | undefined } | null): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (failure !== null) {
      current.destroy();
      raw.destroy();
      callback({ cls: failure.cls, cause: failure.cause, tcpConnected }, null);
      return;
    }
    current.removeAllListeners("error");
    raw.removeAllListeners("error");
    callback(null, current);
  };
  const timer = setTimeout(() => {
    settle({ cls: "timeout", cause: undefined });
  }, timerDelay(timeoutMs));
  const onError = (err: Error): void => {
    // A failure after the TCP handshake but before the TLS one completed is a TLS failure.
    settle({
      cls: tcpConnected && transport.tls !== undefined ? "tls" : classifyConnectError(err),
      cause: err,
    });
  };
  raw.once("error", onError);
  raw.once("connect", () => {
    tcpConnected = true;
    if (transport.proxyProtocol !== undefined) {
      raw.write(transport.proxyProtocol === "V2" ? proxyHeaderV2(proxied) : proxyHeaderV1(proxied));
    }
    if (transport.tls === undefined) {
      settle(null);
      return;
    }
    const secure = tls.connect({ ...transport.tls, socket: raw });
    current = secure;
    secure.once("error", onError);
    secure.once("secureConnect", () => {
      // After the chain (when trusted_ca is set): a certificate for another name fails the connect,
      // before a byte of the request is written.
      const mismatch = transport.subjectAltNames?.verify(secure.getPeerCertificate());
      settle(mismatch === undefined ? null : { cls: "tls", cause: mismatch });
    });
  });
  return raw;
}

export type ConnectCallback = (err: UpstreamConnectError | null, socket: net.Socket | null) => void;

/**
 * Opens a connection to `host` over its transport (the cluster's transport socket, or the one its
 * metadata matched); the callback runs exactly once. Accounting follows the socket's life.
 * `conn` is the downstream connection the attempt serves (tcp_proxy), logged with a failure.
 * `onread` (net's option) reads a plain TCP connection into a caller's buffer; a TLS one emits 'data'.
 */
export function connectUpstream(
  ctx: ConnectContext,
  host: Host,
  callback: ConnectCallback,
  proxied?: ProxiedAddresses,
  conn?: number | string,
  onread?: net.OnReadOpts,
): void {
  const started = performance.now();
  const onDialed: DialCallback = (failure, socket) => {
    if (failure !== null || socket === null) {
      const cls = failure?.cls ?? "other";
      const elapsed = performance.now() - started;
      ctx.stats.counters.upstream_cx_connect_fail++;
      if (cls === "timeout") ctx.stats.counters.upstream_cx_connect_timeout++;
      ctx.stats.connectFailures[cls]++;
      if (failure?.cause instanceof SubjectAltNameMismatch) ctx.stats.counters["ssl.fail_verify_san"]++;
      host.stats.cx_connect_fail++;
      ctx.log.warn(
        {
          ...(conn !== undefined ? { conn } : {}),
          cluster: ctx.clusterName,
          upstream: host.key,
          errorClass: cls,
          elapsedMs: Math.round(elapsed),
          err: failure?.cause?.message,
        },
        "upstream connect failed",
      );
      ctx.onConnectResult?.(host, failure?.tcpConnected === true, false);
      callback(new UpstreamConnectError(host.key, cls, elapsed, failure?.cause), null);
      if (cls === "refused") ctx.onUpstreamSignal?.(host, "connect_refused");
      else if (cls === "reset") ctx.onUpstreamSignal?.(host, "connect_reset");
      return;
    }
    if (ctx.keepAliveTimeS !== undefined) socket.setKeepAlive(true, ctx.keepAliveTimeS * 1000);
    trackConnection(ctx, host, socket, started);
    ctx.onConnectResult?.(host, true, true);
    callback(null, socket);
  };
  dial(host, host.transport, proxied, ctx.connectTimeoutMs, onDialed, onread);
}

function trackConnection(ctx: ConnectContext, host: Host, socket: net.Socket, started: number): void {
  const id = nextConnectionId("u");
  const stats = ctx.stats;
  stats.counters.upstream_cx_total++;
  stats.upstream_cx_active++;
  host.stats.cx_total++;
  host.stats.cx_active++;
  // Who ended the connection: the server (a FIN before ours, or a reset), or we (our FIN first, or
  // destroy — an idle timeout, a pool closing, a finished tcp_proxy session).
  let remote: "close" | "reset" | undefined;
  ctx.log.info({ conn: id, cluster: ctx.clusterName, upstream: host.key }, "upstream connection open");
  // Prepended: with allowHalfOpen off, net's own 'end' handler ends our side before other listeners
  // run, so only here does writableEnded still tell whether we had sent our FIN first.
  socket.prependOnceListener("end", () => {
    if (socket.writableEnded || remote !== undefined) return;
    remote = "close";
    ctx.onUpstreamSignal?.(host, "remote_close");
  });
  // The HTTP pool and tcp_proxy attach their own error handlers; this one keeps a stray error from crashing.
  socket.on("error", (err: Error) => {
    if (remote !== undefined || classifyConnectError(err) !== "reset") return;
    remote = "reset";
    ctx.onUpstreamSignal?.(host, "remote_reset");
  });
  socket.once("close", () => {
    stats.upstream_cx_active--;
    host.stats.cx_active--;
    if (remote !== undefined) stats.counters.upstream_cx_destroy_remote++;
    else stats.counters.upstream_cx_destroy_local++;
    stats.counters.upstream_cx_rx_bytes_total += socket.bytesRead;
    stats.counters.upstream_cx_tx_bytes_total += socket.bytesWritten;
    ctx.log.info(
      {
        conn: id,
        cluster: ctx.clusterName,
        upstream: host.key,
        bytesIn: socket.bytesRead,
        bytesOut: socket.bytesWritten,
        durationMs: Math.round(performance.now() - started),
        reason: remote === undefined ? "local_close" : `remote_${remote}`,
      },
      "upstream connection closed",
    );
  });
}
