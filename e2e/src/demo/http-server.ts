// HTTP mode of the demo policy server. Endpoints (all answers are JSON and name the server):
//   GET|HEAD /authorize?resource=/app&action=GET   → {allow, reason, resource, action, server, instance, seq}
//   GET      /healthz                             → {status: "ok", server, instance}
//   GET      /stats                               → the server's counters (with TLS: handshakes by
//                                                   the serial of the certificate presented)
//   POST|PUT|PATCH <any other path>               → echo: {method, path, bytes, body, server, instance}
//   POST     /reset                               → reads the body, then resets the connection
//                                                   without answering (a server dying mid-request)
// Any request may add `delay_ms=N` to its query to be answered N ms later (at most 60 s).
// With `tls` it serves HTTPS, and every answer also carries `certSerial`: the serial number of the
// certificate this connection's handshake presented (the server's certificate can rotate while it runs).
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import type tls from "node:tls";
import { decide, isDecisionError } from "./decision.ts";
import type { ServerCounters, ServerIdentity } from "./server-common.ts";

export interface HttpServerOptions {
  /** How long an idle keep-alive connection is kept open (Node's default is 5 s). */
  readonly keepAliveTimeoutMs: number;
  /** Serve HTTPS with this certificate (chain) and key; `setSecureContext` swaps them later. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** Bodies larger than this are refused with 413. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Echo at most this much of a body back as text. */
const MAX_ECHO_CHARS = 64 * 1024;
const MAX_DELAY_MS = 60_000;

/** Creates (does not start) an HTTP policy server. */
export function createHttpPolicyServer(
  identity: ServerIdentity,
  counters: ServerCounters,
  options: HttpServerOptions,
): http.Server | https.Server {
  // The serial each TLS connection was served, read once at its handshake.
  const served = new WeakMap<net.Socket, string>();
  const onRequest = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    counters.requests++;
    handle(request, response, identity, counters, served.get(request.socket));
  };
  const server =
    options.tls === undefined
      ? http.createServer(onRequest)
      : https.createServer({ cert: options.tls.cert, key: options.tls.key }, onRequest);
  server.keepAliveTimeout = options.keepAliveTimeoutMs;
  server.on("connection", (socket: net.Socket) => {
    counters.connections++;
    socket.setNoDelay(true);
  });
  if (options.tls !== undefined) {
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const certificate = socket.getCertificate();
      const serial =
        certificate !== null && "serialNumber" in certificate ? certificate.serialNumber.toUpperCase() : "?";
      served.set(socket, serial);
      counters.tlsHandshakes[serial] = (counters.tlsHandshakes[serial] ?? 0) + 1;
    });
    // A client refusing the certificate, or a bare TCP probe: that connection's business alone.
    server.on("tlsClientError", (_error: Error, socket: tls.TLSSocket) => {
      counters.handshakeFailures++;
      socket.destroy();
    });
  }
  return server;
}

function handle(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  identity: ServerIdentity,
  counters: ServerCounters,
  certSerial: string | undefined,
): void {
  const url = new URL(request.url ?? "/", "http://policy-server.invalid");
  const method = request.method ?? "GET";
  const delay = Math.min(Math.max(Number(url.searchParams.get("delay_ms") ?? 0) || 0, 0), MAX_DELAY_MS);
  const reply = (status: number, body: Record<string, unknown>): void => {
    const send = (): void => {
      const who = { server: identity.name, instance: identity.instance };
      sendJson(
        response,
        status,
        { ...body, ...who, ...(certSerial === undefined ? {} : { certSerial }) },
        method,
      );
    };
    if (delay > 0) {
      const timer = setTimeout(send, delay);
      response.on("close", () => {
        clearTimeout(timer);
      });
    } else {
      send();
    }
  };

  if ((method === "GET" || method === "HEAD") && url.pathname === "/authorize") {
    const decision = decide(url.searchParams.get("resource"), url.searchParams.get("action"));
    if (isDecisionError(decision)) {
      reply(400, { error: decision });
      return;
    }
    reply(200, {
      allow: decision.allow,
      reason: decision.reason,
      resource: url.searchParams.get("resource"),
      action: (url.searchParams.get("action") ?? "GET").toUpperCase(),
      seq: counters.requests,
    });
    return;
  }
  if (method === "GET" && url.pathname === "/healthz") {
    reply(200, { status: "ok" });
    return;
  }
  if (method === "GET" && url.pathname === "/stats") {
    reply(200, { ...counters });
    return;
  }
  if (method === "POST" || method === "PUT" || method === "PATCH") {
    readBody(request, (body, tooLarge) => {
      if (tooLarge) {
        reply(413, {
          error: { code: "TETHER_ERR_DEMO_BODY_TOO_LARGE", message: `body: over ${MAX_BODY_BYTES} bytes` },
        });
        return;
      }
      counters.posts++;
      if (method === "POST" && url.pathname === "/reset") {
        request.socket.resetAndDestroy();
        return;
      }
      reply(200, {
        method,
        path: url.pathname,
        bytes: body.length,
        body: body.toString("utf8", 0, Math.min(body.length, MAX_ECHO_CHARS)),
      });
    });
    return;
  }
  reply(404, {
    error: { code: "TETHER_ERR_DEMO_NOT_FOUND", message: `no route for ${method} ${url.pathname}` },
  });
}

function readBody(request: http.IncomingMessage, done: (body: Buffer, tooLarge: boolean) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  request.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) tooLarge = true;
    else chunks.push(chunk);
  });
  request.on("end", () => {
    done(Buffer.concat(chunks), tooLarge);
  });
  request.on("error", () => {
    request.socket.destroy();
  });
}

function sendJson(
  response: http.ServerResponse,
  status: number,
  body: Record<string, unknown>,
  method: string,
): void {
  if (response.destroyed) return;
  const payload = Buffer.from(JSON.stringify(body) + "\n");
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": payload.length,
    "x-policy-server": String(body.server),
  });
  response.end(method === "HEAD" ? undefined : payload);
}
