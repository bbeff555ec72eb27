// The contract between the xDS server (operator), the xDS client (sidecar) and the wire.

/** Envoy's type URLs of the four resource types Tether serves over ADS (state of the world). */
export const TYPE_URLS = {
  cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  endpoint: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
  listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
  route: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
} as const;

export type ResourceType = "cluster" | "endpoint" | "listener" | "route";

/** The order Envoy expects pushes in: CDS before EDS, LDS before RDS. */
export const RESOURCE_TYPES: readonly ResourceType[] = ["cluster", "endpoint", "listener", "route"];

/** Resource type for a type URL, or undefined for one Tether does not serve. */
export function resourceTypeOf(typeUrl: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => TYPE_URLS[t] === typeUrl);
}

/**
 * A resource in Envoy's JSON form (what the sidecar's YAML holds): proto field names, durations as
 * "1.5s", `Any` as `{"@type": ..., ...fields}`, enums by name, wrappers as plain values.
 */
export type ResourceJson = Record<string, unknown>;

/** One consistent config for a node group (`node.cluster`). */
export interface Snapshot {
  /** Any string; changes when the content changes. */
  readonly version: string;
  readonly resources: { readonly [T in ResourceType]: ReadonlyMap<string, ResourceJson> };
}

export interface NackEvent {
  readonly nodeId: string;
  readonly group: string;
  readonly type: ResourceType;
  /**
   * The version the client rejected: the one the server sent with `nonce` (not the request's
   * version_info, which is the client's last accepted version; see StreamInfo.acked for that).
   */
  readonly version: string;
  readonly nonce: string;
  readonly message: string;
  /** error_detail.code (a google.rpc.Code; Envoy sends 13 INTERNAL, Tether's client 3 INVALID_ARGUMENT). */
  readonly code: number;
}

export interface AckEvent {
  readonly nodeId: string;
  readonly group: string;
  readonly type: ResourceType;
  readonly version: string;
}

/** A response the server sent (one per type and stream whose content changed, or on request). */
export interface PushEvent {
  readonly nodeId: string;
  readonly group: string;
  readonly type: ResourceType;
  readonly version: string;
  readonly nonce: string;
  readonly resources: number;
}

export interface StreamInfo {
  readonly nodeId: string;
  readonly group: string;
  readonly connectedAt: Date;
  /** The last version the client ACKed, per type. */
  readonly acked: Readonly<Partial<Record<ResourceType, string>>>;
}

/** pino's logger satisfies it. */
export type LoggerLike = {
  debug(o: object, m?: string): void;
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
};

/** An error with a stable code, like the sidecar's config errors. */
export class XdsError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "XdsError";
    this.code = code;
  }
}

/** What a stream presents before it is served: its call metadata and the node of its first request. */
/** A field's path below `path` ("" at the root), as errors name it. */
export function joinPath(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/**
 * A Duration in protojson's canonical text, as Envoy and go-control-plane print it: 0, 3, 6 or 9
 * fractional digits ("30s", "1.500s", "0.000250s"). `seconds` is the whole seconds' magnitude.
 */
export function durationText(negative: boolean, seconds: string, nanos: number): string {
  let fraction = nanos === 0 ? "" : `.${String(Math.abs(nanos)).padStart(9, "0")}`;
  while (fraction.endsWith("000")) fraction = fraction.slice(0, -3);
  return `${negative ? "-" : ""}${seconds}${fraction}s`;
}

/** A resource's JSON that does not fit its message (or bytes that do not decode), naming the path. */
export class XdsJsonError extends XdsError {
  readonly path: string;
  constructor(path: string, message: string) {
    super("TETHER_ERR_XDS_JSON", `${path === "" ? "(root)" : path}: ${message}`);
    this.path = path;
  }
}

export interface StreamCredentials {
  /** The `authorization` call metadata (e.g. `Bearer <token>`), undefined when absent. */
  readonly authorization: string | undefined;
  readonly node: { readonly id: string; readonly cluster: string };
  /** The peer's address, for logs. */
  readonly peer: string;
}

/** gRPC status names a refused stream ends with. */
export type RefusalCode = "UNAUTHENTICATED" | "PERMISSION_DENIED" | "UNAVAILABLE";

/** The answer of AdsServerOptions.authorize: serve the stream (its node.cluster only), or end it. */
export type StreamAuthorization =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      readonly code: RefusalCode;
      /** A short machine-readable reason (a metric label). */
      readonly reason: string;
      /** Sent to the client as the status message; names what was wrong. */
      readonly message: string;
    };
