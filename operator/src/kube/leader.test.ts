import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { KubeTransport, RequestOptions } from "./client.ts";
import { KubeError } from "./errors.ts";
import { LeaderElector, microTime } from "./leader.ts";

/** One Lease in memory with optimistic concurrency, as the API server keeps it. */
class LeaseServer implements KubeTransport {
  lease: { metadata: Record<string, unknown>; spec: Record<string, unknown> } | undefined;
  rv = 0;

  request<T>(method: string, _path: string, options: RequestOptions = {}): Promise<T> {
    const body = options.body as
      { metadata: { resourceVersion?: string }; spec: Record<string, unknown> } | undefined;
    if (method === "GET") {
      if (this.lease === undefined)
        return Promise.reject(new KubeError("TETHER_ERR_KUBE_API", "not found", 404));
      return Promise.resolve(structuredClone(this.lease) as T);
    }
    if (method === "POST") {
      if (this.lease !== undefined)
        return Promise.reject(new KubeError("TETHER_ERR_KUBE_API", "exists", 409));
    } else if (body?.metadata.resourceVersion !== String(this.rv)) {
      return Promise.reject(new KubeError("TETHER_ERR_KUBE_API", "conflict", 409));
    }
    this.rv++;
    this.lease = { metadata: { ...body!.metadata, resourceVersion: String(this.rv) }, spec: body!.spec };
    return Promise.resolve(structuredClone(this.lease) as T);
  }

  stream(): Promise<AsyncIterable<Buffer>> {
    throw new Error("no watches");
  }
}

function elector(server: LeaseServer, identity: string, clock: { now: number }): LeaderElector {
  return new LeaderElector({
    client: server,
    namespace: "default",
    name: "tether-operator",
    identity,
    leaseDurationMs: 10_000,
    logger: pino({ level: "silent" }),
    now: () => clock.now,
    onStartedLeading: () => undefined,
    onStoppedLeading: () => undefined,
  });
}

describe("LeaderElector", () => {
  it("creates the Lease, renews it, and keeps others out until it expires by their own clock", async () => {
    const server = new LeaseServer();
    const clock = { now: 1_000_000 };
    const a = elector(server, "a", clock);
    const b = elector(server, "b", clock);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(server.lease?.spec).toMatchObject({
      holderIdentity: "a",
      leaseDurationSeconds: 10,
      leaseTransitions: 0,
    });
    expect(await b.tryAcquireOrRenew()).toBe(false); // b first sees the record now
    clock.now += 5_000;
    expect(await a.tryAcquireOrRenew()).toBe(true); // renewed
    clock.now += 1_000;
    expect(await b.tryAcquireOrRenew()).toBe(false); // b sees the renewal now: expiry moves
    clock.now += 9_500;
    expect(await b.tryAcquireOrRenew()).toBe(false); // 9.5 s since b saw it change
    clock.now += 1_000; // a died: 10.5 s without a change seen by b
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(server.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    expect(server.lease?.spec["renewTime"]).toBe(microTime(clock.now));
  });

  it("loses a race on the resourceVersion without an error", async () => {
    const server = new LeaseServer();
    const clock = { now: 0 };
    const a = elector(server, "a", clock);
    await a.tryAcquireOrRenew();
    const original = server.request.bind(server);
    server.request = <T>(method: string, path: string, options?: RequestOptions): Promise<T> => {
      if (method === "PUT") server.rv++; // someone else wrote in between
      return original<T>(method, path, options);
    };
    expect(await a.tryAcquireOrRenew()).toBe(false);
  });

  it("formats MicroTime with microseconds", () => {
    expect(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678))).toBe("2026-01-02T03:04:05.678000Z");
  });
});
