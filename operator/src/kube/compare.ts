/**
 * Is everything the operator wants already there? `desired` must be contained in `observed`:
 * the API server adds defaults (and status), so extra fields on the observed side are fine.
 */
export function isSubset(desired: unknown, observed: unknown): boolean {
  if (desired === observed) return true;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed)) return desired.length === 0 && observed === undefined;
    if (desired.length !== observed.length) return false;
    return desired.every((item, i) => isSubset(item, observed[i]));
  }
  if (desired !== null && typeof desired === "object") {
    const entries = Object.entries(desired as Record<string, unknown>);
    if (observed === undefined || observed === null) return entries.every(([, v]) => isEmpty(v));
    if (typeof observed !== "object" || Array.isArray(observed)) return false;
    const obs = observed as Record<string, unknown>;
    return entries.every(([k, v]) => (v === undefined ? true : isSubset(v, obs[k])));
  }
  // Int-or-string fields and quantities may come back in the other form ("8080" vs 8080).
  if (
    (typeof desired === "number" || typeof desired === "string") &&
    (typeof observed === "number" || typeof observed === "string")
  ) {
    return String(desired) === String(observed);
  }
  return false;
}

/** The API server drops empty maps and lists; absent counts as equal to empty. */
function isEmpty(value: unknown): boolean {
  if (value === undefined) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (value !== null && typeof value === "object") return Object.values(value).every(isEmpty);
  return false;
}
