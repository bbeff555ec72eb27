/**
 * Lease-based leader election (coordination.k8s.io/v1), the client-go algorithm: a lease is
 * expired when its record has not changed for leaseDuration by *our* clock, so clock skew between
 * operators does not matter. With the defaults (10 s lease, 2 s retry) a standby takes over at most
 * ~14 s after the leader's last renewal; a leader that shuts down cleanly releases at once.
 */
import type { Logger } from "pino";
import type { KubeTransport } from "./client.ts";
import { isConflict, isNotFound } from "./errors.ts";
import { resourcePath, RESOURCES } from "./resources.ts";
import { delay } from "./backoff.ts";

export interface LeaderElectionOptions {
  readonly client: KubeTransport;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs?: number;
  /** A leader that cannot renew for this long steps down. Must be below leaseDurationMs. */
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  private leading = false;
  private observed: { key: string; at: number } | undefined;
  private lastRenew = 0;
  private running: Promise<void> | undefined;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private get leaseMs(): number {
    return this.options.leaseDurationMs ?? 10_000;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops campaigning; a leader releases the lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    if (this.leading) {
      this.setLeading(false);
      await this.release().catch((error: unknown) => {
        this.options.logger.warn({ err: error }, "could not release the leader lease");
      });
    }
  }

  private path(name?: string): string {
    return resourcePath(RESOURCES.leases, this.options.namespace, name);
  }

  private setLeading(value: boolean): void {
    if (this.leading === value) return;
    this.leading = value;
    this.options.logger.info(
      { identity: this.options.identity, lease: this.options.name },
      value ? "became leader" : "stopped leading",
    );
    if (value) this.options.onStartedLeading();
    else this.options.onStoppedLeading();
  }

  private async loop(): Promise<void> {
    const retry = this.options.retryPeriodMs ?? 2_000;
    const renewDeadline = this.options.renewDeadlineMs ?? 7_000;
    while (!this.abort.signal.aborted) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (error) {
        this.options.logger.warn({ err: error }, "leader election: lease request failed");
      }
      if (ok) {
        this.lastRenew = this.now();
        this.setLeading(true);
      } else if (this.leading && this.now() - this.lastRenew > renewDeadline) {
        // Could not renew in time: another operator may take over, so stop writing first.
        this.setLeading(false);
      }
      await delay(retry, this.abort.signal);
    }
  }

  private record(now: number, previous: LeaseSpec | undefined): LeaseSpec {
    const same = previous?.holderIdentity === this.options.identity;
    return {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      acquireTime: same && previous.acquireTime !== undefined ? previous.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (same ? 0 : 1),
    };
  }

  /** One round of the election: true when we hold the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { client } = this.options;
    const now = this.now();
    let lease: Lease;
    try {
      lease = await client.request<Lease>("GET", this.path(this.options.name), { timeoutMs: 5_000 });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      const created: Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.options.name, namespace: this.options.namespace },
        spec: { ...this.record(now, undefined), leaseTransitions: 0 },
      };
      try {
        await client.request("POST", this.path(), { body: created, timeoutMs: 5_000 }, true);
        return true;
      } catch (createError) {
        if (isConflict(createError)) return false;
        throw createError;
      }
    }
    const spec = lease.spec ?? {};
    const key = `${spec.holderIdentity ?? ""}|${spec.renewTime ?? ""}|${lease.metadata.resourceVersion ?? ""}`;
    if (this.observed?.key !== key) this.observed = { key, at: now };
    const holder = spec.holderIdentity ?? "";
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
    if (holder !== "" && holder !== this.options.identity && now < this.observed.at + durationMs)
      return false;
    const updated: Lease = { ...lease, spec: this.record(now, spec) };
    try {
      await client.request("PUT", this.path(this.options.name), { body: updated, timeoutMs: 5_000 }, true);
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  private async release(): Promise<void> {
    const { client } = this.options;
    const lease = await client.request<Lease>("GET", this.path(this.options.name), { timeoutMs: 5_000 });
    if (lease.spec?.holderIdentity !== this.options.identity) return;
    const now = this.now();
    const released: Lease = {
      ...lease,
      spec: {
        holderIdentity: "",
        leaseDurationSeconds: 1,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: lease.spec.leaseTransitions ?? 0,
      },
    };
    await client.request("PUT", this.path(this.options.name), { body: released, timeoutMs: 5_000 }, true);
  }
}
