// Node's timers hold a signed 32-bit millisecond count: a longer delay (or NaN) is replaced by 1 ms
// with only a warning, so a "very long" timeout would fire at once and an interval would spin. Config
// durations are bounded at load (envoy/src/schema.ts); delays computed from them pass through here.
import { MAX_TIMER_MS } from "@tether/envoy";

/** The longest delay setTimeout / setInterval honour (defined with the config's duration bounds). */
export { MAX_TIMER_MS };

/** `ms` as a delay Node will honour: negative → 0, longer than MAX_TIMER_MS (or not a number) → MAX_TIMER_MS. */
export function timerDelay(ms: number): number {
  if (Number.isNaN(ms)) return MAX_TIMER_MS;
  return Math.min(Math.max(ms, 0), MAX_TIMER_MS);
}
