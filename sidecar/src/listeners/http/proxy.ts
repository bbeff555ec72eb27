// One downstream request through route → retry → balancer → pool. The ProxyAttempt object is the
// pool's exchange handler (no per-request closures on the hot path); a retry makes a new attempt so
// late callbacks from an abandoned one are ignored.
import { RESPONSE_FLAGS } from "@tether/envoy";
import type { DownstreamRequest as IncomingMessage } from "./server/request.ts";
import type { ResponseObserver, DownstreamResponse as ServerResponse } from "./server/response.ts";
import { JitteredBackoff, type RandomSource } from "../../upstream/backoff.ts";
import type { Cluster, PendingWaiter } from "../../upstream/cluster.ts";
import { UpstreamConnectError } from "../../upstream/connect.ts";
import type { Host } from "../../upstream/host.ts";
import type { HostWaiter } from "../../upstream/host-wait.ts";
import {
  UpstreamProtocolError,
  type ExchangeHandler,
  type ResponseHead,
  type UpstreamConnection,
} from "../../upstream/pool.ts";
import type { CacheRequest, DecisionCache } from "./decision-cache.ts";
import { requestHash } from "./hash-policy.ts";
import { localDispatchError } from "./local-error.ts";
import { retainable } from "../../read-buffer.ts";
import { timerDelay } from "../../timers.ts";
import { Deadline } from "../../deadlines.ts";
import { retryOnFailure, retryOnStatus, type AttemptFailure } from "./retry.ts";
import type { CompiledRoute } from "./route-table.ts";
import type { HttpStats } from "./stats.ts";

/**
 * Hop-by-hop headers (connection, keep-alive, proxy-connection, transfer-encoding, te, upgrade,
 * trailer, expect, http2-settings), by lower-case name. Compared by length first: no string hash
 * per header, as a Set lookup of a fresh string would compute.
 */
export function isHopByHop(lower: string): boolean {
  switch (lower.length) {
    case 2:
      return lower === "te";
    case 6:
      return lower === "expect";
    case 7:
      return lower === "upgrade" || lower === "trailer";
    case 10:
      return lower === "connection" || lower === "keep-alive";
    case 14:
      return lower === "http2-settings";
    case 16:
      return lower === "proxy-connection";
    case 17:
      return lower === "transfer-encoding";
    default:
      return false;
  }
}

/** 1 at the lengths of content-length, x-forwarded-proto and the hop-by-hop names (isHopByHop). */
const SPECIAL_LENGTHS = ((): Uint8Array => {
  const table = new Uint8Array(32);
  for (const n of [2, 6, 7, 10, 14, 16, 17]) table[n] = 1;
  return table;
})();

export interface ProxyEnv {
  readonly stats: HttpStats;
  readonly random: RandomSource;
  readonly bufferLimit: number;
  readonly draining: () => boolean;
}

/** What the request's raw headers say about its body, found while copying them. */
interface BodyFacts {
  contentLength: string | undefined;
  chunked: boolean;
}

/**
 * The request headers to send upstream (hop-by-hop ones and Content-Length dropped: the pool frames
 * the body itself), without building req.headers.
 * X-Forwarded-Proto goes once, as from Envoy with use_remote_address false: the downstream's value
 * when it sent one (repeats joined with ","), else the listener's scheme (plain HTTP here).
 */
function requestHeaders(raw: readonly string[], body: BodyFacts): string[] {
  const out: string[] = [];
  let forwardedProto: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? "";
    const value = raw[i + 1] ?? "";
    // Only a name as long as one acted on below is lower-cased (most are not: no string made).
    const lower = SPECIAL_LENGTHS[name.length] === 1 ? name.toLowerCase() : "";
    if (lower === "") {
      out.push(name, value);
      continue;
    }
    if (lower === "content-length") {
      body.contentLength ??= value;
      continue;
    } else if (lower === "x-forwarded-proto") {
      forwardedProto = forwardedProto === undefined ? value : `${forwardedProto},${value}`;
      continue;
    } else if (isHopByHop(lower)) {
      if (lower === "transfer-encoding") body.chunked = true;
      continue;
    }
    out.push(name, value);
  }
  out.push("x-forwarded-proto", forwardedProto ?? "http");
  return out;
}

/** The headers of an interim response for Node's writeEarlyHints, from its relayed (not hop-by-hop) ones. */
function interimHints(relayed: readonly string[]): Record<string, string | string[]> {
  // No prototype: a header named "constructor" or "__proto__" is a header like any other.
  const out = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i < relayed.length; i += 2) {
    const k = relayed[i] ?? "";
    const v = relayed[i + 1] ?? "";
    const seen = out[k];
    out[k] = seen === undefined ? v : Array.isArray(seen) ? [...seen, v] : [seen, v];
  }
  return out;
}

/** One try; its deadline is the per-try timeout. */
class ProxyAttempt extends Deadline implements ExchangeHandler {
  readonly stream: ProxyStream;
  readonly host: Host;
  conn: UpstreamConnection | undefined;
  started = false;
  abandoned = false;
  finished = false;
  status = 0;
  /** The per-try timeout was started (it starts once per attempt). */
  perTryStarted = false;

  constructor(stream: ProxyStream, host: Host) {
    super();
    this.stream = stream;
    this.host = host;
  }

  onRequestStart(conn: UpstreamConnection): boolean {
    // Abandoned while queued, nothing sent yet: withdrawn, and the connection stays usable.
    if (this.abandoned) return false;
    this.conn = conn;
    this.started = true;
    return true;
  }

  onResponseStart(
    _conn: UpstreamConnection,
    status: number,
    head: ResponseHead,
    contentLength: number,
  ): void {
    if (this.abandoned) return;
    // A throw here is ours (relaying to the client), not the upstream's: it must not be reported as
    // a failed exchange, or the host would take the blame.
    try {
      this.stream.onResponseStart(this, status, head, contentLength);
    } catch (err) {
      this.stream.onRelayError(this, err);
    }
  }

  onResponseData(conn: UpstreamConnection, chunk: Buffer): void {
    if (this.abandoned) return;
    try {
      this.stream.onResponseData(this, conn, chunk);
    } catch (err) {
      this.stream.onRelayError(this, err);
    }
  }

  onResponseEnd(): void {
    if (this.abandoned) return;
    this.stream.onAttemptEnd(this);
  }

  onResponseError(_conn: UpstreamConnection | undefined, err: Error): void {
    if (this.abandoned) return;
    this.stream.onAttemptError(this, err);
  }

  /** Stop caring about this attempt (timeout, retry on status, client gone). */
  abandon(): void {
    this.abandoned = true;
    this.cancelDeadline();
    this.conn?.abort(this);
  }

  override onDeadline(): void {
    this.stream.onPerTryTimeout(this);
  }
}

function backoffFired(stream: ProxyStream): void {
  stream.onBackoffDone();
}

// A streamed request body rides on its request, so one shared "end" listener serves every request.
const STREAM = Symbol("tether.proxyStream");
type StreamRequest = IncomingMessage & { [STREAM]?: ProxyStream };

function downstreamEnded(this: StreamRequest): void {
  this[STREAM]?.onRequestComplete();
}

/** One downstream request; its deadline is the route timeout. */
export class ProxyStream extends Deadline implements PendingWaiter, HostWaiter, ResponseObserver {
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly route: CompiledRoute;
  private readonly cluster: Cluster;
  private readonly env: ProxyEnv;
  private readonly startedAt = performance.now();
  private readonly headers: string[];
  private readonly path: string;
  private triedHosts: Host[] | undefined;
  private readonly hash: number | undefined;
  private readonly setCookie: string | undefined;
  // DecisionCache capture (only when the filter is configured and the request is cacheable).
  private cache: DecisionCache | undefined;
  private cacheRequest: CacheRequest | undefined;
  private captured: Buffer[] | undefined;
  private capturedBytes = 0;
  private capturedHeaders: string[] = [];
  private body: Buffer | IncomingMessage | null = null;
  private attempt: ProxyAttempt | undefined;
  private retries = 0;
  private backoff: JitteredBackoff | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private state: "idle" | "pending" | "backoff" | "attempt" | "done" = "idle";
  /** Envoy's response flags (envoy/src/response-flags.ts), read by the access log when it is on. */
  responseFlagBits = 0;
  private attemptCount = 0;
  private responseStarted = false;
  /** The downstream request has ended (headers only, or its body's last byte arrived). */
  private requestComplete = false;
  /** The last attempt failed on a malformed response (Envoy's reset reason "protocol error"). */
  private protocolError = false;
  /** A 1xx went to the client: as in Envoy, no retry after that. */
  private interimSent = false;
  private readonly bodyFacts: BodyFacts = { contentLength: undefined, chunked: false };
  /** Response body bytes still expected (from content-length), or -1 when unknown. */
  private responseRemaining = -1;
  /** The response's last chunk, held so it goes out with res.end() in one write. */
  private lastChunk: Buffer | undefined;

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    route: CompiledRoute,
    cluster: Cluster,
    env: ProxyEnv,
  ) {
    super();
    this.req = req;
    this.res = res;
    this.route = route;
    this.cluster = cluster;
    this.env = env;
    this.headers = requestHeaders(req.rawHeaders, this.bodyFacts);
    const url = req.url;
    this.path = route.rewrite === undefined ? url : route.rewrite(url);
    if (route.hashPolicy.length > 0) {
      const h = requestHash(route.hashPolicy, req);
      this.hash = h.hash;
      this.setCookie = h.setCookie;
    }
  }

  /** Store a successful response in `cache` for `request` when it completes. */
  captureFor(cache: DecisionCache, request: CacheRequest): void {
    this.cache = cache;
    this.cacheRequest = request;
  }

  start(): void {
    this.res.stream = this;
    const body = this.bodyFacts;
    if (body.contentLength === undefined ? !body.chunked : body.contentLength === "0") {
      this.req.resume();
      // Complete with its head, in the same turn the stream began: the clock read then serves.
      this.onRequestComplete(this.startedAt);
      this.dispatch();
      return;
    }
    const length = Number(body.contentLength ?? NaN);
    if (this.route.retry !== undefined && length <= this.env.bufferLimit) {
      // Buffer small bodies so a retry can resend them; larger or chunked bodies stream once.
      const chunks: Buffer[] = [];
      this.req.on("data", (c: Buffer) => chunks.push(c));
      this.req.once("end", () => {
        this.body = chunks.length === 1 ? (chunks[0] ?? null) : Buffer.concat(chunks);
        this.onRequestComplete();
        if (this.state === "idle") this.dispatch();
      });
      return;
    }
    (this.req as StreamRequest)[STREAM] = this;
    this.req.once("end", downstreamEnded);
    this.body = this.req;
    this.dispatch();
  }

  /**
   * The downstream request is complete. Envoy's route timeout (and a per-try timeout) counts from
   * here, not from the headers, so a slow upload is not cut off while it is still arriving.
   */
  onRequestComplete(now: number = performance.now()): void {
    this.requestComplete = true;
    if (this.state === "done") return;
    if (this.route.timeoutMs > 0) this.startDeadline(this.route.timeoutMs, now);
    const attempt = this.attempt;
    if (this.state === "attempt" && attempt !== undefined && !this.responseStarted)
      this.startPerTryTimer(attempt);
  }

  private startPerTryTimer(attempt: ProxyAttempt): void {
    const perTry = this.route.retry?.perTryTimeoutMs ?? 0;
    if (perTry > 0 && !attempt.perTryStarted && !attempt.finished) {
      attempt.perTryStarted = true;
      attempt.startDeadline(perTry);
    }
  }

  private dispatch(): void {
    if (!this.cluster.tryAcquireRequest()) {
      if (!this.cluster.enqueuePending(this)) {
        this.env.stats.rq_overflow++;
        this.responseFlagBits |= RESPONSE_FLAGS.UO;
        this.localReply(
          503,
          "upstream connect error or disconnect/reset before headers. reset reason: overflow",
          true,
        );
        return;
      }
      this.state = "pending";
      this.cluster.stats.held_requests++;
      return;
    }
    this.send();
  }

  /** The downstream response closed (sent, or the client went away). */
  onResponseClose(): void {
    if (this.state === "done") return;
    this.abort();
    this.responseFlagBits |= RESPONSE_FLAGS.DC;
    this.finish(499);
  }

  onRequestSlot(): void {
    this.cluster.stats.held_requests--;
    if (this.state !== "pending") {
      this.cluster.releaseRequest();
      return;
    }
    this.send();
  }

  /** Holds a request slot: pick a host and hand the request to its pool. */
  private send(): void {
    const retry = this.route.retry;
    const avoid = retry?.avoidPreviousHosts === true ? this.triedHosts : undefined;
    // A retry never goes back to the host it just failed on while the cluster offers another.
    const host = this.cluster.chooseHost(
      avoid,
      retry?.hostSelectionMaxAttempts ?? 0,
      this.hash,
      this.attempt?.host,
    );
    if (host === undefined) {
      this.cluster.releaseRequest();
      this.responseFlagBits |= RESPONSE_FLAGS.UH;
      // No host at all (an EDS cluster whose every endpoint went away while its servers restart):
      // held like a request every host refuses — retried after a back-off, woken as soon as a host
      // appears — instead of failed at once. Nothing was sent, so any retry policy may resend it.
      if (retry !== undefined && retryOnFailure(retry.bits, "connect_failure") && this.scheduleRetry())
        return;
      this.localReply(503, "no healthy upstream", false);
      return;
    }
    if (retry?.avoidPreviousHosts === true) (this.triedHosts ??= []).push(host);
    this.state = "attempt";
    this.attemptCount++;
    const attempt = new ProxyAttempt(this, host);
    this.attempt = attempt;
    host.stats.rq_active++;
    host.stats.rq_total++;
    this.cluster.stats.counters.upstream_rq_total++;
    if (this.requestComplete) this.startPerTryTimer(attempt);
    const declared = this.bodyFacts.contentLength;
    this.cluster.poolFor(host).dispatch(
      {
        path: this.path,
        method: this.req.method,
        headers: this.headers,
        // Every header came from the request parser as the client sent them, but X-Forwarded-Proto:
        // its name is ours and its value is the listener's scheme or the client's values joined by ",".
        checkedHeaders: this.headers.length,
        // A rewritten path is the route's: checked when sent.
        checkedTarget: this.route.rewrite === undefined,
        body: this.body,
        contentLength: declared === undefined ? undefined : Number(declared),
      },
      attempt,
    );
  }

  /** Ends the attempt's hold on host and breaker. */
  private endAttempt(attempt: ProxyAttempt): void {
    if (attempt.finished) return;
    attempt.finished = true;
    attempt.cancelDeadline();
    attempt.host.stats.rq_active--;
    this.cluster.releaseRequest();
  }

  onResponseStart(attempt: ProxyAttempt, status: number, head: ResponseHead, contentLength: number): void {
    if (status < 200) {
      this.forwardInterim(status, head);
      return;
    }
    attempt.status = status;
    const retry = this.route.retry;
    if (retry !== undefined && retryOnStatus(retry.bits, status, retry.retriableStatusCodes)) {
      this.cluster.recordStatus(attempt.host, status);
      if (this.scheduleRetry()) {
        attempt.abandon();
        this.endAttempt(attempt);
        return;
      }
    }
    attempt.cancelDeadline();
    this.responseStarted = true;
    const res = this.res;
    if (this.env.draining()) res.shouldKeepAlive = false;
    this.responseRemaining = contentLength;
    // Judged and stored as the upstream sent it (hop-by-hop headers left out): the cookie our hash
    // policy adds routes this client only, and is never replayed from the cache.
    // Only a response framed by its length or chunks: one cut short by a close looks complete.
    const relayed =
      this.cache === undefined || attempt.conn?.closeDelimited === true ? undefined : head.relayedList();
    if (relayed !== undefined && this.cache?.cacheable(status, relayed) === true) {
      this.captured = [];
      this.capturedHeaders = relayed;
    } else this.stopCapture();
    res.writeRelayedHead(status, head, this.setCookie);
  }

  /** This answer will not be stored: it still replaces the entry it would have (the cache forgets it). */
  private stopCapture(): void {
    this.captured = undefined;
    if (this.cacheRequest !== undefined) this.cache?.forget(this.cacheRequest.key);
  }

  onResponseData(attempt: ProxyAttempt, conn: UpstreamConnection, chunk: Buffer): void {
    if (this.captured !== undefined) {
      this.capturedBytes += chunk.length;
      if (this.cache !== undefined && this.capturedBytes <= this.cache.config.max_body_bytes)
        this.captured.push(retainable(chunk));
      else this.stopCapture();
    }
    if (this.responseRemaining === chunk.length && this.lastChunk === undefined) {
      // The body's last bytes: they leave with res.end(), headers and body in one write. Held as
      // handed over (a view of the read buffer, maybe): the parser ends the response in the same
      // read, and the end copies what it keeps.
      this.responseRemaining = 0;
      this.lastChunk = chunk;
      return;
    }
    if (this.responseRemaining > 0) this.responseRemaining -= chunk.length;
    if (!this.res.write(chunk)) {
      conn.pause();
      // Resumes this attempt's exchange only: the connection may carry another by the time the
      // client drains (the response completed in the read it was paused in).
      this.res.once("drain", () => {
        conn.resumeFor(attempt);
      });
    }
  }

  /**
   * An interim (1xx) response: never the answer and never held against the host. As Envoy does, 102
   * and 103 go on to the client and the others are dropped (the pool drops 100 itself, see
   * upstream/http1/connection.ts; the client's own Expect: 100-continue is answered by the listener).
   */
  private forwardInterim(status: number, head: ResponseHead): void {
    const res = this.res;
    if ((status !== 102 && status !== 103) || res.headersSent || res.destroyed) return;
    // An HTTP/1.0 client would read a 1xx as the answer (RFC 9110 §15.2: never sent to one).
    if (this.req.httpVersion === "1.0") return;
    if (status === 102) res.writeProcessing();
    else {
      const hints = interimHints(head.relayedList());
      // Node writes a 103 only with a Link it accepts; hints are optional, so drop any other.
      if (hints["link"] === undefined) return;
      try {
        res.writeEarlyHints(hints);
      } catch {
        return;
      }
    }
    this.interimSent = true;
  }

  onAttemptEnd(attempt: ProxyAttempt): void {
    // The client's answer goes out first: the bookkeeping after it (a request slot freed may wake a
    // pending request, which would write upstream before this one's response) is off its path.
    const last = this.lastChunk;
    this.lastChunk = undefined;
    try {
      if (last === undefined) this.res.end();
      else this.res.end(last);
    } finally {
      this.endAttempt(attempt);
      this.cluster.recordStatus(attempt.host, attempt.status);
      attempt.host.stats.rq_success++;
      this.storeCaptured(attempt);
      this.finish(attempt.status);
    }
  }

  /** A response captured for the decision cache goes into it, now that it is complete. */
  private storeCaptured(attempt: ProxyAttempt): void {
    const request = this.cacheRequest;
    if (this.captured !== undefined && this.cache !== undefined && request !== undefined) {
      const body =
        this.captured.length === 1 ? (this.captured[0] ?? Buffer.alloc(0)) : Buffer.concat(this.captured);
      const { key, session, generation } = request;
      this.cache.store(
        key,
        attempt.status,
        this.capturedHeaders,
        body,
        session,
        this.req.rawHeaders,
        generation,
      );
      this.captured = undefined;
    }
  }

  onAttemptError(attempt: ProxyAttempt, err: Error): void {
    this.endAttempt(attempt);
    if (this.downstreamBodyBroken()) {
      this.onDownstreamBodyBroken();
      return;
    }
    const local = attempt.started ? undefined : localDispatchError(err, this.route.rewrite !== undefined);
    if (local !== undefined) {
      // Refused before anything was sent: no host saw it, and a retry would be refused the same way.
      this.localReply(local.status, local.text, false);
      return;
    }
    attempt.host.stats.rq_error++;
    const c = this.cluster.stats.counters;
    let failure: AttemptFailure;
    if (err instanceof UpstreamConnectError) {
      failure = "connect_failure";
      this.responseFlagBits |= RESPONSE_FLAGS.UF;
      this.cluster.recordLocalFailure(attempt.host, "connect_failed");
    } else {
      failure = attempt.started ? "reset_after_request" : "reset_before_request";
      this.protocolError = err instanceof UpstreamProtocolError;
      this.responseFlagBits |= RESPONSE_FLAGS.UC;
      c.upstream_rq_rx_reset++;
      this.cluster.recordLocalFailure(attempt.host, "reset");
    }
    if (this.responseStarted) {
      // Headers already went out: all we can do is cut the downstream stream too.
      this.res.destroy();
      this.finish(502);
      return;
    }
    this.failOrRetry(failure);
  }

  /**
   * The streamed request body broke off before its end (a malformed chunk the listener answered with
   * 400, or the client went away): the pool closed the upstream connection that carried part of it, as
   * it must, and the host is not to blame. The downstream connection is already closing (Node
   * destroys the request only when its socket ends), so nothing more is written to it.
   */
  private downstreamBodyBroken(): boolean {
    return this.body === this.req && this.req.destroyed && !this.req.complete;
  }

  private onDownstreamBodyBroken(): void {
    // The listener answered a malformed body with 400 and ended the socket; otherwise the client left.
    this.finish(this.req.socket.writableEnded ? 400 : 499);
  }

  /** Relaying the upstream's response to the client threw: our failure, not the host's. */
  onRelayError(attempt: ProxyAttempt, err: unknown): void {
    if (attempt.abandoned || this.state === "done") return;
    attempt.abandon();
    this.endAttempt(attempt);
    if (this.responseStarted) {
      this.res.destroy();
      this.finish(502);
      return;
    }
    this.localReply(502, `upstream response could not be relayed: ${(err as Error).message}`, false);
  }

  onPerTryTimeout(attempt: ProxyAttempt): void {
    if (this.state !== "attempt" || this.attempt !== attempt || this.responseStarted) return;
    this.cluster.stats.counters.upstream_rq_per_try_timeout++;
    attempt.host.stats.rq_timeout++;
    this.cluster.recordLocalFailure(attempt.host, "timeout");
    attempt.abandon();
    this.endAttempt(attempt);
    this.failOrRetry("per_try_timeout");
  }

  private failOrRetry(failure: AttemptFailure): void {
    const retry = this.route.retry;
    const bodyReplayable = !(
      this.body !== null &&
      !Buffer.isBuffer(this.body) &&
      failure !== "connect_failure"
    );
    if (retry !== undefined && bodyReplayable && retryOnFailure(retry.bits, failure) && this.scheduleRetry())
      return;
    if (failure === "per_try_timeout") {
      this.responseFlagBits |= RESPONSE_FLAGS.UT;
      this.localReply(504, "upstream request timeout", false);
      return;
    }
    const reason =
      failure === "connect_failure"
        ? "connection failure"
        : this.protocolError
          ? "protocol error"
          : "connection termination";
    this.localReply(
      503,
      `upstream connect error or disconnect/reset before headers. reset reason: ${reason}`,
      false,
    );
  }

  /** True when a retry was scheduled (attempts left and the retry breaker/budget allows it). */
  private scheduleRetry(): boolean {
    const retry = this.route.retry;
    if (retry === undefined || this.interimSent) return false;
    const c = this.cluster.stats.counters;
    if (this.retries >= retry.numRetries) {
      c.upstream_rq_retry_limit_exceeded++;
      this.responseFlagBits |= RESPONSE_FLAGS.URX;
      return false;
    }
    if (!this.cluster.tryAcquireRetry()) return false;
    this.retries++;
    c.upstream_rq_retry++;
    c.upstream_rq_retry_backoff_exponential++;
    this.backoff ??= new JitteredBackoff(retry.backoffBaseMs, retry.backoffMaxMs, this.env.random);
    this.state = "backoff";
    this.cluster.stats.held_requests++;
    this.backoffTimer = setTimeout(backoffFired, timerDelay(this.backoff.next()), this);
    this.cluster.waitForHost(this);
    return true;
  }

  /** The cluster may have a host now (one came back, or a connect succeeded): retry without sleeping on. */
  onHostAvailable(): void {
    if (this.state !== "backoff") return;
    clearTimeout(this.backoffTimer);
    this.onBackoffDone();
  }

  onBackoffDone(): void {
    this.backoffTimer = undefined;
    this.cluster.stopWaiting(this);
    this.cluster.stats.held_requests--;
    this.cluster.releaseRetry();
    if (this.state !== "backoff") return;
    this.state = "idle";
    this.dispatch();
  }

  override onDeadline(): void {
    this.onRouteTimeout();
  }

  onRouteTimeout(): void {
    if (this.state === "done") return;
    this.cluster.stats.counters.upstream_rq_timeout++;
    this.env.stats.downstream_rq_timeout++;
    this.responseFlagBits |= RESPONSE_FLAGS.UT;
    this.abort();
    if (this.responseStarted) {
      this.res.destroy();
      this.finish(504);
    } else {
      this.localReply(504, "upstream request timeout", false);
    }
  }

  /**
   * The connection manager timed the stream out (stream_idle_timeout, request_timeout): 408 with
   * `text`, or the response cut when it has started, as Envoy does.
   */
  onDownstreamTimeout(text: string): void {
    if (this.state === "done") return;
    this.responseFlagBits |= RESPONSE_FLAGS.SI;
    this.abort();
    if (this.responseStarted) {
      this.res.destroy();
      this.finish(408);
    } else {
      this.localReply(408, text, false);
    }
  }

  /** Cancels whatever is in progress (attempt, pending slot, back-off); the caller replies. */
  private abort(): void {
    const state = this.state;
    if (state === "attempt" && this.attempt !== undefined) {
      this.attempt.abandon();
      this.endAttempt(this.attempt);
    } else if (state === "pending") {
      this.cluster.cancelPending(this);
      this.cluster.stats.held_requests--;
    } else if (state === "backoff") {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = undefined;
      this.cluster.stopWaiting(this);
      this.cluster.stats.held_requests--;
      this.cluster.releaseRetry();
    }
    if (state !== "done") this.state = "idle";
  }

  private localReply(status: number, text: string, overloaded: boolean): void {
    const res = this.res;
    if (!res.headersSent && !res.destroyed) {
      const headers: Record<string, string | number> = {
        "content-type": "text/plain",
        "content-length": Buffer.byteLength(text),
      };
      if (overloaded) headers["x-envoy-overloaded"] = "true";
      if (this.env.draining()) res.shouldKeepAlive = false;
      res.writeHead(status, headers);
      res.end(text);
    }
    this.finish(status);
  }

  /** The host that served the request, or the last one tried ("ip:port"). */
  get upstreamHost(): string | undefined {
    return this.attempt?.host.key;
  }

  get upstreamCluster(): string {
    return this.cluster.name;
  }

  get upstreamAttempts(): number {
    return this.attemptCount;
  }

  private finish(status: number): void {
    if (this.state === "done") return;
    this.state = "done";
    this.cancelDeadline();
    clearTimeout(this.backoffTimer);
    this.cluster.stopWaiting(this);
    const ms = performance.now() - this.startedAt;
    const stats = this.env.stats;
    stats.downstream_rq_active--;
    stats.countStatus(status);
    stats.downstream_rq_time.observe(ms);
    const cs = this.cluster.stats;
    cs.counters.upstream_rq_completed++;
    cs.countStatus(status);
    cs.rqTime.observe(ms);
    if (this.retries > 0 && status < 500) cs.counters.upstream_rq_retry_success++;
  }
}
