// The hosts panic routing may pick. Envoy's panic mode sends traffic to every host of a level when too
// few are healthy, so a broken health endpoint cannot take a whole cluster down; Tether keeps that for
// hosts that answer connections but fail their checks, and leaves out hosts known to be unreachable
// (their last connect or check never completed a TCP handshake): a request sent there only waits for
// connect_timeout. A healthy host is always in the set.
import type { Host } from "./host.ts";

export function panicSet(all: readonly Host[]): Host[] {
  const out: Host[] = [];
  for (const h of all) if (h.isHealthy() || !h.unreachable) out.push(h);
  return out;
}

/**
 * The candidates of one pick, leaving out `exclude` (the host a retry just failed on) when another
 * candidate exists, so a retry never returns to it while it has a choice.
 */
export function withoutHost(candidates: readonly Host[], exclude: Host | undefined): readonly Host[] {
  if (exclude === undefined || candidates.length < 2 || !candidates.includes(exclude)) return candidates;
  return candidates.filter((h) => h !== exclude);
}
