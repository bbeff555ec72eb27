/** The operator's Prometheus metrics (prom-client), on the admin server's /metrics. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<"kind" | "result">;
  readonly reconcileDuration: Histogram<"kind">;
  readonly queueDepth: Gauge;
  readonly watchRestarts: Counter<"resource" | "reason">;
  readonly leader: Gauge;
  readonly writes: Counter<"verb" | "resource">;
  readonly xdsStreams: Gauge;
  readonly xdsPushes: Counter<"type">;
  readonly xdsNacks: Counter<"type">;
  /** How many ADS streams are open now (set by main once the xDS server runs). */
  xdsStreamCount: () => number = () => 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "tether_operator_" });
    this.reconciles = new Counter({
      name: "tether_operator_reconcile_total",
      help: "Reconciles by kind and result (success | error).",
      labelNames: ["kind", "result"],
      registers: [this.registry],
    });
    this.reconcileDuration = new Histogram({
      name: "tether_operator_reconcile_duration_seconds",
      help: "Time one reconcile took, by kind.",
      labelNames: ["kind"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.queueDepth = new Gauge({
      name: "tether_operator_queue_depth",
      help: "Keys waiting in the work queue.",
      registers: [this.registry],
    });
    this.watchRestarts = new Counter({
      name: "tether_operator_watch_restarts_total",
      help: "Watches restarted after an error, a stall (watchdog) or an expired resourceVersion (gone).",
      labelNames: ["resource", "reason"],
      registers: [this.registry],
    });
    this.leader = new Gauge({
      name: "tether_operator_leader",
      help: "1 while this operator is the leader (or leader election is off), else 0.",
      registers: [this.registry],
    });
    this.writes = new Counter({
      name: "tether_operator_api_writes_total",
      help: "Write requests sent to the API server, by verb and resource.",
      labelNames: ["verb", "resource"],
      registers: [this.registry],
    });
    const streams = (): number => this.xdsStreamCount();
    this.xdsStreams = new Gauge({
      name: "tether_operator_xds_streams",
      help: "ADS streams (connected sidecars) this replica serves.",
      registers: [this.registry],
      collect() {
        this.set(streams());
      },
    });
    this.xdsPushes = new Counter({
      name: "tether_operator_xds_pushes_total",
      help: "xDS responses pushed to sidecars because a resource type changed, by type.",
      labelNames: ["type"],
      registers: [this.registry],
    });
    this.xdsNacks = new Counter({
      name: "tether_operator_xds_nacks_total",
      help: "xDS responses sidecars rejected (NACK), by type.",
      labelNames: ["type"],
      registers: [this.registry],
    });
    for (const type of ["cluster", "endpoint", "listener", "route"]) {
      this.xdsPushes.inc({ type }, 0);
      this.xdsNacks.inc({ type }, 0);
    }
  }
}

/** `deployments`, `agents/status`, ... from a REST path, for the writes metric. */
export function resourceOfPath(path: string): string {
  const parts =
    path
      .split("?")[0]
      ?.split("/")
      .filter((p) => p !== "") ?? [];
  const ns = parts.indexOf("namespaces");
  const rest = ns >= 0 ? parts.slice(ns + 2) : parts.slice(parts[0] === "api" ? 2 : 3);
  return rest.length >= 3 ? `${rest[0] ?? ""}/${rest[2] ?? ""}` : (rest[0] ?? "unknown");
}
