// The retry/back-off model Tether renders and runs: Envoy's jittered exponential back-off, where the
// n-th wait is uniform in [0, min(base × 2^n, max)). The sidecar draws the waits (upstream/backoff.ts);
// the operator sizes retry counts from their expectation here, so both follow the same model.

/**
 * How many attempts fit in `holdMs` with jittered exponential back-off from `baseMs` up to `maxMs`.
 * Envoy waits a uniform random time below the current step, so the expected wait is half a step;
 * the count is chosen so that the expected total back-off reaches the hold time. At least 1.
 */
export function attemptsWithin(holdMs: number, baseMs: number, maxMs: number, limit = 1000): number {
  let attempts = 1;
  let elapsed = 0;
  let step = baseMs;
  while (attempts < limit && step > 0) {
    const expectedWait = Math.min(step, maxMs) / 2;
    if (elapsed + expectedWait > holdMs) break;
    elapsed += expectedWait;
    attempts++;
    step = Math.min(step * 2, maxMs);
  }
  return attempts;
}
