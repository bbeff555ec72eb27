// A DecisionCache's subscription to the policy server's notification stream (notification_stream):
// each attempt opens the long-lived GET to a host the named cluster's load balancer picks (healthy
// ones first, a different one than the last attempt's when there is one), over that host's transport
// socket (TLS / PROXY settings apply). A stream whose host leaves rotation is dropped and reopened
// elsewhere; a reload that replaces the cluster moves the stream to the new one; stop ends it all.
import http, { type ClientRequest } from "node:http";
import type { Duplex } from "node:stream";
import type { NotificationStreamConfig } from "@tether/envoy";
import type { Logger } from "../../log.ts";
import type { RandomSource } from "../../upstream/backoff.ts";
import type { ClusterManager } from "../../upstream/cluster-manager.ts";
import type { Cluster } from "../../upstream/cluster.ts";
import { connectUpstream } from "../../upstream/connect.ts";
import type { Host } from "../../upstream/host.ts";
import { NotificationStream, type DecisionCache } from "./decision-cache.ts";

export interface SubscriptionDeps {
  readonly clusters: ClusterManager;
  readonly log: Logger;
  readonly random: RandomSource;
}

/** How many extra picks look for a host other than the last attempt's (as host_selection_retry_max_attempts). */
const RESELECTS = 3;

/** Node ignores the socket argument of a failed `oncreate`; its type still asks for one. */
const NO_SOCKET = undefined as unknown as Duplex;

export class NotificationSubscription {
  readonly config: NotificationStreamConfig;
  readonly stream: NotificationStream;
  private readonly deps: SubscriptionDeps;
  private readonly log: Logger;
  /** The cluster and host of the current (or last) attempt. */
  private cluster: Cluster | undefined;
  private host: Host | undefined;
  private request: ClientRequest | undefined;
  private unwatch: (() => void) | undefined;

  constructor(
    cache: DecisionCache,
    config: NotificationStreamConfig,
    deps: SubscriptionDeps,
    listener: string,
  ) {
    this.config = config;
    this.deps = deps;
    this.log = deps.log.child({ listener, notificationCluster: config.cluster, path: config.path });
    this.stream = new NotificationStream(cache, {
      open: () => this.open(),
      baseIntervalMs: config.retry_back_off.base_interval,
      maxIntervalMs: config.retry_back_off.max_interval,
      responseTimeoutMs: config.timeout,
      random: deps.random,
      log: this.log,
    });
  }

  start(): void {
    this.stream.start();
  }

  /** Ends the stream and any pending reconnect; nothing of it is left running. */
  stop(): void {
    this.stream.stop();
    this.request = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
  }

  /** After a reload: if the cluster was replaced, reconnect through the new one. */
  refresh(): void {
    if (this.request !== undefined && this.deps.clusters.get(this.config.cluster) !== this.cluster) {
      this.request.destroy(new Error("cluster reconfigured"));
    }
  }

  /** The host of the current attempt (for logs and tests). */
  get upstream(): string | undefined {
    return this.host?.key;
  }

  private open(): ClientRequest {
    const cluster = this.deps.clusters.get(this.config.cluster);
    const previous = cluster !== undefined && cluster === this.cluster ? this.host : undefined;
    const host = cluster?.chooseHost(previous === undefined ? undefined : [previous], RESELECTS);
    this.watch(cluster, host);
    const req = http.request({
      method: "GET",
      host: host?.address ?? "127.0.0.1",
      port: host?.port ?? 0,
      path: this.config.path,
      headers: { host: host?.hostname ?? host?.key ?? this.config.cluster, accept: "application/x-ndjson" },
      // Connections go through the cluster: its connect timeout, transport socket and accounting.
      createConnection: (_options, oncreate: (err: Error | null, socket: Duplex) => void): undefined => {
        if (cluster === undefined || host === undefined) {
          oncreate(new Error(`cluster "${this.config.cluster}" has no hosts`), NO_SOCKET);
          return undefined;
        }
        connectUpstream(cluster, host, (err, socket) => {
          if (socket !== null) oncreate(null, socket);
          else oncreate(err ?? new Error("connect failed"), NO_SOCKET);
        });
        return undefined;
      },
    });
    this.request = req;
    if (host !== undefined)
      this.log.debug({ upstream: host.key }, "opening decision cache notification stream");
    return req;
  }

  /** Drops the stream when its host leaves rotation, so the next attempt picks a healthy one. */
  private watch(cluster: Cluster | undefined, host: Host | undefined): void {
    this.unwatch?.();
    this.unwatch = undefined;
    this.cluster = cluster;
    this.host = host;
    if (cluster === undefined || host === undefined) return;
    this.unwatch = cluster.onHostHealth((changed, healthy) => {
      if (changed === host && !healthy && this.host === host) {
        this.request?.destroy(new Error(`upstream ${host.key} left rotation`));
      }
    });
  }
}
