// The DecisionCache filter (seed 003): successful (200) responses to cacheable methods are kept for
// `ttl`, keyed by method, path and the configured headers; notifications invalidate a session's
// entries or everything at once (hybrid mode). Errors are never cached. Memory is bounded by
// max_entries (least recently used evicted) × max_body_bytes.
import type { IncomingMessage } from "node:http";
import type { DecisionCacheConfig } from "../../config/schema.ts";

export interface CachedResponse {
  readonly status: number;
  readonly headers: readonly string[];
  readonly body: Buffer;
  readonly storedAt: number;
  readonly session: string | undefined;
}

export class DecisionCacheStats {
  hits = 0;
  misses = 0;
  insertions = 0;
  invalidated_session = 0;
  invalidated_policy = 0;
  expired = 0;
  evicted = 0;
}

export class DecisionCache {
  readonly config: DecisionCacheConfig;
  readonly stats = new DecisionCacheStats();
  private readonly now: () => number;
  private readonly entries = new Map<string, CachedResponse>();
  private readonly methods: ReadonlySet<string>;

  constructor(config: DecisionCacheConfig, now: () => number = Date.now) {
    this.config = config;
    this.now = now;
    this.methods = new Set(config.methods);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cache key, or undefined when this request is not cacheable. */
  keyFor(req: IncomingMessage): string | undefined {
    const method = req.method ?? "GET";
    if (!this.methods.has(method)) return undefined;
    let key = `${method} ${req.url ?? "/"}`;
    for (const h of this.config.key_headers) {
      const v = req.headers[h.toLowerCase()];
      key += `\n${h}:${Array.isArray(v) ? v.join(",") : (v ?? "")}`;
    }
    return key;
  }

  sessionOf(req: IncomingMessage): string | undefined {
    const v = req.headers[this.config.session_header.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  }

  lookup(key: string): CachedResponse | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.stats.misses++;
      return undefined;
    }
    if (this.now() - entry.storedAt >= this.config.ttl) {
      this.entries.delete(key);
      this.stats.expired++;
      this.stats.misses++;
      return undefined;
    }
    // Refresh recency for LRU eviction.
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.stats.hits++;
    return entry;
  }

  /** Whether a response with this status and headers may be stored. */
  cacheable(status: number, headers: readonly string[]): boolean {
    if (status !== 200) return false;
    for (let i = 0; i < headers.length; i += 2) {
      if (
        (headers[i] ?? "").toLowerCase() === "cache-control" &&
        /no-store|private/i.test(headers[i + 1] ?? "")
      ) {
        return false;
      }
    }
    return true;
  }

  store(
    key: string,
    status: number,
    headers: readonly string[],
    body: Buffer,
    session: string | undefined,
  ): void {
    if (body.length > this.config.max_body_bytes) return;
    this.entries.delete(key);
    this.entries.set(key, { status, headers, body, storedAt: this.now(), session });
    this.stats.insertions++;
    while (this.entries.size > this.config.max_entries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
      this.stats.evicted++;
    }
  }

  /** A session ended or changed: drop its entries. Returns how many were dropped. */
  invalidateSession(session: string): number {
    let n = 0;
    for (const [key, entry] of this.entries) {
      if (entry.session === session) {
        this.entries.delete(key);
        n++;
      }
    }
    this.stats.invalidated_session += n;
    return n;
  }

  /** Policy changed: nothing cached can be trusted. */
  invalidateAll(): number {
    const n = this.entries.size;
    this.entries.clear();
    this.stats.invalidated_policy += n;
    return n;
  }
}
