// HTTP mode of the demo policy server. Endpoints (all answers are JSON and name the server):
//   GET|HEAD /authorize?resource=/app&action=GET   → {allow, reason, resource, action, server, instance, seq}
//   GET      /healthz                             → {status: "ok", server, instance}
//   GET      /stats                               → the server's counters
//   POST|PUT|PATCH <any other path>               → echo: {method, path, bytes, body, server, instance}
//   POST     /reset                               → reads the body, then resets the connection
//                                                   without answering (a server dying mid-request)
// Any request may add `delay_ms=N` to its query to be answered N ms later (at most 60 s).
import http from "node:http";
import { decide, isDecisionError } from "./decision.ts";
import type { ServerCounters, ServerIdentity } from "./server-common.ts";

export interface HttpServerOptions {
  /** How long an idle keep-alive connection is kept open (Node's default is 5 s). */
  readonly keepAliveTimeoutMs: number;
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
): http.Server {
  const server = http.createServer((request, response) => {
    counters.requests++;
    handle(request, response, identity, counters);
  });
  server.keepAliveTimeout = options.keepAliveTimeoutMs;
  server.on("connection", (socket) => {
    counters.connections++;
    socket.setNoDelay(true);
  });
  return server;
}

function handle(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  identity: ServerIdentity,
  counters: ServerCounters,
): void {
  const url = new URL(request.url ?? "/", "http://policy-server.invalid");
  const method = request.method ?? "GET";
  const delay = Math.min(Math.max(Number(url.searchParams.get("delay_ms") ?? 0) || 0, 0), MAX_DELAY_MS);
  const reply = (status: number, body: Record<string, unknown>): void => {
    const send = (): void => {
      sendJson(response, status, { ...body, server: identity.name, instance: identity.instance }, method);
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
