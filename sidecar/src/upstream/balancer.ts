// Host choice within one priority level: ROUND_ROBIN (a cursor per level) or LEAST_REQUEST (Envoy's
// power-of-N-choices over active requests). Pure apart from the cursor state passed in.
import type { RandomSource } from "./backoff.ts";
import type { Host } from "./host.ts";

export interface BalancerState {
  /** Round-robin cursor per priority level. */
  rrCursor: number[];
}

/** Outstanding work on a host: HTTP requests in flight plus open tcp_proxy sessions (least connections). */
function load(h: Host): number {
  return h.stats.rq_active + h.sessions.size;
}

export function pickHost(
  policy: "ROUND_ROBIN" | "LEAST_REQUEST" | "RING_HASH",
  candidates: readonly Host[],
  level: number,
  state: BalancerState,
  random: RandomSource,
  choiceCount: number,
): Host | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  if (n === 1) return candidates[0];
  if (policy === "RING_HASH") return candidates[Math.floor(random() * n)]; // no hash: any host, as Envoy
  if (policy === "ROUND_ROBIN") {
    const cursor = state.rrCursor[level] ?? 0;
    state.rrCursor[level] = (cursor + 1) % 1_000_000_007;
    return candidates[cursor % n];
  }
  let best: Host | undefined;
  if (choiceCount >= n) {
    // As many choices as hosts, or more (choice_count has no upper bound): the least loaded of all,
    // the limit random draws approach, in n steps however large the count; ties from a random start.
    const start = Math.floor(random() * n);
    for (let i = 0; i < n; i++) {
      const h = candidates[(start + i) % n];
      if (h !== undefined && (best === undefined || load(h) < load(best))) best = h;
    }
    return best;
  }
  for (let i = 0; i < choiceCount; i++) {
    const h = candidates[Math.floor(random() * n)];
    if (h !== undefined && (best === undefined || load(h) < load(best))) best = h;
  }
  return best;
}
