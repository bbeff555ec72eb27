// The admin listener, on the sidecar's own HTTP/1.1 server (the listeners' parser and response
// writer, with node:http's timeouts and keep-alive rules). It reads runtime state and never changes
// it (POST /notifications only invalidates decision-cache entries). A web framework here cost ~25 MB
// of RSS for six routes, node:http itself ~1.4 MB.
import type { Socket } from "node:net";
import { nodeMaxHeaderSize, reasonPhrase } from "../http-node.ts";
import { listenAt } from "../listeners/bind.ts";
import { HttpListener } from "../listeners/http/listener.ts";
import { clientErrorReply } from "../listeners/http/request-checks.ts";
import type { DownstreamRequest } from "../listeners/http/server/request.ts";
import type { DownstreamResponse } from "../listeners/http/server/response.ts";
import { Http1Server } from "../listeners/http/server/server.ts";
import { endAndClose, sessionOf, type Http1Handler } from "../listeners/http/server/session.ts";
import type { Listener } from "../listeners/manager.ts";
import type { Cluster } from "../upstream/cluster.ts";
import type { XdsStats } from "../xds/subscriber.ts";
import { clustersJson, clustersText } from "./clusters.ts";
import { renderMetrics, type ReloadCounts } from "./metrics.ts";
import { ProcessMetrics } from "./process-metrics.ts";

export interface AdminView {
  clusters(): readonly Cluster[];
  listeners(): readonly Listener[];
  reloads(): ReloadCounts;
  /** "LIVE" when serving, otherwise PRE_INITIALIZING or DRAINING. */
  state(): "PRE_INITIALIZING" | "LIVE" | "DRAINING";
  configDump(): unknown;
  /** The ADS client's state, when the bootstrap has dynamic_resources. */
  xdsStats?(): XdsStats | undefined;
}

/** A request body larger than this is refused with 413 (the notifications are a few bytes). */
export const ADMIN_BODY_LIMIT = 1024 * 1024;

const PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8";
const TEXT_TYPE = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";

interface Reply {
  readonly status: number;
  readonly type: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

function json(status: number, value: unknown): Reply {
  return { status, type: JSON_TYPE, body: JSON.stringify(value) };
}

function problem(status: number, error: string, message: string): Reply {
  return json(status, { statusCode: status, error, message });
}

type Handler = (url: URL, body: unknown) => Reply;

class RequestError extends Error {
  readonly status: number;
  readonly error: string;
  constructor(status: number, error: string, message: string) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

/** Reads a JSON body (or none); a body of another content type, too large, or not JSON is refused. */
async function readJsonBody(req: DownstreamRequest): Promise<unknown> {
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const held: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      if (size > ADMIN_BODY_LIMIT) return;
      size += chunk.length;
      if (size > ADMIN_BODY_LIMIT) {
        reject(
          new RequestError(413, "Payload Too Large", `request body is larger than ${ADMIN_BODY_LIMIT} bytes`),
        );
        return;
      }
      // The parser's chunk may be a view of a shared read buffer: keep a copy.
      held.push(Buffer.from(chunk));
    });
    req.on("end", () => {
      resolve(held);
    });
    req.on("close", () => {
      reject(new RequestError(400, "Bad Request", "the request broke off before its body was complete"));
    });
  });
  const body = Buffer.concat(chunks);
  if (body.length === 0) return undefined;
  const header = req.headers["content-type"];
  const type = (typeof header === "string" ? header : "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new RequestError(
      415,
      "Unsupported Media Type",
      `unsupported content type: ${type === "" ? "(none)" : type}`,
    );
  }
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch (err) {
    throw new RequestError(400, "Bad Request", `request body is not JSON: ${(err as Error).message}`);
  }
}

/** node:http's defaults, which the admin listener has always had (the head limit: node's flag). */
const ADMIN_SERVER_OPTIONS = {
  headersTimeout: 60_000,
  requestTimeout: 300_000,
  checkIntervalMs: 1000,
};

/** A keep-alive connection with no request in progress is closed after this long (node:http's 5 s). */
export const ADMIN_KEEP_ALIVE_MS = 5000;

/** A parse error or a late request: the status line and nothing else, then the connection closes. */
function clientErrorStatus(code: string | undefined): number {
  return code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : clientErrorReply(code).status;
}

export class AdminServer implements Http1Handler {
  private readonly server: Http1Server;
  private readonly process = new ProcessMetrics();
  /** path → method → handler; GET routes answer HEAD too. */
  private readonly routes = new Map<string, Map<string, Handler>>();
  /** Open connections → since when each has been idle (performance.now()), or -1 while answering. */
  private readonly idleSince = new Map<Socket, number>();

  constructor(view: AdminView) {
    const route = (method: "GET" | "POST", path: string, handler: Handler): void => {
      const methods = this.routes.get(path) ?? new Map<string, Handler>();
      methods.set(method, handler);
      if (method === "GET") methods.set("HEAD", handler);
      this.routes.set(path, methods);
    };
    route("GET", "/ready", () => {
      const state = view.state();
      return { status: state === "LIVE" ? 200 : 503, type: TEXT_TYPE, body: state + "\n" };
    });
    const metrics = (): Reply => {
      const own = renderMetrics(
        view.clusters(),
        view.listeners(),
        view.reloads(),
        view.state() === "LIVE",
        view.xdsStats?.(),
      );
      return { status: 200, type: PROMETHEUS_TYPE, body: own + this.process.render() };
    };
    route("GET", "/stats/prometheus", metrics);
    route("GET", "/metrics", metrics);
    route("GET", "/clusters", (url) =>
      url.searchParams.get("format") === "json"
        ? json(200, clustersJson(view.clusters()))
        : { status: 200, type: TEXT_TYPE, body: clustersText(view.clusters()) },
    );
    route("GET", "/config_dump", () => json(200, view.configDump()));
    // Hybrid mode of the decision cache: the policy side reports a session that ended or
    // changed ({"session": "id"}) or a policy change ({"type": "policy-changed"}).
    route("POST", "/notifications", (_url, rawBody) => {
      const caches = view
        .listeners()
        .flatMap((l) =>
          l instanceof HttpListener && l.cache?.config.notifications === true ? [l.cache] : [],
        );
      if (caches.length === 0) return json(404, { error: "no decision cache with notifications" });
      const body = (typeof rawBody === "object" && rawBody !== null ? rawBody : {}) as {
        session?: unknown;
        type?: unknown;
      };
      const session = body.session;
      if (typeof session === "string" && session !== "") {
        return json(200, { invalidated: caches.reduce((n, c) => n + c.invalidateSession(session), 0) });
      }
      if (body.type === "policy-changed") {
        return json(200, { invalidated: caches.reduce((n, c) => n + c.invalidateAll(), 0) });
      }
      return json(400, { error: 'expected {"session": "<id>"} or {"type": "policy-changed"}' });
    });
    this.server = new Http1Server(this, { ...ADMIN_SERVER_OPTIONS, maxHeaderSize: nodeMaxHeaderSize() });
  }

  onConnection(socket: Socket): void {
    this.idleSince.set(socket, performance.now());
    socket.once("close", () => this.idleSince.delete(socket));
  }

  onRequest(req: DownstreamRequest, res: DownstreamResponse): void {
    const socket = req.socket;
    this.idleSince.set(socket, -1);
    res.once("close", () => {
      if (this.idleSince.has(socket)) this.idleSince.set(socket, performance.now());
    });
    void this.serve(req, res);
  }

  /** As node:http answers a malformed or late request: a bare status, then the connection closes. */
  onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === "ECONNRESET" || !socket.writable || this.server.responseUnderWay(socket)) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(err.code);
    endAndClose(socket, `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\nConnection: close\r\n\r\n`);
  }

  onConnect(_req: DownstreamRequest, socket: Socket): void {
    endAndClose(socket, "HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  }

  /** Closes keep-alive connections idle for ADMIN_KEEP_ALIVE_MS. */
  onTimeoutCheck(now: number): void {
    for (const [socket, since] of this.idleSince) {
      if (since >= 0 && now - since >= ADMIN_KEEP_ALIVE_MS && sessionOf(socket)?.idle !== false) {
        socket.destroy();
      }
    }
  }

  private async serve(req: DownstreamRequest, res: DownstreamResponse): Promise<void> {
    const method = req.method;
    let reply: Reply;
    try {
      const url = URL.parse(req.url, "http://admin");
      if (url === null) throw new RequestError(400, "Bad Request", "the request target is not a valid path");
      const methods = this.routes.get(url.pathname);
      const handler = methods?.get(method);
      if (methods === undefined) {
        reply = problem(404, "Not Found", `Route ${method}:${url.pathname} not found`);
      } else if (handler === undefined) {
        reply = {
          ...problem(
            405,
            "Method Not Allowed",
            `Route ${method}:${url.pathname} allows ${[...methods.keys()].join(", ")}`,
          ),
          headers: { allow: [...methods.keys()].join(", ") },
        };
      } else {
        reply = handler(url, method === "POST" ? await readJsonBody(req) : undefined);
      }
    } catch (err) {
      reply =
        err instanceof RequestError
          ? problem(err.status, err.error, err.message)
          : problem(500, "Internal Server Error", (err as Error).message);
    }
    if (res.destroyed || req.destroyed) return;
    // A body refused before its end (413) is not read on: the connection closes after the answer.
    if (reply.status === 413) res.shouldKeepAlive = false;
    const body = Buffer.from(reply.body, "utf8");
    res.writeHead(reply.status, {
      ...reply.headers,
      "content-type": reply.type,
      "content-length": body.length,
    });
    res.end(method === "HEAD" ? undefined : body);
  }

  async listen(address: string, port: number): Promise<number> {
    await listenAt(this.server.net, port, address);
    const a = this.server.net.address();
    return typeof a === "object" && a !== null ? a.port : port;
  }

  /** Stops accepting, closes idle keep-alive connections, and waits for answers in progress. */
  async close(): Promise<void> {
    this.process.stop();
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => {
      this.server.net.once("close", () => {
        resolve();
      });
    });
    this.server.close();
    await closed;
  }
}
