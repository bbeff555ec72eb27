/**
 * A small client for the Kubernetes REST API over undici: one connection pool for every request
 * and watch, authentication from a kubeconfig or the in-cluster config (kubeconfig.ts; through
 * @kubernetes/client-node, loaded on demand, only for exec and auth-provider plugins).
 * Every request has a timeout; every write can be gated (only the leader writes; Lease updates and
 * a standby's NACK Events pass the gate explicitly).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { Agent, request, type Dispatcher } from "undici";
import { KubeError } from "./errors.ts";
import { loadApiAccess, type ApiAccess } from "./kubeconfig.ts";

export interface RequestOptions {
  readonly query?: Record<string, string | number | boolean | undefined>;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  /** Accept header; default application/json (e.g. PartialObjectMetadata for metadata-only lists). */
  readonly accept?: string;
}

export interface KubeClientOptions {
  /** Writes (anything but GET) are refused unless this says yes; used for leader election. */
  readonly writeGate?: () => boolean;
  /** Called once per write that reached the API server (for metrics). */
  readonly onWrite?: (verb: string, path: string) => void;
  readonly requestTimeoutMs?: number;
}

/** The minimal transport the rest of kube/ needs: tests may provide their own. */
export interface KubeTransport {
  request<T>(method: string, path: string, options?: RequestOptions, bypassGate?: boolean): Promise<T>;
  /** Opens a streaming GET (a watch); the body is read by the caller. */
  stream(path: string, options: RequestOptions): Promise<AsyncIterable<Buffer>>;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export class KubeClient implements KubeTransport {
  readonly server: string;
  private readonly authHeaders: () => Promise<Record<string, string>>;
  private readonly dispatcher: Dispatcher;
  private readonly options: KubeClientOptions;
  private gate: (() => boolean) | undefined;

  private constructor(
    authHeaders: () => Promise<Record<string, string>>,
    server: string,
    dispatcher: Dispatcher,
    options: KubeClientOptions,
  ) {
    this.authHeaders = authHeaders;
    this.server = server.replace(/\/$/, "");
    this.dispatcher = dispatcher;
    this.options = options;
    this.gate = options.writeGate;
  }

  /** From KUBECONFIG / ~/.kube/config, or the in-cluster service account. */
  static async create(options: KubeClientOptions = {}, kubeconfigPath?: string): Promise<KubeClient> {
    const access = loadApiAccess(kubeconfigPath) ?? (await viaClientNode(kubeconfigPath));
    const dispatcher = new Agent({
      connect: {
        ca: access.ca,
        cert: access.cert,
        key: access.key,
        rejectUnauthorized: !access.skipTlsVerify,
      },
      keepAliveTimeout: 30_000,
    });
    return new KubeClient(() => access.headers(), access.server, dispatcher, options);
  }

  setWriteGate(gate: (() => boolean) | undefined): void {
    this.gate = gate;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private async headers(contentType?: string, accept = "application/json"): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept, ...(await this.authHeaders()) };
    if (contentType !== undefined) headers["content-type"] = contentType;
    return headers;
  }

  private url(path: string, query?: RequestOptions["query"]): string {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  async request<T>(
    method: string,
    path: string,
    options: RequestOptions = {},
    bypassGate = false,
  ): Promise<T> {
    const write = method !== "GET";
    if (write && !bypassGate && this.gate !== undefined && !this.gate()) {
      throw new KubeError("TETHER_ERR_NOT_LEADER", `not the leader: refusing ${method} ${path}`);
    }
    const timeout = options.timeoutMs ?? this.options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    let response: Dispatcher.ResponseData;
    try {
      response = await request(this.url(path, options.query), {
        method,
        headers: await this.headers(
          body === undefined ? undefined : (options.contentType ?? "application/json"),
          options.accept,
        ),
        body,
        dispatcher: this.dispatcher,
        signal: options.signal,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
    } catch (error) {
      throw new KubeError(
        "TETHER_ERR_KUBE_TRANSPORT",
        `${method} ${path}: ${error instanceof Error ? error.message : String(error)}`,
        0,
        "",
        { cause: error },
      );
    }
    const text = await response.body.text();
    if (write) this.options.onWrite?.(method, path);
    if (response.statusCode >= 400) throw apiError(method, path, response.statusCode, text);
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  async stream(path: string, options: RequestOptions): Promise<AsyncIterable<Buffer>> {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(this.url(path, options.query), {
        method: "GET",
        headers: await this.headers(undefined, options.accept),
        dispatcher: this.dispatcher,
        signal: options.signal,
        headersTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        // The informer's watchdog decides when a silent watch is dead.
        bodyTimeout: 0,
      });
    } catch (error) {
      throw new KubeError(
        "TETHER_ERR_KUBE_TRANSPORT",
        `watch ${path}: ${error instanceof Error ? error.message : String(error)}`,
        0,
        "",
        { cause: error },
      );
    }
    if (response.statusCode >= 400) {
      throw apiError("GET", path, response.statusCode, await response.body.text());
    }
    return response.body as AsyncIterable<Buffer>;
  }
}

/** Exec and auth-provider plugins (and KUBECONFIG lists): @kubernetes/client-node, loaded only then. */
async function viaClientNode(kubeconfigPath?: string): Promise<ApiAccess> {
  const { KubeConfig: Config } = await import("@kubernetes/client-node");
  const kc: KubeConfig = new Config();
  if (kubeconfigPath !== undefined) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (cluster === null) {
    throw new KubeError("TETHER_ERR_KUBE_CONFIG", "kubeconfig has no current cluster (set KUBECONFIG)");
  }
  type HttpsOptions = Parameters<KubeConfig["applyToHTTPSOptions"]>[0];
  const tls: { ca?: unknown; cert?: unknown; key?: unknown; rejectUnauthorized?: boolean } = {};
  await kc.applyToHTTPSOptions(tls as HttpsOptions);
  return {
    server: cluster.server,
    ca: tls.ca as string | Buffer | undefined,
    cert: tls.cert as string | Buffer | undefined,
    key: tls.key as string | Buffer | undefined,
    skipTlsVerify: tls.rejectUnauthorized === false || cluster.skipTLSVerify,
    headers: async () => {
      const opts: { headers?: Record<string, unknown> } = {};
      await kc.applyToHTTPSOptions(opts as HttpsOptions);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = String(v);
      return headers;
    },
  };
}

function apiError(method: string, path: string, status: number, text: string): KubeError {
  let reason = "";
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string };
    reason = parsed.reason ?? "";
    message = parsed.message ?? message;
  } catch {
    // not a Status object; keep the raw text
  }
  const code = status === 410 ? "TETHER_ERR_KUBE_GONE" : "TETHER_ERR_KUBE_API";
  return new KubeError(code, `${method} ${path}: ${status} ${reason}: ${message}`, status, reason);
}
