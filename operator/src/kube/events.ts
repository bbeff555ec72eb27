/**
 * core/v1 Events on Tether resources, for failures and notable changes. The same event (object,
 * reason, message) is not repeated within `dedupWindowMs`, so a failing reconcile retried with
 * back-off does not flood the namespace.
 */
import type { Logger } from "pino";
import type { KubeTransport } from "./client.ts";
import { resourcePath, RESOURCES, type KubeObject } from "./resources.ts";

export type EventType = "Normal" | "Warning";

export class EventRecorder {
  private readonly client: KubeTransport;
  private readonly logger: Logger;
  private readonly recent = new Map<string, number>();
  private readonly dedupWindowMs: number;
  private readonly now: () => number;

  constructor(client: KubeTransport, logger: Logger, dedupWindowMs = 600_000, now: () => number = Date.now) {
    this.client = client;
    this.logger = logger;
    this.dedupWindowMs = dedupWindowMs;
    this.now = now;
  }

  /**
   * Records the event; never throws (an event is best effort). `anyReplica`: written even by a
   * replica that is not the leader (a report of what that replica alone saw, never state).
   */
  async record(
    object: KubeObject,
    type: EventType,
    reason: string,
    message: string,
    anyReplica = false,
  ): Promise<void> {
    const { name, namespace, uid } = object.metadata;
    const key = `${uid ?? name}|${reason}|${message}`;
    const now = this.now();
    const last = this.recent.get(key);
    if (last !== undefined && now - last < this.dedupWindowMs) return;
    this.recent.set(key, now);
    if (this.recent.size > 10_000) this.prune(now);
    const time = new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z");
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: {
        name: `${name}.${now.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`,
        namespace,
      },
      involvedObject: {
        apiVersion: object.apiVersion,
        kind: object.kind,
        name,
        namespace,
        uid,
        resourceVersion: object.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: "tether-operator" },
      reportingComponent: "tether-operator",
      reportingInstance: "tether-operator",
      firstTimestamp: time,
      lastTimestamp: time,
      count: 1,
    };
    try {
      await this.client.request(
        "POST",
        resourcePath(RESOURCES.events, namespace),
        { body: event },
        anyReplica,
      );
    } catch (error) {
      this.logger.debug({ err: error, reason }, "could not record event");
    }
  }

  private prune(now: number): void {
    for (const [key, at] of this.recent) if (now - at >= this.dedupWindowMs) this.recent.delete(key);
  }
}
