// The part of @tether/xds's API the sidecar uses, and its loader. The package (gRPC, protobuf
// descriptors) is imported only when a bootstrap has dynamic_resources, so a sidecar without xDS
// never pays for it in start-up time or resident memory.
import { TetherError } from "../errors.ts";

export type ResourceType = "cluster" | "endpoint" | "listener" | "route";
export type ResourceJson = Record<string, unknown>;

export type LoggerLike = {
  debug(o: object, m?: string): void;
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
};

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
  /** Read at every (re)connect: the sidecar passes getters over the ADS cluster's current host. */
  readonly target: { readonly host: string; readonly port: number };
  readonly node: { readonly id: string; readonly cluster: string };
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  readonly log: LoggerLike;
  readonly random?: () => number;
}

export interface AdsClientLike {
  start(): void;
  subscribe(type: "endpoint" | "route", names: readonly string[]): void;
  stop(): Promise<void>;
  readonly connected: boolean;
}

export type AdsClientFactory = (options: AdsClientOptions, handler: AdsHandler) => AdsClientLike;

interface XdsModule {
  AdsClient: new (options: AdsClientOptions, handler: AdsHandler) => AdsClientLike;
}

/** Loads @tether/xds's AdsClient; throws TETHER_ERR_XDS_UNAVAILABLE when the package is missing. */
export async function loadAdsClientFactory(): Promise<AdsClientFactory> {
  // A variable specifier: the package is optional at build time and loaded only on demand.
  const specifier = "@tether/xds";
  let mod: XdsModule;
  try {
    mod = (await import(specifier)) as XdsModule;
  } catch (err) {
    const message = `dynamic_resources needs the @tether/xds package: ${(err as Error).message}`;
    throw new TetherError("TETHER_ERR_XDS_UNAVAILABLE", message, [message]);
  }
  if (typeof mod.AdsClient !== "function") {
    const message = "@tether/xds does not export AdsClient";
    throw new TetherError("TETHER_ERR_XDS_UNAVAILABLE", message, [message]);
  }
  return (options, handler) => new mod.AdsClient(options, handler);
}
