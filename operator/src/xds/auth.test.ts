// The review and pod caches of XdsAuthenticator, with a clock: a review is reused for at most its TTL
// and never past the token's exp; concurrent streams with one token share one review; an API error is
// UNAVAILABLE (retryable), not a verdict on the token. The API server side is in test/xds-auth.test.ts.
import { describe, expect, it } from "vitest";
import type { IdentityApi, PodIdentity, TokenReviewResult } from "../kube/identity.ts";
import { parseXdsGroup, tokenExpiry, XdsAuthenticator } from "./auth.ts";

const POD: PodIdentity = {
  namespace: "ns",
  name: "web-0",
  uid: "uid-1",
  labels: {
    "app.kubernetes.io/name": "tether",
    "app.kubernetes.io/instance": "web",
    "app.kubernetes.io/component": "agent",
  },
};

/** An unsigned JWT with `exp` (seconds): the authenticator reads exp only after a review. */
function jwt(exp: number): string {
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "ES256" })}.${part({ exp })}.sig`;
}

function api(result: () => Promise<TokenReviewResult>): IdentityApi & { reviews: number; pods: number } {
  const counts = { reviews: 0, pods: 0 };
  return Object.assign(counts, {
    reviewToken: (): Promise<TokenReviewResult> => {
      counts.reviews++;
      return result();
    },
    getPod: (): Promise<PodIdentity | undefined> => {
      counts.pods++;
      return Promise.resolve(POD);
    },
  });
}

const OK: TokenReviewResult = {
  authenticated: true,
  username: "system:serviceaccount:ns:app",
  namespace: "ns",
  pod: { name: "web-0", uid: "uid-1" },
};

const credentials = (token: string): Parameters<XdsAuthenticator["authorize"]>[0] => ({
  authorization: `Bearer ${token}`,
  node: { id: "ns/web-0", cluster: "ns/agent/web" },
  peer: "test",
});

describe("XdsAuthenticator caches", () => {
  it("reuses a review for its TTL, and never past the token's exp", async () => {
    let now = 1_000_000;
    const identity = api(() => Promise.resolve(OK));
    const auth = new XdsAuthenticator({
      api: identity,
      now: () => now,
      reviewTtlMs: 60_000,
      podTtlMs: 1_000,
    });
    const longLived = jwt(now / 1000 + 3600);
    const expiring = jwt(now / 1000 + 10); // expires in 10 s, before the 60 s TTL
    expect(await auth.authorize(credentials(longLived))).toEqual({ allowed: true });
    expect(await auth.authorize(credentials(expiring))).toEqual({ allowed: true });
    expect(identity.reviews).toBe(2);
    now += 9_999;
    await auth.authorize(credentials(longLived));
    await auth.authorize(credentials(expiring));
    expect(identity.reviews).toBe(2);
    expect(identity.pods).toBe(2); // the pod TTL (1 s) ran out in between
    now += 1; // the expiring token's exp
    await auth.authorize(credentials(expiring));
    expect(identity.reviews).toBe(3);
    now += 50_000; // past the TTL of the long-lived one
    await auth.authorize(credentials(longLived));
    expect(identity.reviews).toBe(4);
  });

  it("shares one review between streams presenting one token at once, and is bounded", async () => {
    let release: (r: TokenReviewResult) => void = () => undefined;
    const identity = api(() => new Promise((resolve) => (release = resolve)));
    const auth = new XdsAuthenticator({ api: identity, maxEntries: 2 });
    const token = jwt(Date.now() / 1000 + 600);
    const both = Promise.all([auth.authorize(credentials(token)), auth.authorize(credentials(token))]);
    await Promise.resolve();
    release(OK);
    expect(await both).toEqual([{ allowed: true }, { allowed: true }]);
    expect(identity.reviews).toBe(1);
    const full = new XdsAuthenticator({ api: api(() => Promise.resolve(OK)), maxEntries: 2 });
    for (let i = 0; i < 5; i++) await full.authorize(credentials(jwt(Date.now() / 1000 + 600 + i)));
    expect(full.cacheSizes().reviews).toBe(2);
  });

  it("answers UNAVAILABLE when the API server cannot be asked, and caches no failure", async () => {
    let fail = true;
    const identity = api(() =>
      fail ? Promise.reject(new Error("connect ECONNREFUSED")) : Promise.resolve(OK),
    );
    const refused: string[] = [];
    const auth = new XdsAuthenticator({ api: identity, onRefused: (r) => refused.push(r) });
    const token = jwt(Date.now() / 1000 + 600);
    expect(await auth.authorize(credentials(token))).toEqual({
      allowed: false,
      code: "UNAVAILABLE",
      reason: "review_failed",
      message: "cannot review the token now: connect ECONNREFUSED",
    });
    fail = false;
    expect(await auth.authorize(credentials(token))).toEqual({ allowed: true });
    expect(refused).toEqual(["review_failed"]);
  });
});

describe("parseXdsGroup / tokenExpiry", () => {
  it("reads <ns>/<kind>/<name> and a JWT's exp", () => {
    expect(parseXdsGroup("ns/broker/b")).toEqual({ namespace: "ns", kind: "broker", name: "b" });
    expect(parseXdsGroup("ns/pod/b")).toBeUndefined();
    expect(parseXdsGroup("ns/agent/b/c")).toBeUndefined();
    expect(tokenExpiry(jwt(1234))).toBe(1_234_000);
    expect(tokenExpiry("not-a-jwt")).toBeUndefined();
  });
});

describe("XdsAuthenticator owners", () => {
  // A pod of an existing workload adopted by the sidecar-injection webhook: not the Agent's labels,
  // the Agent named in its annotation.
  const adopted = (agent: string): PodIdentity => ({
    ...POD,
    labels: { app: "legacy-web" },
    annotations: { "tether.dev/agent": agent },
  });
  const withPod = (pod: PodIdentity): IdentityApi => ({
    reviewToken: () => Promise.resolve(OK),
    getPod: () => Promise.resolve(pod),
  });

  it("serves an adopted pod its annotation's Agent, and no other", async () => {
    const token = jwt(Date.now() / 1000 + 3600);
    const web = new XdsAuthenticator({ api: withPod(adopted("web")) });
    expect(await web.authorize(credentials(token))).toEqual({ allowed: true });
    const api2 = new XdsAuthenticator({ api: withPod(adopted("api")) });
    expect(await api2.authorize(credentials(token))).toMatchObject({
      allowed: false,
      code: "PERMISSION_DENIED",
      reason: "wrong_owner",
    });
    // Without the annotation, foreign labels are refused as before.
    const plain = new XdsAuthenticator({ api: withPod({ ...POD, labels: { app: "legacy-web" } }) });
    expect(await plain.authorize(credentials(token))).toMatchObject({
      allowed: false,
      reason: "wrong_owner",
    });
  });
});

describe("XdsAuthenticator's bound on concurrent reviews", () => {
  /** An identity source whose answers wait until the test releases them, counting calls in flight. */
  function slowApi(): IdentityApi & { inFlight: number; peak: number; releaseAll: () => void } {
    const held: (() => void)[] = [];
    const state = { inFlight: 0, peak: 0 };
    const hold = async <T>(value: T): Promise<T> => {
      state.inFlight++;
      state.peak = Math.max(state.peak, state.inFlight);
      await new Promise<void>((resolve) => held.push(resolve));
      state.inFlight--;
      return value;
    };
    return Object.assign(state, {
      reviewToken: (token: string): Promise<TokenReviewResult> => {
        const n = token.split(".")[1] ?? "";
        return hold({ ...OK, pod: { name: `web-${n}`, uid: `uid-${n}` } });
      },
      getPod: (_ns: string, name: string): Promise<PodIdentity | undefined> =>
        hold({ ...POD, name, uid: `uid-${name.slice("web-".length)}` }),
      releaseAll: (): void => {
        for (const release of held.splice(0)) release();
      },
    });
  }

  const streamOf = (n: number): Parameters<XdsAuthenticator["authorize"]>[0] => ({
    authorization: `Bearer head.${n}.sig`,
    node: { id: `ns/web-${n}`, cluster: "ns/agent/web" },
    peer: "test",
  });

  it("runs at most N TokenReviews and pod GETs at once; the rest wait their turn and are served", async () => {
    const identity = slowApi();
    const gauge: number[] = [];
    const auth = new XdsAuthenticator({
      api: identity,
      maxConcurrentReviews: 4,
      reviewQueueTimeoutMs: 60_000,
      onReviewsInFlight: (n) => gauge.push(n),
    });
    // 20 sidecars with 20 different tokens reconnect at once (empty caches).
    const results = Array.from({ length: 20 }, (_, n) => auth.authorize(streamOf(n)));
    const progress = { settled: false };
    void Promise.all(results).then(() => (progress.settled = true));
    // Release whatever is held until every stream has its answer, checking the bound each round.
    for (let round = 0; round < 200 && !progress.settled; round++) {
      await new Promise((resolve) => setImmediate(resolve));
      expect(identity.inFlight).toBeLessThanOrEqual(4);
      identity.releaseAll();
    }
    expect(await Promise.all(results)).toEqual(Array.from({ length: 20 }, () => ({ allowed: true })));
    expect(identity.peak).toBe(4);
    expect(Math.max(...gauge)).toBe(4);
    expect(gauge.at(-1)).toBe(0);
    expect(auth.reviewLoad()).toEqual({ inFlight: 0, waiting: 0 });
  });

  it("refuses a stream that waits past the deadline with UNAVAILABLE and counts it", async () => {
    const identity = slowApi();
    const refused: string[] = [];
    const auth = new XdsAuthenticator({
      api: identity,
      maxConcurrentReviews: 2,
      reviewQueueTimeoutMs: 50,
      onRefused: (reason) => refused.push(reason),
    });
    const first = [auth.authorize(streamOf(1)), auth.authorize(streamOf(2))];
    const late = await auth.authorize(streamOf(3)); // both slots held: waits 50 ms, then gives up
    expect(late).toMatchObject({ allowed: false, code: "UNAVAILABLE", reason: "review_busy" });
    expect((late as { message: string }).message).toMatch(
      /2 identity reviews already in flight; waited 50 ms/,
    );
    expect(refused).toEqual(["review_busy"]);
    expect(identity.peak).toBe(2);
    // Nothing about the token is remembered: once the slots free, the same stream is served.
    for (let round = 0; round < 20 && identity.inFlight > 0; round++) {
      identity.releaseAll();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await Promise.all(first)).toEqual([{ allowed: true }, { allowed: true }]);
    const retry = auth.authorize(streamOf(3));
    for (let round = 0; round < 20; round++) {
      identity.releaseAll();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await retry).toEqual({ allowed: true });
  });
});
