// The admin listener on node:http. It reads runtime state and never changes it (POST /notifications
// only invalidates decision-cache entries). A web framework here cost ~25 MB of RSS for six routes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { HttpListener } from "../listeners/http/listener.ts";
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
async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > ADMIN_BODY_LIMIT) {
      throw new RequestError(
        413,
        "Payload Too Large",
        `request body is larger than ${ADMIN_BODY_LIMIT} bytes`,
      );
    }
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new RequestError(
      415,
      "Unsupported Media Type",
      `unsupported content type: ${type === "" ? "(none)" : type}`,
    );
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch (err) {
    throw new RequestError(400, "Bad Request", `request body is not JSON: ${(err as Error).message}`);
  }
}

export class AdminServer {
  private readonly server: Server;
  private readonly process = new ProcessMetrics();
  /** path → method → handler; GET routes answer HEAD too. */
  private readonly routes = new Map<string, Map<string, Handler>>();

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
    this.server = createServer((req, res) => {
      void this.serve(req, res);
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    let reply: Reply;
    try {
      const url = URL.parse(req.url ?? "/", "http://admin");
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
    if (res.destroyed) return;
    const body = Buffer.from(reply.body, "utf8");
    res.writeHead(reply.status, {
      ...reply.headers,
      "content-type": reply.type,
      "content-length": body.length,
    });
    res.end(method === "HEAD" ? undefined : body);
  }

  listen(address: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(err);
      };
      this.server.once("error", onError);
      this.server.listen(port, address, () => {
        this.server.off("error", onError);
        const a = this.server.address();
        resolve(typeof a === "object" && a !== null ? a.port : port);
      });
    });
  }

  /** Stops accepting, closes idle keep-alive connections, and waits for answers in progress. */
  async close(): Promise<void> {
    this.process.stop();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }
}
