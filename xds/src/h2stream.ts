// One gRPC bidirectional stream (the ADS method) on a plain node:http2 session: the client side of
// the wire is small (length-prefixed protobuf messages, status in trailers), and doing it here keeps
// @grpc/grpc-js' module graph (~12-15 MB of RSS) out of every sidecar.
import http2 from "node:http2";
import { checkServerIdentity } from "node:tls";
import { ADS_METHOD_PATH, decodeResponse, encodeRequest } from "./wire.ts";
import type { DiscoveryRequest, DiscoveryResponse } from "./wire.ts";

export interface StreamEvents {
  /** The server answered with gRPC response headers: the stream is up. */
  onOpen(): void;
  onMessage(response: DiscoveryResponse): void;
  /**
   * The stream is over (once), with why. `refused`: the TCP connect itself was refused (no server
   * listens at the address it reached), so no stream was ever open.
   */
  onClose(reason: string, refused: boolean): void;
}

export interface StreamOptions {
  readonly host: string;
  readonly port: number;
  /** A PING every `timeMs` (0: none); no answer within `timeoutMs` ends the connection. */
  readonly keepalive: { readonly timeMs: number; readonly timeoutMs: number };
  /** The TCP connect must finish within this (a vanished server's address drops SYNs: no refusal). */
  readonly connectTimeoutMs: number;
  readonly userAgent: string;
  /** TLS: the chain verified against `ca` (PEM); `sni` sent; the SANs checked against `verifyName`. */
  readonly tls?:
    | { readonly ca: string; readonly sni?: string | undefined; readonly verifyName?: string | undefined }
    | undefined;
  /** Extra request headers: gRPC call metadata such as `authorization` (lower-case names). */
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface AdsStreamHandle {
  write(request: DiscoveryRequest): void;
  /** Ends the stream and its connection; onClose is not called after this. */
  cancel(): void;
}

/** gRPC status names for logs (google.rpc.Code). */
const STATUS = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** A gRPC message frame longer than this ends the stream (Envoy's default max is 4 MiB too). */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

function frame(message: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

function statusText(headers: http2.IncomingHttpHeaders): string | undefined {
  const code = headers["grpc-status"];
  if (code === undefined) return undefined;
  const n = Number(code);
  const message = headers["grpc-message"];
  const details = typeof message === "string" ? decodeURIComponent(message) : "";
  return `${STATUS[n] ?? String(code)}${details === "" ? "" : `: ${details}`}`;
}

export function openAdsStream(options: StreamOptions, events: StreamEvents): AdsStreamHandle {
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  let closed = false;
  let pingDeadline: NodeJS.Timeout | undefined;
  const tls = options.tls;
  const session =
    tls === undefined
      ? http2.connect(`http://${host}:${options.port}`)
      : http2.connect(`https://${host}:${options.port}`, {
          ca: tls.ca,
          ...(tls.sni === undefined ? {} : { servername: tls.sni }),
          // As Envoy: the name checked is the SAN matcher's, never the address dialled.
          checkServerIdentity: (_host, cert) =>
            tls.verifyName === undefined ? undefined : checkServerIdentity(tls.verifyName, cert),
        });
  // With TLS, "connect" fires after the handshake: the deadline bounds both.
  const connectDeadline = setTimeout(() => {
    close(`connect timeout after ${options.connectTimeoutMs} ms`);
  }, options.connectTimeoutMs);
  let connected = false;
  session.once("connect", () => {
    connected = true;
    clearTimeout(connectDeadline);
  });

  const close = (reason: string, refused = false): void => {
    if (closed) return;
    closed = true;
    clearTimeout(connectDeadline);
    clearInterval(pingTimer);
    clearTimeout(pingDeadline);
    if (!session.destroyed) session.destroy();
    events.onClose(reason, refused);
  };

  // The session and its pending stream both hear a failed connect (the stream as a cancel caused
  // by it); whichever tells first closes.
  const refusedConnect = (err: NodeJS.ErrnoException): boolean => {
    const cause = err.cause as NodeJS.ErrnoException | undefined;
    return !connected && (err.code === "ECONNREFUSED" || cause?.code === "ECONNREFUSED");
  };
  session.on("error", (err: NodeJS.ErrnoException) => {
    close(`connection error: ${err.message}`, refusedConnect(err));
  });
  session.on("goaway", () => {
    close("the server closed the connection (GOAWAY)");
  });
  session.on("close", () => {
    close("connection closed");
  });
  // Keepalive: an operator gone without a FIN would otherwise leave the stream hanging forever.
  const pingTimer = setInterval(
    () => {
      if (options.keepalive.timeMs <= 0) return;
      if (closed || pingDeadline !== undefined) return;
      pingDeadline = setTimeout(() => {
        close(`no keepalive answer within ${options.keepalive.timeoutMs} ms`);
      }, options.keepalive.timeoutMs);
      session.ping((err) => {
        clearTimeout(pingDeadline);
        pingDeadline = undefined;
        if (err !== null) close(`keepalive failed: ${err.message}`);
      });
    },
    Math.max(1, options.keepalive.timeMs),
  );
  pingTimer.unref();
  if (options.keepalive.timeMs <= 0) clearInterval(pingTimer);

  const stream = session.request({
    ...options.metadata,
    ":method": "POST",
    ":path": ADS_METHOD_PATH,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-accept-encoding": "identity",
    "user-agent": options.userAgent,
  });
  stream.on("response", (headers) => {
    const status = statusText(headers); // a trailers-only answer: the call failed at once
    if (status !== undefined) close(status);
    else if (headers[":status"] !== 200) close(`HTTP status ${String(headers[":status"])}`);
    else events.onOpen();
  });
  let buffer: Buffer = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    while (!closed && buffer.length >= 5) {
      if (buffer[0] !== 0) {
        close("compressed gRPC messages are not supported");
        return;
      }
      const length = buffer.readUInt32BE(1);
      if (length > MAX_MESSAGE_BYTES) {
        close(`a message of ${length} bytes is over the ${MAX_MESSAGE_BYTES} limit`);
        return;
      }
      if (buffer.length < 5 + length) return;
      const message = buffer.subarray(5, 5 + length);
      buffer = buffer.subarray(5 + length);
      let response: DiscoveryResponse;
      try {
        response = decodeResponse(message);
      } catch (err) {
        close(`undecodable DiscoveryResponse: ${(err as Error).message}`);
        return;
      }
      events.onMessage(response);
    }
  });
  stream.on("trailers", (trailers: http2.IncomingHttpHeaders) => {
    close(statusText(trailers) ?? "stream ended without a status");
  });
  stream.on("error", (err: NodeJS.ErrnoException) => {
    close(`stream error: ${err.message}`, refusedConnect(err));
  });
  stream.on("close", () => {
    close("stream closed");
  });

  return {
    write(request: DiscoveryRequest): void {
      if (!closed && stream.writable) stream.write(frame(encodeRequest(request)));
    },
    cancel(): void {
      if (closed) return;
      closed = true;
      clearTimeout(connectDeadline);
      clearInterval(pingTimer);
      clearTimeout(pingDeadline);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      session.destroy();
    },
  };
}
