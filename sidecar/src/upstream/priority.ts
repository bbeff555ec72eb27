// Envoy's priority-level arithmetic, as pure functions. Each priority level gets a "health" score of
// healthy/total scaled by the overprovisioning factor (140 → a level at ≥ 72% healthy still takes all
// its traffic). Load spills to lower levels as health drops; a level below the panic threshold sends
// traffic to all its hosts; when every level is in panic, load follows host counts.

export interface PriorityCounts {
  readonly healthy: number;
  readonly total: number;
}

export interface PriorityPlan {
  /** Percent of traffic per priority level; sums to 100 when any host exists. */
  readonly load: readonly number[];
  /** Whether a level routes to all of its hosts because too few are healthy. */
  readonly panic: readonly boolean[];
}

/** Health of one level as Envoy computes it: min(100, factor% × healthy / total), integer. */
export function levelHealth(counts: PriorityCounts, overprovisioningFactor: number): number {
  if (counts.total === 0) return 0;
  return Math.min(100, Math.floor((overprovisioningFactor * counts.healthy) / counts.total));
}

function isLevelInPanic(counts: PriorityCounts, panicThresholdPercent: number): boolean {
  if (counts.total === 0) return panicThresholdPercent > 0;
  return (100 * counts.healthy) / counts.total < panicThresholdPercent;
}

/** Spreads 100% over levels in proportion to `weights`, higher levels first, leftovers to the first non-zero. */
function distribute(weights: readonly number[], normalizer: number): number[] {
  const load = weights.map(() => 0);
  let remaining = 100;
  let first = -1;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i] ?? 0;
    if (first === -1 && w > 0) first = i;
    const share = Math.min(remaining, Math.floor((w * 100) / normalizer));
    load[i] = share;
    remaining -= share;
  }
  if (first !== -1 && remaining > 0) load[first] = (load[first] ?? 0) + remaining;
  return load;
}

export function computePriorityPlan(
  levels: readonly PriorityCounts[],
  overprovisioningFactor: number,
  panicThresholdPercent: number,
): PriorityPlan {
  if (levels.length === 0) return { load: [], panic: [] };
  const health = levels.map((l) => levelHealth(l, overprovisioningFactor));
  const normalizedTotal = Math.min(
    100,
    health.reduce((a, b) => a + b, 0),
  );
  // With full normalized health the panic threshold is ignored: lower levels absorb the loss.
  const panic = levels.map((l) => normalizedTotal < 100 && isLevelInPanic(l, panicThresholdPercent));
  const allPanic = panic.every(Boolean);
  if (normalizedTotal === 0 || allPanic) {
    const totalHosts = levels.reduce((a, l) => a + l.total, 0);
    if (totalHosts === 0) return { load: levels.map((_, i) => (i === 0 ? 100 : 0)), panic };
    // Total panic: every level is in panic, so traffic follows host counts across all levels.
    return {
      load: distribute(
        levels.map((l) => l.total),
        totalHosts,
      ),
      panic: levels.map(() => true),
    };
  }
  return { load: distribute(health, normalizedTotal), panic };
}

/** Picks a level for a uniform draw in [0, 100). */
export function pickPriority(load: readonly number[], draw: number): number {
  let acc = 0;
  for (let i = 0; i < load.length; i++) {
    acc += load[i] ?? 0;
    if (draw < acc) return i;
  }
  return Math.max(0, load.length - 1);
}
