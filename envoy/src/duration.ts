// Envoy's JSON mapping of google.protobuf.Duration: seconds with up to nine fractional digits and an
// "s" suffix ("1.5s", "0.250s", "30s"). Parsed once at the config edge into milliseconds.
const DURATION = /^(\d+)(?:\.(\d{1,9}))?s$/;

/**
 * The longest delay Node's setTimeout / setInterval honour: 2^31 − 1 ms, about 24.8 days. A longer one
 * fires after 1 ms, so config durations that arm timers are bounded by it at load.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** google.protobuf.Duration's range: ±315,576,000,000 s (10,000 years). */
export const MAX_PROTOBUF_DURATION_MS = 315_576_000_000 * 1000;

/** Milliseconds for a protobuf-JSON duration string, or undefined if the text is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (m === null) return undefined;
  const seconds = Number(m[1]);
  const fraction = m[2] ?? "";
  const nanos = fraction === "" ? 0 : Number(fraction.padEnd(9, "0"));
  return seconds * 1000 + nanos / 1e6;
}

/**
 * The protobuf-JSON text for milliseconds, exact to the millisecond with three fractional digits
 * (`0.250s`, `1.500s`, `30s`): the form the operator renders into bootstraps and xDS resources.
 */
export function toEnvoyDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`invalid duration: ${ms}ms`);
  const seconds = Math.floor(ms / 1000);
  const rest = Math.round(ms - seconds * 1000);
  return rest === 0 ? `${seconds}s` : `${seconds}.${String(rest).padStart(3, "0")}s`;
}

/** The shortest protobuf-JSON text for a duration in milliseconds (the sidecar's config dumps, errors). */
export function formatDuration(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? String(seconds) : seconds.toFixed(3).replace(/0+$/, "")}s`;
}
