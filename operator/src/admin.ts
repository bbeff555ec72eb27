/** The admin server: /metrics (Prometheus), /healthz (the process is alive), /readyz (caches synced). */
import Fastify, { type FastifyInstance } from "fastify";
import type { OperatorMetrics } from "./metrics.ts";

export interface AdminOptions {
  readonly host: string;
  readonly port: number;
  readonly metrics: OperatorMetrics;
  /** Ready once every cache has listed; a standby is ready too (it can take over at once). */
  readonly ready: () => boolean;
}

export async function startAdmin(options: AdminOptions): Promise<{ server: FastifyInstance; port: number }> {
  const server = Fastify({ logger: false });
  server.get("/metrics", async (_req, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(body);
  });
  server.get("/healthz", async (_req, reply) => reply.type("text/plain").send("ok\n"));
  server.get("/readyz", async (_req, reply) => {
    if (options.ready()) return reply.type("text/plain").send("ok\n");
    return reply.code(503).type("text/plain").send("caches not synced\n");
  });
  await server.listen({ host: options.host, port: options.port });
  const address = server.server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return { server, port };
}
