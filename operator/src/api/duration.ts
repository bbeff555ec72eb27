/**
 * Durations in Tether resources are Go-style strings (`500ms`, `2s`, `3m`, `1h`, `1m30s`), the
 * form CEL's `duration()` understands, so the API server can compare them in validation rules.
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The accepted syntax: one or more `<number><unit>` parts, unit one of ms, s, m, h. */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";
const DURATION_RE = new RegExp(DURATION_PATTERN);
const PART_RE = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;

/** Parses a duration string into milliseconds; throws a TypeError naming the bad value. */
export function parseDuration(text: string): number {
  if (!DURATION_RE.test(text)) {
    throw new TypeError(
      `invalid duration "${text}": use a number and a unit (ms, s, m, h), e.g. 500ms or 2s`,
    );
  }
  let total = 0;
  for (const match of text.matchAll(PART_RE)) {
    total += Number(match[1]) * (UNIT_MS[match[2] ?? ""] ?? 0);
  }
  return total;
}
