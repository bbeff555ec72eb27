/**
 * The admission webhook's HTTPS server: POST /mutate-pods (AdmissionReview in, AdmissionReview out)
 * and GET /healthz. Every replica serves it from its own caches. The serving certificate can be
 * replaced while running: new handshakes use the new one, open connections keep theirs.
 */
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { admitPod, type AdmitOptions } from "./admit.ts";
import { admissionResponse, parseAdmissionReview, ReviewError } from "./review.ts";

export const MUTATE_PODS_PATH = "/mutate-pods";
/** An AdmissionReview carries the object (and the old one on UPDATE); etcd caps objects at 1.5 MiB. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** The API server gives up after the configuration's timeoutSeconds (at most 30 s). */
const REQUEST_TIMEOUT_MS = 30_000;

export interface ServingCertificate {
  /** PEM: the certificate, then its chain. */
  readonly cert: string;
  /** PEM private key. */
  readonly key: string;
}

export interface WebhookServerOptions extends AdmitOptions {
  readonly host: string;
  readonly port: number;
  readonly certificate: ServingCertificate;
  readonly logger: Logger;
  /** Called once per review answered: allowed with a patch ("injected"), allowed ("skipped"), denied, or error. */
  readonly onReview?: (result: "injected" | "skipped" | "denied" | "error") => void;
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BodyTooLarge(`body larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
}

interface Reply {
  readonly status: number;
  /** Text, or JSON. */
  readonly body: unknown;
}

function send(res: ServerResponse, { status, body }: Reply): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": typeof body === "string" ? "text/plain" : "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

export class WebhookServer {
  private readonly server: Server;
  private readonly options: WebhookServerOptions;

  constructor(options: WebhookServerOptions) {
    this.options = options;
    this.server = createServer(
      { cert: options.certificate.cert, key: options.certificate.key, minVersion: "TLSv1.2" },
      (req, res) => {
        this.reply(req).then(
          (reply) => {
            send(res, reply);
          },
          (error: unknown) => {
            options.logger.error({ err: error }, "webhook request failed");
            if (!res.headersSent) send(res, { status: 500, body: "internal error\n" });
          },
        );
      },
    );
    this.server.requestTimeout = REQUEST_TIMEOUT_MS;
    this.server.headersTimeout = REQUEST_TIMEOUT_MS;
    this.server.on("tlsClientError", (error) => {
      options.logger.debug({ err: error }, "webhook TLS handshake failed");
    });
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** A rotated certificate: used by every handshake from now on. */
  setCertificate(certificate: ServingCertificate): void {
    this.server.setSecureContext({ cert: certificate.cert, key: certificate.key });
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
      this.server.closeAllConnections();
    });
  }

  private async reply(req: IncomingMessage): Promise<Reply> {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/healthz") return { status: 200, body: "ok\n" };
    if (path !== MUTATE_PODS_PATH) return { status: 404, body: "not found\n" };
    if (req.method !== "POST") return { status: 405, body: "POST only\n" };
    let body: unknown;
    try {
      body = JSON.parse((await readBody(req)).toString("utf8"));
    } catch (error) {
      this.options.onReview?.("error");
      if (error instanceof BodyTooLarge) return { status: 413, body: `${error.message}\n` };
      return { status: 400, body: "body: not JSON\n" };
    }
    let request;
    try {
      request = parseAdmissionReview(body);
    } catch (error) {
      this.options.onReview?.("error");
      if (error instanceof ReviewError) return { status: 400, body: `${error.message} (${error.code})\n` };
      throw error;
    }
    const decision = admitPod(request, this.options);
    const result = !decision.allowed
      ? "denied"
      : decision.patch !== undefined && decision.patch.length > 0
        ? "injected"
        : "skipped";
    this.options.onReview?.(result);
    if (result !== "skipped") {
      const meta = (request.object["metadata"] ?? {}) as { name?: string; generateName?: string };
      this.options.logger.info(
        {
          namespace: request.namespace,
          pod: meta.name ?? `${meta.generateName ?? ""}*`,
          result,
          ...(decision.allowed ? {} : { reason: decision.message }),
        },
        "pod admission",
      );
    }
    return { status: 200, body: admissionResponse(request.uid, decision) };
  }
}
