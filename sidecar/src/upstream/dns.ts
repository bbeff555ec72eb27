// STRICT_DNS: every endpoint's host name resolves to all its addresses; each address is a host.
// Names go through the system resolver (getaddrinfo: /etc/hosts, then the servers in resolv.conf),
// unless the cluster names its own DNS servers or asks for TTLs (respect_dns_ttl): then they are
// queried directly, which is what gives a TTL.
import { lookup, Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { TRANSPORT_SOCKET_MATCH_KEY, type ClusterConfig, type StructValue } from "@tether/envoy";

export interface ResolvedEndpoint {
  readonly address: string;
  readonly port: number;
  readonly priority: number;
  readonly hostname: string;
  /** The endpoint's envoy.transport_socket_match metadata, shared by every address it resolves to. */
  readonly transportMatch: StructValue | undefined;
}

export interface DnsAnswer {
  readonly endpoints: ResolvedEndpoint[];
  /** The smallest TTL of the records, in ms; undefined when the resolver gave none (getaddrinfo). */
  readonly ttlMs: number | undefined;
}

type Family = ClusterConfig["dns_lookup_family"];

interface Addresses {
  readonly addresses: string[];
  readonly ttlMs: number | undefined;
}

/** A direct query waits this long per try (c-ares' own default is 5 s × 4 tries). */
const QUERY_TIMEOUT_MS = 2_000;
const QUERY_TRIES = 2;

async function viaGetaddrinfo(name: string, family: Family): Promise<Addresses> {
  if (family === "V4_ONLY" || family === "V6_ONLY") {
    const found = await lookup(name, { all: true, family: family === "V4_ONLY" ? 4 : 6 });
    return { addresses: found.map((a) => a.address), ttlMs: undefined };
  }
  const found = await lookup(name, { all: true });
  if (family === "ALL") return { addresses: found.map((a) => a.address), ttlMs: undefined };
  // AUTO prefers IPv6 when the name has it; V4_PREFERRED prefers IPv4.
  const preferred = family === "AUTO" ? 6 : 4;
  const first = found.filter((a) => a.family === preferred);
  return { addresses: (first.length > 0 ? first : found).map((a) => a.address), ttlMs: undefined };
}

async function query(resolver: Resolver, name: string, v: 4 | 6): Promise<Addresses> {
  try {
    const records =
      v === 4 ? await resolver.resolve4(name, { ttl: true }) : await resolver.resolve6(name, { ttl: true });
    const ttls = records.map((r) => r.ttl * 1000);
    return {
      addresses: records.map((r) => r.address),
      ttlMs: ttls.length > 0 ? Math.min(...ttls) : undefined,
    };
  } catch (err) {
    // No record of this family is an empty answer, not a failure: the other family may have one.
    if ((err as NodeJS.ErrnoException).code === "ENODATA") return { addresses: [], ttlMs: undefined };
    throw err;
  }
}

function merge(a: Addresses, b: Addresses): Addresses {
  const ttls = [a.ttlMs, b.ttlMs].filter((t) => t !== undefined);
  return {
    addresses: [...a.addresses, ...b.addresses],
    ttlMs: ttls.length > 0 ? Math.min(...ttls) : undefined,
  };
}

async function viaQuery(resolver: Resolver, name: string, family: Family): Promise<Addresses> {
  if (family === "V4_ONLY") return query(resolver, name, 4);
  if (family === "V6_ONLY") return query(resolver, name, 6);
  if (family === "ALL") return merge(await query(resolver, name, 6), await query(resolver, name, 4));
  const [first, second]: [4 | 6, 4 | 6] = family === "AUTO" ? [6, 4] : [4, 6];
  const preferred = await query(resolver, name, first);
  return preferred.addresses.length > 0 ? preferred : query(resolver, name, second);
}

/** Resolves a cluster's endpoint names, the way its config asks. */
export class EndpointResolver {
  private readonly config: ClusterConfig;
  private readonly resolver: Resolver | undefined;
  /** Own servers: answers come only from them (no /etc/hosts fallback). */
  private readonly ownServers: boolean;

  constructor(config: ClusterConfig) {
    this.config = config;
    const servers = config.typed_dns_resolver_config?.typed_config.resolvers ?? [];
    this.ownServers = servers.length > 0;
    if (this.ownServers || config.respect_dns_ttl) {
      this.resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
      if (this.ownServers) {
        this.resolver.setServers(
          servers.map((s) => {
            const sa = s.socket_address;
            return isIP(sa.address) === 6
              ? `[${sa.address}]:${sa.port_value}`
              : `${sa.address}:${sa.port_value}`;
          }),
        );
      }
    }
  }

  private async addresses(name: string): Promise<Addresses> {
    if (isIP(name) !== 0) return { addresses: [name], ttlMs: undefined };
    const family = this.config.dns_lookup_family;
    if (this.resolver === undefined) return viaGetaddrinfo(name, family);
    try {
      const answer = await viaQuery(this.resolver, name, family);
      if (answer.addresses.length > 0 || this.ownServers) return answer;
    } catch (err) {
      if (this.ownServers || (err as NodeJS.ErrnoException).code !== "ENOTFOUND") throw err;
    }
    // respect_dns_ttl with the system's servers: a name only /etc/hosts knows still resolves.
    return viaGetaddrinfo(name, family);
  }

  /** Every endpoint's addresses; throws when a name does not resolve (the caller keeps the last answer). */
  async resolve(): Promise<DnsAnswer> {
    const out: ResolvedEndpoint[] = [];
    let ttlMs: number | undefined;
    for (const loc of this.config.load_assignment.endpoints) {
      for (const ep of loc.lb_endpoints) {
        const sa = ep.endpoint.address.socket_address;
        const found = await this.addresses(sa.address);
        if (found.addresses.length === 0) {
          throw new Error(`${sa.address}: no ${this.config.dns_lookup_family} address records`);
        }
        if (found.ttlMs !== undefined) ttlMs = Math.min(ttlMs ?? Infinity, found.ttlMs);
        const transportMatch = ep.metadata?.filter_metadata[TRANSPORT_SOCKET_MATCH_KEY];
        for (const address of found.addresses) {
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
    return { endpoints: out, ttlMs };
  }

  /** Stops queries in flight (a reload or shutdown replaced the cluster). */
  cancel(): void {
    this.resolver?.cancel();
  }
}
