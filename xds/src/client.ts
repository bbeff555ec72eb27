// The ADS client core, as Envoy behaves: one stream; CDS and LDS subscribed as wildcards at once,
// EDS and RDS by the names the caller subscribes (after it has seen the clusters and listeners); every
// response handed to the handler whole (state of the world) and answered with an ACK (its version and
// nonce) or a NACK (the previously accepted version, its nonce, error_detail). A broken stream is
// re-opened after a jittered exponential back-off, re-sending every subscription with the versions
// last accepted; until then the caller keeps serving what it has.
import { readFileSync } from "node:fs";
import { openAdsStream } from "./h2stream.ts";
import type { AdsStreamHandle, StreamOptions } from "./h2stream.ts";
import { messageBudget, unpackResource } from "./decode.ts";
import { RESOURCE_TYPES, TYPE_URLS, resourceTypeOf } from "./types.ts";
import type { LoggerLike, ResourceJson, ResourceType } from "./types.ts";
import type { DiscoveryResponse } from "./wire.ts";

export interface AdsHandler {
  /** Every resource of one type (state of the world). Resolve undefined to ACK, or a message to NACK. */
  onResources(
    type: ResourceType,
    version: string,
    resources: ReadonlyMap<string, ResourceJson>,
  ): Promise<string | undefined>;
  onConnectionState?(connected: boolean): void;
}

export interface AdsClientOptions {
  readonly target: { readonly host: string; readonly port: number };
  readonly node: { readonly id: string; readonly cluster: string };
  /**
   * Reconnect back-off: full jitter over min(max, base * 2^attempt). Default 500 ms -> 30 s. The
   * first REFUSED_AT_BASE connects refused in a row each wait below `base` and do not count as
   * attempts (see broken()).
   */
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  readonly log: LoggerLike;
  /** Jitter source in [0, 1); Math.random by default. */
  readonly random?: () => number;
  /**
   * HTTP/2 keepalive pings, to notice a vanished operator on an idle stream: a PING every `timeMs`
   * (0: none), the connection closed when one is not answered within `timeoutMs`. Default 30 s / 10 s.
   */
  readonly keepalive?: { readonly timeMs: number; readonly timeoutMs: number };
  /** Each connect must finish within this, or the attempt fails and the next one is scheduled. Default 5 s (Envoy's connect_timeout default). */
  readonly connectTimeoutMs?: number;
  /**
   * TLS to the server, as Envoy's UpstreamTlsContext: the chain verified against `caFile` (PEM,
   * read at every connect, so a rotated bundle applies from the next reconnect), `sni` sent, and
   * the certificate's DNS names checked against `verifyName` (an exact SAN matcher) when set.
   */
  readonly tls?: AdsClientTls;
  /** user_agent_version in the Node (the sidecar's version). */
  readonly userAgentVersion?: string;
  /**
   * gRPC call metadata (e.g. `authorization: Bearer <token>`), asked for at every (re)connect so a
   * rotated credential is picked up; if it throws, the attempt fails and is retried with back-off.
   */
  readonly callMetadata?: () => Readonly<Record<string, string>>;
}

export interface AdsClientTls {
  readonly caFile: string;
  readonly sni?: string | undefined;
  readonly verifyName?: string | undefined;
}

type Call = AdsStreamHandle;

/** error_detail.code of a NACK: google.rpc.Code INVALID_ARGUMENT. */
const NACK_CODE = 3;
/** Connects refused in a row that wait below the back-off base before refusals count as attempts. */
const REFUSED_AT_BASE = 3;

interface TypeState {
  /** The version last accepted (ACKed); "" before the first. */
  version: string;
  /** The nonce of the last response on the current stream. */
  nonce: string;
  /** Names for EDS/RDS; undefined for the wildcard types. */
  names: readonly string[] | undefined;
}

function resourceName(type: ResourceType, json: ResourceJson): string | undefined {
  const name = type === "endpoint" ? json["cluster_name"] : json["name"];
  return typeof name === "string" && name !== "" ? name : undefined;
}

export class AdsClient {
  readonly counters = { update_attempt: 0, update_success: 0, update_rejected: 0 };
  private readonly options: AdsClientOptions;
  private readonly handler: AdsHandler;
  private readonly log: LoggerLike;
  private readonly random: () => number;
  private readonly types = new Map<ResourceType, TypeState>([
    ["cluster", { version: "", nonce: "", names: undefined }],
    ["listener", { version: "", nonce: "", names: undefined }],
    ["endpoint", { version: "", nonce: "", names: [] }],
    ["route", { version: "", nonce: "", names: [] }],
  ]);
  private call: Call | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** Connects refused in a row (reset by any other outcome). */
  private refusals = 0;
  private stopped = true;
  private isConnected = false;
  /** Responses are handled one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();

  constructor(options: AdsClientOptions, handler: AdsHandler) {
    this.options = options;
    this.handler = handler;
    this.log = options.log;
    this.random = options.random ?? Math.random;
  }

  /** True while a stream to the server is open. */
  get connected(): boolean {
    return this.isConnected;
  }

  /** Connects and subscribes to clusters and listeners (wildcard). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
  }

  /** Replaces the names subscribed for EDS or RDS; sends the new subscription if it changed. */
  subscribe(type: "endpoint" | "route", names: readonly string[]): void {
    const state = this.types.get(type);
    if (state === undefined) return;
    const next = [...new Set(names)].sort();
    const before = state.names ?? [];
    if (next.length === before.length && next.every((n, i) => n === before[i])) return;
    state.names = next;
    if (this.call !== undefined) this.send(type, state, undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    this.setConnected(false);
    await this.queue;
  }

  private open(): void {
    if (this.stopped) return;
    // `target` may have getters (the sidecar's tether_xds cluster): read it at every connect.
    const { host, port } = this.options.target;
    for (const state of this.types.values()) state.nonce = "";
    let tls: StreamOptions["tls"];
    const tlsOptions = this.options.tls;
    if (tlsOptions !== undefined) {
      try {
        tls = {
          ca: readFileSync(tlsOptions.caFile, "utf8"),
          sni: tlsOptions.sni,
          verifyName: tlsOptions.verifyName,
        };
      } catch (err) {
        this.broken(`cannot read the xDS CA bundle: ${(err as Error).message}`);
        return;
      }
    }
    let metadata: Readonly<Record<string, string>> | undefined;
    try {
      metadata = this.options.callMetadata?.();
    } catch (err) {
      this.broken(`no call metadata: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const call: Call = openAdsStream(
      {
        host,
        port,
        tls,
        ...(metadata === undefined ? {} : { metadata }),
        keepalive: this.options.keepalive ?? { timeMs: 30_000, timeoutMs: 10_000 },
        connectTimeoutMs: this.options.connectTimeoutMs ?? 5_000,
        userAgent: `tether-sidecar${this.options.userAgentVersion === undefined ? "" : `/${this.options.userAgentVersion}`}`,
      },
      {
        onOpen: () => {
          if (this.call === call) this.setConnected(true);
        },
        onMessage: (response) => {
          if (this.call !== call) return;
          this.setConnected(true);
          this.attempt = 0;
          this.refusals = 0;
          this.queue = this.queue.then(() => this.onResponse(call, response));
        },
        onClose: (reason, refused) => {
          if (this.call === call) this.broken(reason, refused);
        },
      },
    );
    this.call = call;
    // Envoy's order: CDS and LDS first; EDS and RDS when there are names (re-sent after reconnecting).
    for (const type of RESOURCE_TYPES) {
      const state = this.types.get(type);
      if (state === undefined || (state.names !== undefined && state.names.length === 0)) continue;
      this.send(type, state, undefined);
    }
  }

  private broken(reason: string, refused = false): void {
    this.call = undefined;
    this.setConnected(false);
    if (this.stopped) return;
    const { baseMs, maxMs } = this.options.backoff ?? { baseMs: 500, maxMs: 30_000 };
    // A refused connect reached no server, so waiting longer spares nobody; and behind a Service
    // address the next connect may reach another replica (kube-proxy keeps sending some connects to
    // a dead replica's address until it drops it). So the first few refusals in a row wait below
    // the base and do not grow the back-off; after that they count like any failure, and a control
    // plane that is down altogether is not asked more often than the back-off allows.
    this.refusals = refused ? this.refusals + 1 : 0;
    const atBase = refused && this.refusals <= REFUSED_AT_BASE;
    const doublings = atBase ? 0 : Math.min(this.attempt, 30);
    const cap = Math.min(maxMs, baseMs * 2 ** doublings);
    const delay = Math.max(1, Math.floor(this.random() * cap));
    if (!atBase) this.attempt++;
    this.log.warn({ reason, retryInMs: delay, attempt: this.attempt }, "xDS stream closed; reconnecting");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.open();
    }, delay);
  }

  private setConnected(connected: boolean): void {
    if (this.isConnected === connected) return;
    this.isConnected = connected;
    this.log.info({ connected }, connected ? "xDS connected" : "xDS disconnected");
    try {
      this.handler.onConnectionState?.(connected);
    } catch (err) {
      this.log.error({ err }, "xDS connection-state handler threw");
    }
  }

  private send(type: ResourceType, state: TypeState, error: string | undefined): void {
    const call = this.call;
    if (call === undefined) return;
    const node = {
      id: this.options.node.id,
      cluster: this.options.node.cluster,
      user_agent_name: "tether-sidecar",
      ...(this.options.userAgentVersion === undefined
        ? {}
        : { user_agent_version: this.options.userAgentVersion }),
    };
    call.write({
      version_info: state.version,
      // Envoy sends the node on every request by default (set_node_on_first_message_only: false).
      node,
      resource_names: state.names ?? [],
      type_url: TYPE_URLS[type],
      response_nonce: state.nonce,
      ...(error === undefined ? {} : { error_detail: { code: NACK_CODE, message: error } }),
    });
  }

  private async onResponse(call: Call, response: DiscoveryResponse): Promise<void> {
    const type = resourceTypeOf(response.type_url);
    const state = type === undefined ? undefined : this.types.get(type);
    if (type === undefined || state === undefined) {
      this.log.warn({ typeUrl: response.type_url }, "xDS response of a type not subscribed; ignored");
      return;
    }
    this.counters.update_attempt++;
    state.nonce = response.nonce;
    let error: string | undefined;
    try {
      const resources = this.decode(type, response);
      error = await this.handler.onResources(type, response.version_info, resources);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    if (this.call !== call) return; // the stream broke meanwhile; the next one re-sends the state
    if (error === undefined) {
      state.version = response.version_info;
      this.counters.update_success++;
      this.log.debug({ type, version: response.version_info, nonce: response.nonce }, "xDS update accepted");
    } else {
      this.counters.update_rejected++;
      this.log.warn(
        { type, version: response.version_info, nonce: response.nonce, error },
        "xDS update rejected",
      );
    }
    this.send(type, state, error);
  }

  /** The response's resources by name; EDS/RDS ones not subscribed are dropped (as Envoy does). */
  private decode(type: ResourceType, response: DiscoveryResponse): Map<string, ResourceJson> {
    const out = new Map<string, ResourceJson>();
    const state = this.types.get(type);
    const wanted = state?.names === undefined ? undefined : new Set(state.names);
    // One budget of decoded messages for the whole response (decode.ts, MAX_MESSAGES).
    const budget = messageBudget();
    for (const [i, any] of response.resources.entries()) {
      if (any.type_url !== response.type_url) {
        throw new Error(`resources[${i}]: type ${any.type_url} in a response of ${response.type_url}`);
      }
      const json = unpackResource(any.type_url, any.value, `resources[${i}]`, budget);
      const name = resourceName(type, json);
      if (name === undefined) throw new Error(`resources[${i}]: a ${type} without a name`);
      if (out.has(name)) throw new Error(`resources[${i}]: duplicate ${type} ${JSON.stringify(name)}`);
      if (wanted !== undefined && !wanted.has(name)) continue;
      out.set(name, json);
    }
    return out;
  }
}
