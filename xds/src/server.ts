// The ADS server core (state of the world), as Envoy's xDS protocol describes it: per stream and per
// type an independent subscription; a response carries version_info and a fresh nonce; a request
// echoing the latest nonce is an ACK (version_info = the version sent) or a NACK (error_detail set);
// requests with an older nonce are stale and ignored. Snapshots are keyed by node.cluster (every pod
// of an Agent shares one), and a snapshot change pushes only the types whose content changed for
// that stream, CDS before EDS and LDS before RDS.
import { createHash } from "node:crypto";
import type * as Grpc from "@grpc/grpc-js";
import { packResource } from "./json.ts";
import { RESOURCE_TYPES, TYPE_URLS, XdsError, resourceTypeOf } from "./types.ts";
import type {
  AckEvent,
  LoggerLike,
  NackEvent,
  PushEvent,
  RefusalCode,
  ResourceJson,
  ResourceType,
  Snapshot,
  StreamAuthorization,
  StreamCredentials,
  StreamInfo,
} from "./types.ts";
import { ADS_METHOD } from "./wire.ts";
import type { DiscoveryRequest, DiscoveryResponse, WireAny } from "./wire.ts";

export interface AdsServerOptions {
  readonly host: string;
  readonly port: number;
  readonly log: LoggerLike;
  /** Reserved for TLS and authentication (a later change); plaintext when absent. */
  readonly credentials?: Grpc.ServerCredentials;
  /**
   * Serve TLS with this certificate (PEM chain and key); setTlsIdentity() replaces it for new
   * handshakes while open connections keep theirs. Takes precedence over `credentials`.
   */
  readonly tls?: TlsIdentity;
  /** How long stop() lets streams close before forcing the shutdown. Default 2 s. */
  readonly shutdownGraceMs?: number;
  /**
   * Decides, from the call metadata and the first request's node, whether a stream is served; a
   * served stream gets its node.cluster's snapshot only, for its whole life. A refusal ends the
   * stream with its status. Absent: every stream is served.
   */
  readonly authorize?: (credentials: StreamCredentials) => Promise<StreamAuthorization>;
}

type Call = Grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

/** A TLS server identity: the certificate chain and its private key, PEM. */
export interface TlsIdentity {
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * grpc-js' certificate-provider hook (experimental API): the server subscribes when it binds and
 * calls setSecureContext with each update, which only new TLS handshakes see.
 */
class IdentityProvider implements Grpc.experimental.CertificateProvider {
  private identity: Grpc.experimental.IdentityCertificateUpdate;
  private readonly listeners = new Set<Grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(identity: TlsIdentity) {
    this.identity = IdentityProvider.update(identity);
  }

  private static update(identity: TlsIdentity): Grpc.experimental.IdentityCertificateUpdate {
    return { certificate: Buffer.from(identity.certPem), privateKey: Buffer.from(identity.keyPem) };
  }

  set(identity: TlsIdentity): void {
    this.identity = IdentityProvider.update(identity);
    for (const listener of this.listeners) listener(this.identity);
  }

  addIdentityCertificateListener(listener: Grpc.experimental.IdentityCertificateUpdateListener): void {
    this.listeners.add(listener);
    // Not synchronously: grpc-js subscribes here before it registers the server's watcher, so an
    // answer given now would reach no server and every connection would be dropped as "unloaded
    // credentials". A microtask later the watcher is there (and the port not yet listening).
    queueMicrotask(() => {
      if (this.listeners.has(listener)) listener(this.identity);
    });
  }

  removeIdentityCertificateListener(listener: Grpc.experimental.IdentityCertificateUpdateListener): void {
    this.listeners.delete(listener);
  }

  // Client certificates are not asked for: this provider supplies the server's identity only.
  addCaCertificateListener(): void {}
  removeCaCertificateListener(): void {}
}

/** google.rpc.Code values the server ends streams with. */
const INVALID_ARGUMENT = 3;
const PERMISSION_DENIED = 7;
const INTERNAL = 13;
const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;
const REFUSAL_STATUS: Record<RefusalCode, number> = { UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE };
/** Requests a client may send while its stream is being authorized (it sends one per type). */
const MAX_QUEUED_REQUESTS = 16;

/** A resource encoded once per snapshot, shared by every stream of the group. */
interface EncodedResource {
  readonly any: WireAny;
  readonly hash: string;
}

interface EncodedSnapshot {
  readonly version: string;
  readonly resources: { readonly [T in ResourceType]: ReadonlyMap<string, EncodedResource> };
}

interface TypeState {
  /** undefined: wildcard (every resource of the type). */
  names: ReadonlySet<string> | undefined;
  sentNonce?: string;
  sentVersion?: string;
  /** Which resources (name and content hash) the last response carried. */
  sentKey?: string;
  /** The nonce the client answered last (an ACK or NACK is counted once). */
  answeredNonce?: string;
  ackedVersion?: string;
}

interface AdsStream {
  readonly id: number;
  readonly call: Call;
  readonly connectedAt: Date;
  nodeId: string;
  /** Set once the stream is served (after authorization, when there is one). */
  group: string | undefined;
  nonce: number;
  readonly types: Map<ResourceType, TypeState>;
  /**
   * Types held back while the stream's send buffer is full (a slow or stuck client), with whether
   * the response is owed regardless of change; each is sent once, with the then-latest snapshot.
   */
  readonly held: Map<ResourceType, boolean>;
  /** Requests received while authorize() runs, handled in order once it allows the stream. */
  queued: DiscoveryRequest[] | undefined;
  closed: boolean;
}

const CONTROL_PLANE = { identifier: "tether-operator" };

function resourceName(type: ResourceType, json: ResourceJson): unknown {
  return type === "endpoint" ? json["cluster_name"] : json["name"];
}

/**
 * Encodings by resource object: a control plane that passes the same object again (a type whose
 * content did not change) is not encoded twice; entries go with the objects.
 */
type EncodeCache = WeakMap<ResourceJson, { readonly name: string; readonly encoded: EncodedResource }>;

function encodeType(
  type: ResourceType,
  resources: ReadonlyMap<string, ResourceJson>,
  cache: EncodeCache,
): Map<string, EncodedResource> {
  const out = new Map<string, EncodedResource>();
  for (const [name, json] of resources) {
    const known = cache.get(json);
    if (known !== undefined && known.name === name) {
      out.set(name, known.encoded);
      continue;
    }
    const own = resourceName(type, json);
    if (own !== undefined && own !== name) {
      throw new XdsError(
        "TETHER_ERR_XDS_SNAPSHOT",
        `${type} ${JSON.stringify(name)}: its name is ${JSON.stringify(own)}`,
      );
    }
    const body =
      own === undefined ? { ...json, [type === "endpoint" ? "cluster_name" : "name"]: name } : json;
    const any = packResource(TYPE_URLS[type], body, `${type} ${JSON.stringify(name)}`);
    const resource = { any, hash: createHash("sha256").update(any.value).digest("base64url").slice(0, 22) };
    cache.set(json, { name, encoded: resource });
    out.set(name, resource);
  }
  return out;
}

/** The changed types encoded, the others taken from `current`; throws if one is in neither. */
function encodeSnapshot(
  group: string,
  version: string,
  changed: Partial<Snapshot["resources"]>,
  current: EncodedSnapshot | undefined,
  cache: EncodeCache,
): EncodedSnapshot {
  const encoded = {} as { [T in ResourceType]: ReadonlyMap<string, EncodedResource> };
  for (const type of RESOURCE_TYPES) {
    const resources = changed[type];
    const kept = current?.resources[type];
    if (resources !== undefined) encoded[type] = encodeType(type, resources, cache);
    else if (kept !== undefined) encoded[type] = kept;
    else
      throw new XdsError(
        "TETHER_ERR_XDS_SNAPSHOT",
        `${JSON.stringify(group)}: no ${type} resources given and none set before`,
      );
  }
  return { version, resources: encoded };
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function sameNames(a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.size === b.size && [...a].every((n) => b.has(n));
}

/** CDS and LDS default to wildcard; EDS and RDS name what they want (empty: nothing). */
function requestedNames(type: ResourceType, names: readonly string[]): ReadonlySet<string> | undefined {
  if ((type === "cluster" || type === "listener") && (names.length === 0 || names.includes("*")))
    return undefined;
  return new Set(names);
}

export class AdsServer {
  private readonly options: AdsServerOptions;
  private readonly log: LoggerLike;
  private server: Grpc.Server | undefined;
  private grpc: typeof Grpc | undefined;
  private readonly snapshots = new Map<string, EncodedSnapshot>();
  private readonly open = new Set<AdsStream>();
  /** Open streams by group, so a snapshot change visits only its own group's streams. */
  private readonly byGroup = new Map<string, Set<AdsStream>>();
  private readonly encodeCache: EncodeCache = new WeakMap();
  private readonly nackListeners: ((e: NackEvent) => void)[] = [];
  private readonly ackListeners: ((e: AckEvent) => void)[] = [];
  private readonly pushListeners: ((e: PushEvent) => void)[] = [];
  private nextStreamId = 1;
  private started = false;
  private identity: IdentityProvider | undefined;

  constructor(options: AdsServerOptions) {
    this.options = options;
    this.log = options.log;
  }

  /** Binds and serves; port 0 picks a free one. */
  async start(): Promise<{ port: number }> {
    // Loaded here, not at import: the sidecar imports this package for the client alone.
    const grpc = await import("@grpc/grpc-js");
    this.grpc = grpc;
    const server = new grpc.Server({
      // Sidecars ping (every 5 s as the operator renders them) to find a dead operator; let them.
      "grpc.keepalive_permit_without_calls": 1,
      // Nothing reads channelz; on, it keeps a call tracker, a trace and a registry entry per
      // connection (~7 KiB of heap per stream at 1000 streams).
      "grpc.enable_channelz": 0,
    });
    const service: Grpc.ServiceDefinition = { StreamAggregatedResources: ADS_METHOD };
    server.addService(service, {
      StreamAggregatedResources: (call: Call): void => {
        this.accept(call);
      },
    });
    this.server = server;
    const credentials = this.credentials(grpc);
    return new Promise((resolve, reject) => {
      server.bindAsync(hostPort(this.options.host, this.options.port), credentials, (err, port) => {
        if (err !== null) {
          reject(err);
          return;
        }
        this.started = true;
        this.log.info({ host: this.options.host, port }, "xDS server listening");
        resolve({ port });
      });
    });
  }

  /** TLS from `tls` (hot-swappable), else the given credentials, else plaintext. */
  private credentials(grpc: typeof Grpc): Grpc.ServerCredentials {
    if (this.options.tls === undefined)
      return this.options.credentials ?? grpc.ServerCredentials.createInsecure();
    this.identity = new IdentityProvider(this.options.tls);
    // The first argument is the identity provider, the second the client-CA one (none: no mTLS).
    return grpc.experimental.createCertificateProviderServerCredentials(this.identity, null, false);
  }

  /** Replaces the TLS certificate: new handshakes present it, open connections and streams go on. */
  setTlsIdentity(identity: TlsIdentity): void {
    if (this.identity === undefined)
      throw new XdsError("TETHER_ERR_XDS_TLS", "the xDS server was not started with tls");
    this.identity.set(identity);
    this.log.info({ openStreams: this.open.size }, "xDS server certificate replaced");
  }

  /** Ends every stream with UNAVAILABLE (clients reconnect elsewhere or later) and frees the port. */
  async stop(): Promise<void> {
    for (const stream of this.open) {
      stream.call.emit("error", { code: UNAVAILABLE, details: "xDS server stopping" });
    }
    this.open.clear();
    this.byGroup.clear();
    const server = this.server;
    if (!this.started || server === undefined) return;
    this.started = false;
    const grace = this.options.shutdownGraceMs ?? 2000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, grace);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Sets the group's config and pushes, to each of its streams, the types whose content changed. */
  setSnapshot(group: string, snapshot: Snapshot): void {
    this.updateSnapshot(group, snapshot.version, snapshot.resources);
  }

  /**
   * As setSnapshot, from the types that changed only: a type left out keeps the group's current
   * resources and their encoding, so a caller need not hold on to the objects it sent. A type the
   * group never had must be given (TETHER_ERR_XDS_SNAPSHOT).
   */
  updateSnapshot(group: string, version: string, changed: Partial<Snapshot["resources"]>): void {
    // Throws before anything changes.
    const encoded = encodeSnapshot(group, version, changed, this.snapshots.get(group), this.encodeCache);
    this.snapshots.set(group, encoded);
    for (const stream of this.byGroup.get(group) ?? []) {
      for (const type of RESOURCE_TYPES) if (stream.types.has(type)) this.push(stream, type, false);
    }
  }

  /** Forgets the group's config; its streams stay open and keep what they have until a new one. */
  removeSnapshot(group: string): void {
    this.snapshots.delete(group);
  }

  onNack(listener: (e: NackEvent) => void): void {
    this.nackListeners.push(listener);
  }

  onAck(listener: (e: AckEvent) => void): void {
    this.ackListeners.push(listener);
  }

  /** Every response sent (for a per-type push counter). */
  onPush(listener: (e: PushEvent) => void): void {
    this.pushListeners.push(listener);
  }

  streams(): StreamInfo[] {
    const out: StreamInfo[] = [];
    for (const s of this.open) {
      if (s.group === undefined) continue;
      const acked: Partial<Record<ResourceType, string>> = {};
      for (const [type, state] of s.types)
        if (state.ackedVersion !== undefined) acked[type] = state.ackedVersion;
      out.push({ nodeId: s.nodeId, group: s.group, connectedAt: s.connectedAt, acked });
    }
    return out;
  }

  private accept(call: Call): void {
    const stream: AdsStream = {
      id: this.nextStreamId++,
      call,
      connectedAt: new Date(),
      nodeId: "",
      group: undefined,
      nonce: 0,
      types: new Map(),
      held: new Map(),
      queued: undefined,
      closed: false,
    };
    this.open.add(stream);
    // Headers at once, so a client knows it is connected before the first response.
    if (this.grpc !== undefined) call.sendMetadata(new this.grpc.Metadata());
    call.on("data", (request: DiscoveryRequest) => {
      try {
        this.onRequest(stream, request);
      } catch (err) {
        this.log.error({ err, stream: stream.id, nodeId: stream.nodeId }, "xDS request failed");
        call.emit("error", { code: INTERNAL, details: "internal error" });
      }
    });
    call.on("end", () => {
      call.end();
    });
    call.on("error", (err: Error) => {
      this.log.debug({ err: err.message, stream: stream.id, nodeId: stream.nodeId }, "xDS stream error");
    });
    call.on("close", () => {
      stream.closed = true;
      if (this.forget(stream) && stream.group !== undefined) {
        this.log.info({ nodeId: stream.nodeId, group: stream.group }, "xDS stream closed");
      }
    });
    call.on("cancelled", () => {
      stream.closed = true;
      this.forget(stream);
    });
    // The transport took what was waiting: send the latest state of every type held back.
    call.on("drain", () => {
      const held = [...stream.held];
      stream.held.clear();
      for (const [type, force] of held) this.push(stream, type, force);
    });
  }

  private forget(stream: AdsStream): boolean {
    if (stream.group !== undefined) {
      const peers = this.byGroup.get(stream.group);
      peers?.delete(stream);
      if (peers?.size === 0) this.byGroup.delete(stream.group);
    }
    return this.open.delete(stream);
  }

  private onRequest(stream: AdsStream, request: DiscoveryRequest): void {
    if (stream.queued !== undefined) {
      // Still authorizing: keep the order; a client flooding before an answer is cut off.
      if (stream.queued.length >= MAX_QUEUED_REQUESTS) {
        this.refuse(stream, "UNAVAILABLE", "too_many_requests", "too many requests before authorization");
      } else stream.queued.push(request);
      return;
    }
    if (stream.group === undefined) {
      if (request.node === undefined || request.node.cluster === "") {
        stream.call.emit("error", {
          code: INVALID_ARGUMENT,
          details: "the first DiscoveryRequest must carry node (id and cluster)",
        });
        return;
      }
      stream.nodeId = request.node.id;
      if (this.options.authorize !== undefined) {
        stream.queued = [request];
        this.authorize(stream, this.options.authorize, {
          id: request.node.id,
          cluster: request.node.cluster,
        });
        return;
      }
      this.join(stream, request.node.cluster);
    }
    const type = resourceTypeOf(request.type_url);
    if (type === undefined) {
      this.log.warn(
        { nodeId: stream.nodeId, typeUrl: request.type_url },
        "xDS request for a type not served; ignored",
      );
      return;
    }
    const names = requestedNames(type, request.resource_names);
    let state = stream.types.get(type);
    if (state === undefined || request.response_nonce === "") {
      // A new subscription (or a re-request after reconnecting): answer with the current state.
      state ??= { names };
      state.names = names;
      stream.types.set(type, state);
      this.push(stream, type, true);
      return;
    }
    if (request.response_nonce !== state.sentNonce) {
      this.log.debug(
        { nodeId: stream.nodeId, type, nonce: request.response_nonce },
        "xDS stale nonce; ignored",
      );
      return;
    }
    // A subscription change may echo the nonce before the ACK/NACK does: count only a real answer.
    if (state.answeredNonce !== request.response_nonce && this.answer(stream, type, state, request)) {
      state.answeredNonce = request.response_nonce;
    }
    if (!sameNames(names, state.names)) {
      state.names = names;
      this.push(stream, type, false);
    }
  }

  private authorize(
    stream: AdsStream,
    authorize: NonNullable<AdsServerOptions["authorize"]>,
    node: { id: string; cluster: string },
  ): void {
    const values = stream.call.metadata.get("authorization");
    const first = values[0];
    const credentials: StreamCredentials = {
      authorization: typeof first === "string" ? first : first?.toString("utf8"),
      node,
      peer: stream.call.getPeer(),
    };
    const decide = async (): Promise<StreamAuthorization> => {
      try {
        return await authorize(credentials);
      } catch (err) {
        this.log.error({ err, nodeId: node.id, group: node.cluster }, "xDS authorization failed");
        return { allowed: false, code: "UNAVAILABLE", reason: "error", message: "authorization failed" };
      }
    };
    void decide().then((decision) => {
      if (stream.closed) return;
      if (!decision.allowed) {
        this.refuse(stream, decision.code, decision.reason, decision.message);
        return;
      }
      const queued = stream.queued ?? [];
      stream.queued = undefined;
      this.join(stream, node.cluster);
      for (const request of queued) {
        try {
          this.onRequest(stream, request);
        } catch (err) {
          this.log.error({ err, stream: stream.id, nodeId: stream.nodeId }, "xDS request failed");
          stream.call.emit("error", { code: INTERNAL, details: "internal error" });
          return;
        }
      }
    });
  }

  /** The stream serves `group` from now on: its snapshot changes reach it. */
  private join(stream: AdsStream, group: string): void {
    stream.group = group;
    const peers = this.byGroup.get(group) ?? new Set<AdsStream>();
    peers.add(stream);
    this.byGroup.set(group, peers);
    this.log.info({ nodeId: stream.nodeId, group }, "xDS stream opened");
  }

  /** Ends a stream that is not to be served, with its status; it never had a group. */
  private refuse(stream: AdsStream, code: RefusalCode, reason: string, message: string): void {
    stream.queued = undefined;
    stream.closed = true;
    this.open.delete(stream);
    this.log.warn(
      { nodeId: stream.nodeId, peer: stream.call.getPeer(), code, reason, message },
      "xDS stream refused",
    );
    stream.call.emit("error", { code: REFUSAL_STATUS[code], details: message });
  }

  /** Reports a NACK or an ACK of the latest response; false if the request is neither. */
  private answer(
    stream: AdsStream,
    type: ResourceType,
    state: TypeState,
    request: DiscoveryRequest,
  ): boolean {
    const group = stream.group ?? "";
    if (request.error_detail !== undefined) {
      const event: NackEvent = {
        nodeId: stream.nodeId,
        group,
        type,
        version: state.sentVersion ?? "",
        nonce: request.response_nonce,
        message: request.error_detail.message,
        code: request.error_detail.code,
      };
      this.log.warn({ ...event }, "xDS update rejected (NACK)");
      for (const listener of this.nackListeners) this.emit(listener, event);
      return true;
    }
    if (request.version_info !== state.sentVersion) return false;
    state.ackedVersion = request.version_info;
    const event: AckEvent = { nodeId: stream.nodeId, group, type, version: request.version_info };
    this.log.debug(event, "xDS update accepted (ACK)");
    for (const listener of this.ackListeners) this.emit(listener, event);
    return true;
  }

  private emit<E>(listener: (e: E) => void, event: E): void {
    try {
      listener(event);
    } catch (err) {
      this.log.error({ err }, "xDS event listener threw");
    }
  }

  /** Sends the type's current state to the stream; unless `force`, only if its content changed. */
  private push(stream: AdsStream, type: ResourceType, force: boolean): void {
    const state = stream.types.get(type);
    const snapshot = stream.group === undefined ? undefined : this.snapshots.get(stream.group);
    if (state === undefined || snapshot === undefined) return;
    // Bounded per stream: while the client does not read, keep at most one pending push per type.
    if (stream.call.writableNeedDrain) {
      stream.held.set(type, force || stream.held.get(type) === true);
      return;
    }
    const resources: WireAny[] = [];
    const key: string[] = [];
    const all = snapshot.resources[type];
    const names = state.names === undefined ? [...all.keys()] : [...state.names].filter((n) => all.has(n));
    for (const name of names.sort()) {
      const r = all.get(name);
      if (r === undefined) continue;
      resources.push(r.any);
      key.push(`${name}=${r.hash}`);
    }
    const sentKey = key.join(",");
    if (!force && sentKey === state.sentKey) return;
    const nonce = String(++stream.nonce);
    state.sentNonce = nonce;
    state.sentVersion = snapshot.version;
    state.sentKey = sentKey;
    stream.call.write({
      version_info: snapshot.version,
      resources,
      type_url: TYPE_URLS[type],
      nonce,
      control_plane: CONTROL_PLANE,
    });
    const event: PushEvent = {
      nodeId: stream.nodeId,
      group: stream.group ?? "",
      type,
      version: snapshot.version,
      nonce,
      resources: resources.length,
    };
    this.log.debug(event, "xDS push");
    for (const listener of this.pushListeners) this.emit(listener, event);
  }
}
