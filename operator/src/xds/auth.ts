/**
 * Which sidecar is on an ADS stream: its projected ServiceAccount token (audience `tether`) is
 * reviewed by the API server (TokenReview), the pod the token is bound to is read, and the stream is
 * served only if that pod is one of the Agent's or Broker's its node.cluster names. Successful
 * reviews and pods are cached briefly, so a fleet reconnecting at once does not mean one TokenReview
 * per stream per second. See docs/xds-security.md.
 */
import { createHash } from "node:crypto";
import type { IdentityApi, PodIdentity, TokenReviewResult } from "../kube/identity.ts";
import { AGENT_ANNOTATION } from "../render/meta.ts";
import { selectorLabels, XDS_TOKEN_AUDIENCE, type XdsKind } from "../render/index.ts";
import { ReviewLimiter, ReviewQueueTimeout } from "./review-limit.ts";
import type { RefusalCode, StreamAuthorization, StreamCredentials } from "@tether/xds";

/** Values of tether_operator_xds_streams_refused_total's `reason` label. */
export const REFUSAL_REASONS = [
  "no_token",
  "invalid_token",
  "not_pod_bound",
  "bad_node",
  "wrong_namespace",
  "pod_mismatch",
  "wrong_owner",
  "review_failed",
  "review_busy",
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface XdsAuthenticatorOptions {
  readonly api: IdentityApi;
  /** Called once per refused stream (for the metric). */
  readonly onRefused?: (reason: RefusalReason) => void;
  readonly now?: () => number;
  /** How long a successful TokenReview is reused (never past the token's exp). Default 60 s. */
  readonly reviewTtlMs?: number;
  /** How long a pod read is reused. Default 30 s. */
  readonly podTtlMs?: number;
  /** Entries per cache; the oldest goes first. Default 10 000. */
  readonly maxEntries?: number;
  /** TokenReviews and pod GETs in flight at once; more wait. Default 16. */
  readonly maxConcurrentReviews?: number;
  /** How long a stream waits for a slot before it is refused (UNAVAILABLE). Default 10 s. */
  readonly reviewQueueTimeoutMs?: number;
  /** Called with the number of API calls in flight whenever it changes (for the gauge). */
  readonly onReviewsInFlight?: (inFlight: number) => void;
}

interface Reviewed {
  readonly namespace: string;
  readonly pod: { readonly name: string; readonly uid: string };
}

interface Cached<T> {
  readonly value: T;
  readonly expiresAt: number;
}

/** Why a stream is not served; thrown inside check(), turned into the answer by authorize(). */
class Refusal extends Error {
  readonly code: RefusalCode;
  readonly reason: RefusalReason;
  constructor(code: RefusalCode, reason: RefusalReason, message: string) {
    super(message);
    this.name = "Refusal";
    this.code = code;
    this.reason = reason;
  }
}

/** A bounded map whose entries expire; insertion order is age, so the oldest is evicted first. */
class ExpiringCache<T> {
  private readonly entries = new Map<string, Cached<T>>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }

  get(key: string, now: number): T | undefined {
    const hit = this.entries.get(key);
    if (hit === undefined) return undefined;
    if (hit.expiresAt > now) return hit.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: T, expiresAt: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt });
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The token's `exp` in ms, read without verifying (the review verified it); undefined if unreadable. */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** `<ns>/<kind>/<name>` back into its parts; undefined for anything else. */
export function parseXdsGroup(group: string): { namespace: string; kind: XdsKind; name: string } | undefined {
  const [namespace, kind, name, ...rest] = group.split("/");
  if (rest.length > 0 || namespace === undefined || namespace === "" || name === undefined || name === "")
    return undefined;
  if (kind !== "agent" && kind !== "broker") return undefined;
  return { namespace, kind, name };
}

function describeOwner(labels: Readonly<Record<string, string>>): string {
  const component = labels["app.kubernetes.io/component"];
  const instance = labels["app.kubernetes.io/instance"];
  return component === undefined || instance === undefined
    ? "no Agent or Broker"
    : `${component} ${instance}`;
}

/** Too many reviews under way for this stream to be checked in time: it retries with back-off. */
function busy(error: ReviewQueueTimeout): Refusal {
  return new Refusal("UNAVAILABLE", "review_busy", `the identity check is busy: ${error.message}; retry`);
}

export class XdsAuthenticator {
  private readonly options: XdsAuthenticatorOptions;
  private readonly now: () => number;
  private readonly reviews: ExpiringCache<Reviewed>;
  private readonly pods: ExpiringCache<PodIdentity>;
  /** Reviews under way, so streams presenting one token at once share one TokenReview. */
  private readonly inFlight = new Map<string, Promise<TokenReviewResult>>();
  private readonly limiter: ReviewLimiter;

  constructor(options: XdsAuthenticatorOptions) {
    this.options = options;
    this.limiter = new ReviewLimiter(
      options.maxConcurrentReviews ?? 16,
      options.reviewQueueTimeoutMs ?? 10_000,
      options.onReviewsInFlight,
    );
    this.now = options.now ?? Date.now;
    this.reviews = new ExpiringCache(options.maxEntries ?? 10_000);
    this.pods = new ExpiringCache(options.maxEntries ?? 10_000);
  }

  /** AdsServerOptions.authorize. */
  async authorize(credentials: StreamCredentials): Promise<StreamAuthorization> {
    try {
      await this.check(credentials);
      return { allowed: true };
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      this.options.onRefused?.(error.reason);
      return { allowed: false, code: error.code, reason: error.reason, message: error.message };
    }
  }

  /** API calls of the check in flight and streams waiting for one (for tests and debugging). */
  reviewLoad(): { inFlight: number; waiting: number } {
    return { inFlight: this.limiter.inFlight, waiting: this.limiter.waiting };
  }

  /** Cached reviews and pods now (for tests and debugging). */
  cacheSizes(): { reviews: number; pods: number } {
    return { reviews: this.reviews.size, pods: this.pods.size };
  }

  private async check(credentials: StreamCredentials): Promise<void> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(credentials.authorization ?? "");
    const token = match?.[1];
    if (token === undefined) {
      throw new Refusal(
        "UNAUTHENTICATED",
        "no_token",
        "no `authorization: Bearer <token>` metadata (the sidecar's projected ServiceAccount token, audience tether)",
      );
    }
    const group = parseXdsGroup(credentials.node.cluster);
    if (group === undefined) {
      throw new Refusal(
        "PERMISSION_DENIED",
        "bad_node",
        `node.cluster ${JSON.stringify(credentials.node.cluster)} is not <namespace>/agent|broker/<name>`,
      );
    }
    const identity = await this.review(token);
    if (identity.namespace !== group.namespace) {
      throw new Refusal(
        "PERMISSION_DENIED",
        "wrong_namespace",
        `the token is from namespace ${identity.namespace}; node.cluster ${credentials.node.cluster} is not in it`,
      );
    }
    const pod = await this.pod(identity);
    const podRef = `pod ${identity.namespace}/${identity.pod.name}`;
    if (pod === undefined || pod.uid !== identity.pod.uid || pod.namespace !== identity.namespace) {
      throw new Refusal(
        "PERMISSION_DENIED",
        "pod_mismatch",
        pod === undefined || pod.namespace !== identity.namespace
          ? `${podRef}, which the token is bound to, does not exist`
          : `${podRef} has uid ${pod.uid}, the token is bound to uid ${identity.pod.uid}`,
      );
    }
    const owner = { kind: "Agent" as const, namespace: group.namespace, name: group.name, uid: "" };
    const wanted = selectorLabels(owner, group.kind);
    // A pod of the Agent's own Deployment carries its labels; a pod of an adopted workload (the
    // sidecar-injection webhook) names the Agent in its annotation instead.
    const adopted = group.kind === "agent" && pod.annotations?.[AGENT_ANNOTATION] === group.name;
    if (!adopted && Object.entries(wanted).some(([k, v]) => pod.labels[k] !== v)) {
      throw new Refusal(
        "PERMISSION_DENIED",
        "wrong_owner",
        `${podRef} belongs to ${describeOwner(pod.labels)}, not ${group.kind} ${group.name}`,
      );
    }
    // node.id names the pod in ACK/NACK reports and status: it must be this one.
    const nodeId = `${identity.namespace}/${identity.pod.name}`;
    if (credentials.node.id !== nodeId) {
      throw new Refusal(
        "PERMISSION_DENIED",
        "bad_node",
        `node.id ${JSON.stringify(credentials.node.id)} is not ${podRef}'s (${nodeId})`,
      );
    }
  }

  private async review(token: string): Promise<Reviewed> {
    const key = createHash("sha256").update(token).digest("base64url");
    const now = this.now();
    const hit = this.reviews.get(key, now);
    if (hit !== undefined) return hit;
    let pending = this.inFlight.get(key);
    if (pending === undefined) {
      pending = this.limiter.run(() => this.options.api.reviewToken(token, [XDS_TOKEN_AUDIENCE]));
      this.inFlight.set(key, pending);
      const forget = (): void => {
        this.inFlight.delete(key);
      };
      pending.then(forget, forget);
    }
    let result: TokenReviewResult;
    try {
      result = await pending;
    } catch (error) {
      if (error instanceof ReviewQueueTimeout) throw busy(error);
      throw new Refusal(
        "UNAVAILABLE",
        "review_failed",
        `cannot review the token now: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    if (!result.authenticated) {
      throw new Refusal("UNAUTHENTICATED", "invalid_token", `the token was rejected: ${result.error}`);
    }
    if (result.pod === undefined || result.namespace === undefined) {
      throw new Refusal(
        "UNAUTHENTICATED",
        "not_pod_bound",
        `the token of ${result.username} is not a ServiceAccount token bound to a pod`,
      );
    }
    const reviewed: Reviewed = { namespace: result.namespace, pod: result.pod };
    const ttl = now + (this.options.reviewTtlMs ?? 60_000);
    const expiresAt = Math.min(ttl, tokenExpiry(token) ?? now);
    if (expiresAt > now) this.reviews.set(key, reviewed, expiresAt);
    return reviewed;
  }

  private async pod(identity: Reviewed): Promise<PodIdentity | undefined> {
    const now = this.now();
    const hit = this.pods.get(identity.pod.uid, now);
    if (hit !== undefined) return hit;
    let pod: PodIdentity | undefined;
    try {
      pod = await this.limiter.run(() => this.options.api.getPod(identity.namespace, identity.pod.name));
    } catch (error) {
      if (error instanceof ReviewQueueTimeout) throw busy(error);
      throw new Refusal(
        "UNAVAILABLE",
        "review_failed",
        `cannot read pod ${identity.namespace}/${identity.pod.name} now: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    // Only the pod the token names is cached (a replaced pod with the same name has a new uid).
    if (pod?.uid === identity.pod.uid) this.pods.set(pod.uid, pod, now + (this.options.podTtlMs ?? 30_000));
    return pod;
  }
}
