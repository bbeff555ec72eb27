// transport_socket_matches with Envoy's semantics: an endpoint's `envoy.transport_socket_match`
// metadata picks the first entry whose every `match` pair it holds with an equal value (an empty
// `match` matches every endpoint); no entry matches → the cluster's transport_socket. A health
// check's transport_socket_match_criteria stand in for the endpoint's metadata, which lets a check
// run a TLS handshake while the traffic to the same endpoint stays raw TCP (a TLS-passthrough broker).
import type { ClusterConfig, StructValue } from "@tether/envoy";
import type { Logger } from "../log.ts";
import type { Transport } from "./connect.ts";
import { resolveTransport } from "./tls.ts";

/** A transport with the name it was chosen by: a match entry's name, or "default". */
export interface NamedTransport {
  readonly name: string;
  readonly transport: Transport;
}

interface MatchEntry extends NamedTransport {
  readonly match: StructValue;
}

export const DEFAULT_TRANSPORT_NAME = "default";

/** Envoy's ValueUtil::equal on protobuf Values written as JSON: same kind, same value, deeply. */
export function metadataValuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => metadataValuesEqual(v, b[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every(
    (k) =>
      Object.hasOwn(b as object, k) &&
      metadataValuesEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

/** Every pair of `match` is in `metadata` with an equal value; an empty `match` always holds. */
export function metadataMatches(match: StructValue, metadata: StructValue | undefined): boolean {
  for (const [key, want] of Object.entries(match)) {
    if (metadata === undefined || !Object.hasOwn(metadata, key)) return false;
    if (!metadataValuesEqual(metadata[key], want)) return false;
  }
  return true;
}

export class TransportSocketMatcher {
  readonly fallback: NamedTransport;
  private readonly entries: readonly MatchEntry[];

  constructor(fallback: Transport, entries: readonly MatchEntry[] = []) {
    this.fallback = { name: DEFAULT_TRANSPORT_NAME, transport: fallback };
    this.entries = entries;
  }

  /** Follows the TLS files of every transport while they rotate (see tls-material.ts). */
  watch(log: Logger): void {
    for (const t of [this.fallback, ...this.entries]) t.transport.material?.watch(log);
  }

  unwatch(): void {
    for (const t of [this.fallback, ...this.entries]) t.transport.material?.unwatch();
  }

  /** The transport for an endpoint's metadata, or for a health check's match criteria. */
  resolve(metadata: StructValue | undefined): NamedTransport {
    for (const e of this.entries) if (metadataMatches(e.match, metadata)) return e;
    return this.fallback;
  }
}

/**
 * Builds the cluster's matcher, reading TLS files now so a bad path fails before anything changes.
 * `index` places errors (static_resources.clusters[2].transport_socket_matches[0].transport_socket…).
 */
export function resolveClusterTransports(config: ClusterConfig, index: number): TransportSocketMatcher {
  const path = `static_resources.clusters[${index}]`;
  const fallback = resolveTransport(config.transport_socket, `${path}.transport_socket`);
  const entries = config.transport_socket_matches.map((m, j): MatchEntry => ({
    name: m.name,
    match: m.match,
    transport: resolveTransport(
      m.transport_socket,
      `${path}.transport_socket_matches[${j}].transport_socket`,
    ),
  }));
  return new TransportSocketMatcher(fallback, entries);
}
