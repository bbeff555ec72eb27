// What the DecisionCache keys on and what it may store, as pure functions over node's raw header
// lists ([name, value, name, value, …], every occurrence in arrival order). The key is the JSON
// encoding of a list of lists of strings, so no header value, whatever it contains (`\n`, `:`, `,`,
// quotes), can make one request's key equal another's unless every keyed value is equal.

/** What the cache may do for one request. */
export interface CacheRequest {
  /** Upstream, method, request target, and every value of the keyed headers (see CacheKeyRule). */
  readonly key: string;
  /** The session header's value, for session notifications. */
  readonly session: string | undefined;
  /** False with `Cache-Control: no-cache` (or `Pragma: no-cache`): the client asks for a fresh answer. */
  readonly serve: boolean;
  /** False with `Cache-Control: no-store` on the request (RFC 9111 §5.2.1.5). */
  readonly store: boolean;
  /** The cache's invalidation count when the request was admitted: an answer is stored only if no invalidation came since. */
  readonly generation: number;
}

/** A longer key (a huge cookie or credential) bypasses the cache: the entries' memory stays bounded. */
export const MAX_KEY_CHARS = 8192;

/** Directive names in a Cache-Control (or Pragma) value, lower case, arguments dropped. */
export function directiveNames(value: string): string[] {
  const names: string[] = [];
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name !== "") names.push(name);
  }
  return names;
}

/**
 * The headers that identify a request's subject: Host (the authority), the filter's session header,
 * Authorization (always: a decision made for one credential is only replayed to the same credential)
 * and the configured `key_headers`, each with all of its values in order, so a header sent twice is
 * keyed as two values, never as one joined string.
 */
export class CacheKeyRule {
  /** Lower-case header names, in slot order; each name once. */
  readonly names: readonly string[];
  private readonly slots = new Map<string, number>();
  private readonly sessionSlot: number;

  constructor(sessionHeader: string, keyHeaders: readonly string[]) {
    for (const name of ["host", sessionHeader, "authorization", ...keyHeaders]) {
      const lower = name.toLowerCase();
      if (!this.slots.has(lower)) this.slots.set(lower, this.slots.size);
    }
    this.names = [...this.slots.keys()];
    this.sessionSlot = this.slots.get(sessionHeader.toLowerCase()) ?? 0;
  }

  /**
   * The request's key and what the cache may do with it, or undefined when the request bypasses the
   * cache: a session header sent more than once names no single session a notification could drop;
   * a request with a body asks about something the key does not hold; a key over MAX_KEY_CHARS.
   * `upstream` names where the request goes as sent (cluster and rewritten path): two routes that
   * send one target to different places never share an entry.
   */
  request(
    upstream: string,
    method: string,
    target: string,
    raw: readonly string[],
    generation = 0,
  ): CacheRequest | undefined {
    const values: string[][] = this.names.map(() => []);
    let serve = true;
    let store = true;
    let cacheControl = false;
    let pragmaNoCache = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = (raw[i] ?? "").toLowerCase();
      const value = raw[i + 1] ?? "";
      const slot = this.slots.get(name);
      if (slot !== undefined) values[slot]?.push(value);
      if (name === "transfer-encoding" || (name === "content-length" && value.trim() !== "0"))
        return undefined;
      if (name === "cache-control") {
        cacheControl = true;
        for (const d of directiveNames(value)) {
          if (d === "no-cache") serve = false;
          else if (d === "no-store") store = false;
        }
      } else if (name === "pragma" && directiveNames(value).includes("no-cache")) {
        pragmaNoCache = true;
      }
    }
    // RFC 9111 §5.4: Pragma: no-cache counts only when the request has no Cache-Control.
    if (pragmaNoCache && !cacheControl) serve = false;
    const sessions = values[this.sessionSlot] ?? [];
    if (sessions.length > 1) return undefined;
    const key = JSON.stringify([upstream, method, target, values]);
    if (key.length > MAX_KEY_CHARS) return undefined;
    return { key, session: sessions[0], serve, store, generation };
  }
}

/**
 * Whether a response may be stored: a 200 without `Set-Cookie` (another subject must never receive
 * it), without `Cache-Control` `no-store`, `no-cache` (the cache cannot revalidate) or `private`,
 * and without `Vary: *` (RFC 9111 §4.1: it never matches a later request).
 */
export function responseStorable(status: number, headers: readonly string[]): boolean {
  if (status !== 200) return false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] ?? "").toLowerCase();
    const value = headers[i + 1] ?? "";
    if (name === "set-cookie") return false;
    if (name === "cache-control") {
      for (const d of directiveNames(value)) {
        if (d === "no-store" || d === "no-cache" || d === "private") return false;
      }
    } else if (name === "vary" && directiveNames(value).includes("*")) {
      return false;
    }
  }
  return true;
}

/** The request headers a response varies on (its `Vary` names, lower case, once each). */
export function varyNames(responseHeaders: readonly string[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < responseHeaders.length; i += 2) {
    if ((responseHeaders[i] ?? "").toLowerCase() !== "vary") continue;
    for (const name of directiveNames(responseHeaders[i + 1] ?? "")) {
      if (!names.includes(name)) names.push(name);
    }
  }
  return names;
}

/** Every value of each named header in a request, encoded so that equal strings mean equal values. */
export function varyValues(names: readonly string[], requestHeaders: readonly string[]): string {
  const values: string[][] = names.map(() => []);
  for (let i = 0; i < requestHeaders.length; i += 2) {
    const slot = names.indexOf((requestHeaders[i] ?? "").toLowerCase());
    if (slot !== -1) values[slot]?.push(requestHeaders[i + 1] ?? "");
  }
  return JSON.stringify(values);
}
