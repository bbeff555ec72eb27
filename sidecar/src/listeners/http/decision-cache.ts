// The DecisionCache filter: successful (200) responses to cacheable methods are kept for `ttl`,
// keyed by what identifies the subject (decision-cache-rules.ts); a response that varies on request
// headers only answers requests with the same values. Notifications invalidate a session's entries
// or everything at once (hybrid mode). Errors are never cached. Memory is bounded by max_entries
// (least recently used evicted) × max_body_bytes.
import type { ClientRequest } from "node:http";
import type { DecisionCacheConfig } from "@tether/envoy";
import type { Logger } from "../../log.ts";
import { timerDelay } from "../../timers.ts";
import { JitteredBackoff, type RandomSource } from "../../upstream/backoff.ts";
import {
  CacheKeyRule,
  responseStorable,
  varyNames,
  varyValues,
  type CacheRequest,
} from "./decision-cache-rules.ts";

export type { CacheRequest } from "./decision-cache-rules.ts";

/** The request headers a stored response varies on, and their values in the request that filled it. */
interface StoredVary {
  readonly names: readonly string[];
  readonly values: string;
}

export interface CachedResponse {
  readonly status: number;
  readonly headers: readonly string[];
  readonly body: Buffer;
  readonly storedAt: number;
  readonly session: string | undefined;
  readonly vary: StoredVary | undefined;
}

/** What the cache reads from a downstream request to key it. */
export interface CacheableRequest {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
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
  private readonly keyRule: CacheKeyRule;
  /** Invalidations so far: an answer requested before one is never stored (it may be what it revoked). */
  private generation = 0;

  constructor(config: DecisionCacheConfig, now: () => number = Date.now) {
    this.config = config;
    this.now = now;
    this.methods = new Set(config.methods);
    this.keyRule = new CacheKeyRule(config.session_header, config.key_headers);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The request's key and what the cache may do with it, or undefined when it bypasses the cache.
   * `upstream` says where the route sends it (see CacheKeyRule.request).
   */
  admit(req: CacheableRequest, upstream = ""): CacheRequest | undefined {
    const method = req.method;
    if (!this.methods.has(method)) return undefined;
    return this.keyRule.request(upstream, method, req.url, req.rawHeaders, this.generation);
  }

  /** The upstream's answer to a request that may fill the cache could not be stored: it replaces the entry all the same. */
  forget(key: string): void {
    this.entries.delete(key);
  }

  /**
   * The entry stored under `key`, when it is fresh and, if its response varies on request headers,
   * `requestHeaders` (raw, as node gives them) carry the same values as the request that filled it.
   */
  lookup(key: string, requestHeaders: readonly string[] = []): CachedResponse | undefined {
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
    if (entry.vary !== undefined && varyValues(entry.vary.names, requestHeaders) !== entry.vary.values) {
      // Another variant: the upstream's answer to this request replaces the entry.
      this.stats.misses++;
      return undefined;
    }
    // Refresh recency for LRU eviction.
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.stats.hits++;
    return entry;
  }

  /** Whether a response with this status and headers may be stored (see responseStorable). */
  cacheable(status: number, headers: readonly string[]): boolean {
    return responseStorable(status, headers);
  }

  /**
   * Stores a response the caller checked with `cacheable`. `requestHeaders` are the raw headers of
   * the request it answered: the values its `Vary` names are kept with the entry.
   */
  store(
    key: string,
    status: number,
    headers: readonly string[],
    body: Buffer,
    session: string | undefined,
    requestHeaders: readonly string[] = [],
    generation = this.generation,
  ): void {
    if (generation !== this.generation) {
      // Invalidated while the answer was on its way: it may be the decision just revoked.
      this.entries.delete(key);
      return;
    }
    if (body.length > this.config.max_body_bytes || !responseStorable(status, headers)) return;
    const names = varyNames(headers);
    const vary = names.length === 0 ? undefined : { names, values: varyValues(names, requestHeaders) };
    this.entries.delete(key);
    this.entries.set(key, { status, headers, body, storedAt: this.now(), session, vary });
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
    this.generation++;
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
    this.generation++;
    const n = this.entries.size;
    this.entries.clear();
    this.stats.invalidated_policy += n;
    return n;
  }
}

/** A notification, from `POST /notifications` or the policy server's stream. */
export type CacheNotification = { readonly session: string } | { readonly policyChanged: true };

/**
 * `{"session": "<id>"}` → that session; `{"type": "policy-changed"}` (or `{"policy-changed": true}`)
 * → everything. Anything else is undefined.
 */
export function parseNotification(value: unknown): CacheNotification | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v["session"] === "string" && v["session"] !== "") return { session: v["session"] };
  if (v["type"] === "policy-changed" || v["policy-changed"] === true) return { policyChanged: true };
  return undefined;
}

export function applyNotification(cache: DecisionCache, n: CacheNotification): number {
  return "session" in n ? cache.invalidateSession(n.session) : cache.invalidateAll();
}

export interface NotificationStreamOptions {
  /**
   * Opens the long-lived GET on the policy server (the wiring builds it on the cluster's dialer, so
   * TLS and PROXY settings apply); the subscription ends it on stop.
   */
  readonly open: () => ClientRequest;
  /** Reconnect back-off (jittered exponential), as `retry_back_off`. */
  readonly baseIntervalMs: number;
  readonly maxIntervalMs: number;
  /**
   * How long an attempt may wait for the response head (0 = no limit). Without it a hung server,
   * which accepts the connection and never answers, would hold the subscription forever.
   */
  readonly responseTimeoutMs?: number;
  readonly random?: RandomSource;
  readonly log?: Logger;
}

/** A notification line is small JSON; a longer one means the stream is not what it should be. */
const MAX_LINE_CHARS = 65_536;

export class NotificationStreamStats {
  connects = 0;
  disconnects = 0;
  events = 0;
  bad_events = 0;
}

/**
 * Subscribes a cache to the policy server's notification stream: a GET answered 200 with
 * newline-delimited JSON, one notification per line (`{"session": "<id>"}`, `{"type":
 * "policy-changed"}`); blank lines are heartbeats. A dropped or refused stream is reopened after a
 * jittered back-off. Events sent while disconnected are lost, so every reconnect after the first
 * connection drops every entry — the cache never serves a decision a missed event revoked.
 */
export class NotificationStream {
  readonly stats = new NotificationStreamStats();
  private readonly cache: DecisionCache;
  private readonly options: NotificationStreamOptions;
  private readonly backoff: JitteredBackoff;
  private request: ClientRequest | undefined;
  private timer: NodeJS.Timeout | undefined;
  private headTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private everConnected = false;
  private isOpen = false;
  /** Failed attempts since the last open stream: the first is a warning, repeats are debug lines. */
  private failures = 0;

  constructor(cache: DecisionCache, options: NotificationStreamOptions) {
    this.cache = cache;
    this.options = options;
    this.backoff = new JitteredBackoff(options.baseIntervalMs, options.maxIntervalMs, options.random);
  }

  start(): void {
    if (this.stopped || this.request !== undefined) return;
    let ended = false;
    const end = (why: string): void => {
      if (ended) return;
      ended = true;
      clearTimeout(this.headTimer);
      this.headTimer = undefined;
      this.request = undefined;
      this.isOpen = false;
      req.destroy();
      if (this.stopped) return;
      this.stats.disconnects++;
      const wait = this.backoff.next();
      this.failures++;
      const fields = { reason: why, retryInMs: wait, attempts: this.failures };
      if (this.failures === 1) this.options.log?.warn(fields, "decision cache notification stream down");
      else this.options.log?.debug(fields, "decision cache notification stream still down");
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.start();
      }, timerDelay(wait));
    };
    const req = this.options.open();
    this.request = req;
    req.on("error", (err) => {
      end(err.message);
    });
    req.on("close", () => {
      end("closed");
    });
    const limit = this.options.responseTimeoutMs ?? 0;
    if (limit > 0) {
      this.headTimer = setTimeout(() => {
        end(`no response within ${limit} ms`);
      }, timerDelay(limit));
    }
    req.on("response", (res) => {
      clearTimeout(this.headTimer);
      this.headTimer = undefined;
      if (res.statusCode !== 200) {
        res.resume();
        end(`status ${res.statusCode ?? 0}`);
        return;
      }
      this.onConnected();
      res.setEncoding("utf8");
      let pending = "";
      res.on("data", (chunk: string) => {
        pending += chunk;
        let i;
        while ((i = pending.indexOf("\n")) !== -1) {
          this.onLine(pending.slice(0, i));
          pending = pending.slice(i + 1);
        }
        if (pending.length > MAX_LINE_CHARS) end(`a line longer than ${MAX_LINE_CHARS} characters`);
      });
      res.on("error", (err) => {
        end(err.message);
      });
      res.on("end", () => {
        end("stream ended");
      });
    });
    req.end();
  }

  /** True while a stream is open (answered 200 and not ended). */
  get connected(): boolean {
    return this.isOpen;
  }

  stop(): void {
    this.stopped = true;
    this.isOpen = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearTimeout(this.headTimer);
    this.headTimer = undefined;
    this.request?.destroy();
    this.request = undefined;
  }

  private onConnected(): void {
    this.stats.connects++;
    this.isOpen = true;
    this.failures = 0;
    this.backoff.reset();
    if (this.everConnected) this.cache.invalidateAll();
    this.everConnected = true;
    this.options.log?.info({ connects: this.stats.connects }, "decision cache notification stream open");
  }

  private onLine(line: string): void {
    const text = line.trim();
    if (text === "") return;
    let n: CacheNotification | undefined;
    try {
      n = parseNotification(JSON.parse(text));
    } catch {
      n = undefined;
    }
    if (n === undefined) {
      this.stats.bad_events++;
      this.options.log?.warn({ line: text.slice(0, 200) }, "decision cache notification not understood");
      return;
    }
    this.stats.events++;
    applyNotification(this.cache, n);
  }
}
