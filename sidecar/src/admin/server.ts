// The admin listener (fastify). It reads runtime state and never changes it.
import Fastify, { type FastifyInstance } from "fastify";
import { collectDefaultMetrics, Registry } from "prom-client";
import { HttpListener } from "../listeners/http/listener.ts";
import type { Listener } from "../listeners/manager.ts";
import type { Cluster } from "../upstream/cluster.ts";
import type { XdsStats } from "../xds/subscriber.ts";
import { clustersJson, clustersText } from "./clusters.ts";
import { renderMetrics, type ReloadCounts } from "./metrics.ts";

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

export class AdminServer {
  private readonly app: FastifyInstance;
  private readonly registry = new Registry();

  constructor(view: AdminView) {
    collectDefaultMetrics({ register: this.registry });
    const app = Fastify({ logger: false });
    this.app = app;
    app.get("/ready", async (_req, reply) => {
      const state = view.state();
      return reply
        .code(state === "LIVE" ? 200 : 503)
        .type("text/plain")
        .send(state + "\n");
    });
    const metrics = async (): Promise<string> => {
      const own = renderMetrics(
        view.clusters(),
        view.listeners(),
        view.reloads(),
        view.state() === "LIVE",
        view.xdsStats?.(),
      );
      return own + (await this.registry.metrics());
    };
    app.get("/stats/prometheus", async (_req, reply) =>
      reply.type("text/plain; version=0.0.4").send(await metrics()),
    );
    app.get("/metrics", async (_req, reply) => reply.type("text/plain; version=0.0.4").send(await metrics()));
    app.get("/clusters", async (req, reply) => {
      const format = (req.query as { format?: string }).format;
      if (format === "json") return reply.send(clustersJson(view.clusters()));
      return reply.type("text/plain").send(clustersText(view.clusters()));
    });
    app.get("/config_dump", async (_req, reply) => reply.send(view.configDump()));
    // Hybrid mode of the decision cache: the policy side reports a session that ended or
    // changed ({"session": "id"}) or a policy change ({"type": "policy-changed"}).
    app.post("/notifications", async (req, reply) => {
      const caches = view
        .listeners()
        .flatMap((l) =>
          l instanceof HttpListener && l.cache?.config.notifications === true ? [l.cache] : [],
        );
      if (caches.length === 0) return reply.code(404).send({ error: "no decision cache with notifications" });
      const body = (req.body ?? {}) as { session?: unknown; type?: unknown };
      if (typeof body.session === "string" && body.session !== "") {
        return reply.send({
          invalidated: caches.reduce((n, c) => n + c.invalidateSession(body.session as string), 0),
        });
      }
      if (body.type === "policy-changed") {
        return reply.send({ invalidated: caches.reduce((n, c) => n + c.invalidateAll(), 0) });
      }
      return reply.code(400).send({ error: 'expected {"session": "<id>"} or {"type": "policy-changed"}' });
    });
  }

  async listen(address: string, port: number): Promise<number> {
    await this.app.listen({ host: address, port });
    const a = this.app.server.address();
    return typeof a === "object" && a !== null ? a.port : port;
  }

  async close(): Promise<void> {
    await this.app.close();
  }
}
