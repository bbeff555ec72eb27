// The part of @tether/xds's API the sidecar uses, and its loader. The client entry point
// (@tether/xds/client: the ADS client and its table-driven decoder, no protobufjs, no gRPC) is
// imported only when a bootstrap has dynamic_resources, so a sidecar without xDS never pays for it
// in start-up time or resident memory.
import { TetherError } from "../errors.ts";

// Types only (erased at build): the package itself stays unloaded until dynamic_resources asks for it.
import type { AdsClientOptions, AdsHandler } from "@tether/xds/client";

export type {
  AdsClientOptions,
  AdsHandler,
  LoggerLike,
  ResourceJson,
  ResourceType,
} from "@tether/xds/client";

export interface AdsClientLike {
  start(): void;
  subscribe(type: "endpoint" | "route", names: readonly string[]): void;
  stop(): Promise<void>;
  readonly connected: boolean;
}

export type AdsClientFactory = (options: AdsClientOptions, handler: AdsHandler) => AdsClientLike;

/** Loads @tether/xds's AdsClient; throws TETHER_ERR_XDS_UNAVAILABLE when the package is missing. */
export async function loadAdsClientFactory(): Promise<AdsClientFactory> {
  // A dynamic import: evaluated only on demand (in the bundle, a module initialized at first use).
  let mod: typeof import("@tether/xds/client");
  try {
    mod = await import("@tether/xds/client");
  } catch (err) {
    const message = `dynamic_resources needs the @tether/xds package: ${(err as Error).message}`;
    throw new TetherError("TETHER_ERR_XDS_UNAVAILABLE", message, [message]);
  }
  return (options, handler) => new mod.AdsClient(options, handler);
}
