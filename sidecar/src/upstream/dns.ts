// STRICT_DNS: every endpoint's host name resolves to all its addresses; each address is a host.
import { lookup } from "node:dns/promises";
import { TRANSPORT_SOCKET_MATCH_KEY, type ClusterConfig, type StructValue } from "../config/schema.ts";

export interface ResolvedEndpoint {
  readonly address: string;
  readonly port: number;
  readonly priority: number;
  readonly hostname: string;
  /** The endpoint's envoy.transport_socket_match metadata, shared by every address it resolves to. */
  readonly transportMatch: StructValue | undefined;
}

type Family = ClusterConfig["dns_lookup_family"];

async function resolveName(name: string, family: Family): Promise<string[]> {
  if (family === "V4_ONLY" || family === "V6_ONLY") {
    const found = await lookup(name, { all: true, family: family === "V4_ONLY" ? 4 : 6 });
    return found.map((a) => a.address);
  }
  const found = await lookup(name, { all: true });
  if (family === "ALL") return found.map((a) => a.address);
  // AUTO prefers IPv6 when the name has it; V4_PREFERRED prefers IPv4.
  const preferred = family === "AUTO" ? 6 : 4;
  const first = found.filter((a) => a.family === preferred);
  return (first.length > 0 ? first : found).map((a) => a.address);
}

export async function resolveEndpoints(config: ClusterConfig): Promise<ResolvedEndpoint[]> {
  const out: ResolvedEndpoint[] = [];
  for (const loc of config.load_assignment.endpoints) {
    for (const ep of loc.lb_endpoints) {
      const sa = ep.endpoint.address.socket_address;
      const addresses = await resolveName(sa.address, config.dns_lookup_family);
      const transportMatch = ep.metadata?.filter_metadata[TRANSPORT_SOCKET_MATCH_KEY];
      for (const address of addresses) {
        out.push({
          address,
          port: sa.port_value,
          priority: loc.priority,
          hostname: sa.address,
          transportMatch,
        });
      }
    }
  }
  return out;
}
