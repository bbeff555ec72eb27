// One host's active checks on the wire. As in Envoy (reuse_connection, default true), an HTTP check
// keeps its connection for the next check when the response allows it (HTTP/1.1 keep-alive, a framed
// body); any failure or timeout closes it, and so does the host or cluster going away. A tcp check
// (connect only) is its own connection, closed at once, as in Envoy. A kept connection that turns
// out stale (closed or reset before any byte of the answer) is replaced by a new one within the same
// check, so a server closing idle connections is not taken for a failing one.
import type net from "node:net";
import type { HealthCheckConfig } from "@tether/envoy";
import { classifyConnectError, dial, type Transport } from "./connect.ts";
import type { HealthCheckFailure } from "./health-check.ts";
import { HealthCheckResponseReader } from "./health-response.ts";
import type { Host } from "./host.ts";
import { SubjectAltNameMismatch } from "./san.ts";
import type { HealthCheckFailureClass } from "./stats.ts";
import { timerDelay } from "../timers.ts";

export interface ProbeResult {
  /** Undefined when the check passed. */
  readonly failure: HealthCheckFailure | undefined;
  /** The server's certificate failed match_typed_subject_alt_names (ssl.fail_verify_san). */
  readonly sanMismatch: boolean;
  /** The check's TCP handshake completed: the host is reachable, whatever it answered. */
  readonly reachable: boolean;
}

const PASSED: ProbeResult = { failure: undefined, sanMismatch: false, reachable: true };

function failed(
  cls: HealthCheckFailureClass,
  message: string | undefined,
  reachable = true,
  sanMismatch = false,
): ProbeResult {
  return { failure: { cls, message }, sanMismatch, reachable };
}

/** Events a check listens to on its connection, removed when the connection goes back to idle. */
interface Listeners {
  readonly data: (chunk: Buffer) => void;
  readonly error: (err: Error) => void;
  readonly close: () => void;
}

export class HostProbe {
  private readonly host: Host;
  private readonly config: HealthCheckConfig;
  private readonly transport: Transport;
  /** The connection kept between checks, with the listener that forgets it when it closes. */
  private idle: { socket: net.Socket; gone: () => void } | undefined;
  /** Cuts the running check short (stop, host removed). */
  private cancelRunning: (() => void) | undefined;

  constructor(host: Host, config: HealthCheckConfig, transport: Transport) {
    this.host = host;
    this.config = config;
    this.transport = transport;
  }

  /** Runs one check; `done` runs exactly once, unless close() cut the check short. */
  run(done: (result: ProbeResult) => void): void {
    const config = this.config;
    const deadline = performance.now() + config.timeout;
    let finished = false;
    /** A TCP handshake completed (a kept connection had one). */
    let tcpConnected = false;
    let socket: net.Socket | undefined;
    let listeners: Listeners | undefined;
    const detach = (): void => {
      if (socket === undefined || listeners === undefined) return;
      socket.off("data", listeners.data);
      socket.off("error", listeners.error);
      socket.off("close", listeners.close);
      socket.off("end", listeners.close);
      listeners = undefined;
    };
    const finish = (result: ProbeResult, keep = false): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      this.cancelRunning = undefined;
      detach();
      if (keep && socket !== undefined) this.keepIdle(socket);
      else socket?.destroy();
      done(result);
    };
    const timer = setTimeout(() => {
      finish(failed("timeout", `no result within ${config.timeout} ms`, tcpConnected));
    }, timerDelay(config.timeout));
    this.cancelRunning = () => {
      finished = true;
      clearTimeout(timer);
      detach();
      socket?.destroy();
    };

    const http = config.http_health_check;
    const reuse = http !== undefined && config.reuse_connection;
    const request =
      http === undefined
        ? ""
        : `GET ${http.path} HTTP/1.1\r\nhost: ${http.host ?? this.host.hostname ?? this.host.key}\r\n` +
          `user-agent: Envoy/HC\r\n${reuse ? "" : "connection: close\r\n"}\r\n`;

    const exchange = (connected: net.Socket, reused: boolean): void => {
      socket = connected;
      if (http === undefined) {
        finish(PASSED);
        return;
      }
      const reader = new HealthCheckResponseReader();
      // A kept connection the server closed or reset before answering was stale: dial a new one.
      const staleOrFailed = (cls: HealthCheckFailureClass, message: string): void => {
        if (reused && !reader.started) {
          detach();
          connected.destroy();
          socket = undefined;
          connectNew();
          return;
        }
        finish(failed(cls, message));
      };
      listeners = {
        data: (chunk) => {
          const outcome = reader.push(chunk);
          if (outcome === undefined) return;
          if (outcome.kind === "malformed") {
            finish(failed("status", outcome.message));
            return;
          }
          const ok = statusExpected(outcome.status, http.expected_statuses);
          finish(ok ? PASSED : failed("status", `status ${outcome.status}`), ok && reuse && outcome.reusable);
        },
        error: (err) => {
          staleOrFailed(classifyConnectError(err), err.message);
        },
        close: () => {
          staleOrFailed("reset", "connection closed before a response");
        },
      };
      connected.on("data", listeners.data);
      connected.on("error", listeners.error);
      connected.on("close", listeners.close);
      connected.on("end", listeners.close);
      connected.write(request);
    };

    const connectNew = (): void => {
      const remaining = Math.max(1, deadline - performance.now());
      socket = dial(this.host, this.transport, undefined, remaining, (failure, connected) => {
        if (finished) {
          connected?.destroy();
          return;
        }
        if (failure !== null || connected === null) {
          socket = undefined;
          const cause = failure?.cause;
          finish(
            failed(
              failure?.cls ?? "other",
              cause?.message,
              failure?.tcpConnected === true,
              cause instanceof SubjectAltNameMismatch,
            ),
          );
          return;
        }
        exchange(connected, false);
      });
      socket.once("connect", () => {
        tcpConnected = true;
      });
    };

    const kept = this.takeIdle();
    tcpConnected = kept !== undefined;
    if (kept !== undefined) exchange(kept, true);
    else connectNew();
  }

  /** Closes the kept connection and cuts a running check short (its `done` never runs). */
  close(): void {
    this.cancelRunning?.();
    this.cancelRunning = undefined;
    this.takeIdle()?.destroy();
  }

  private keepIdle(socket: net.Socket): void {
    const gone = (): void => {
      if (this.idle?.socket !== socket) return;
      this.idle = undefined;
      socket.off("close", gone);
      socket.off("end", gone);
      socket.off("error", gone);
      socket.destroy();
    };
    socket.on("close", gone);
    socket.on("end", gone);
    socket.on("error", gone);
    this.idle = { socket, gone };
  }

  /** The kept connection, if it is still open; its idle listeners removed. */
  private takeIdle(): net.Socket | undefined {
    const idle = this.idle;
    if (idle === undefined) return undefined;
    this.idle = undefined;
    idle.socket.off("close", idle.gone);
    idle.socket.off("end", idle.gone);
    idle.socket.off("error", idle.gone);
    if (idle.socket.destroyed || !idle.socket.writable || idle.socket.readableEnded) {
      idle.socket.destroy();
      return undefined;
    }
    return idle.socket;
  }
}

function statusExpected(
  status: number,
  ranges: readonly { start: number; end: number }[] | undefined,
): boolean {
  // Envoy's default expected range is [200, 201): only 200 passes.
  if (ranges === undefined || ranges.length === 0) return status === 200;
  return ranges.some((r) => status >= r.start && status < r.end);
}
