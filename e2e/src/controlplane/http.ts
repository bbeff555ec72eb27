import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/** TLS material of a client: PEM contents, not paths. */
export interface ClientTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface HttpResult {
  readonly status: number;
  readonly body: string;
}

/** One GET to a loopback URL with a per-request timeout; rejects on network errors. */
export function get(url: string, tls: ClientTls | "insecure", timeoutMs: number): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    // "insecure": a component's self-signed serving certificate on loopback, probed for /healthz only.
    const security = tls === "insecure" ? { rejectUnauthorized: false } : tls;
    const options = { method: "GET", agent: false, timeout: timeoutMs, ...security } as const;
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/**
 * Polls `check` every `intervalMs` until it returns true, `abort` returns a reason to give up, or
 * `deadline` (epoch ms) passes. Resolves to undefined on success, or to why it stopped waiting.
 * Errors thrown by `check` count as "not yet" and the last one is reported on timeout.
 */
export async function pollUntil(
  check: () => Promise<boolean>,
  options: { deadline: number; intervalMs: number; abort: () => string | undefined },
): Promise<string | undefined> {
  let lastError = "";
  for (;;) {
    const aborted = options.abort();
    if (aborted !== undefined) return aborted;
    try {
      if (await check()) return undefined;
    } catch (error) {
      lastError = (error as Error).message;
    }
    const left = options.deadline - Date.now();
    if (left <= 0) return `timed out${lastError ? ` (last error: ${lastError})` : ""}`;
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.intervalMs, left)));
  }
}
