/**
 * The operator's Prometheus metrics (prom-client), on the admin server's /metrics: Tether's own
 * `tether_operator_*` families, the same facts under controller-runtime's and client-go's names
 * (`controller_runtime_reconcile_total`, `workqueue_*`, `leader_election_master_status`) so the
 * dashboards and alerts people already run for operators work, and Node's process metrics unprefixed.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<"kind" | "result">;
  readonly reconcileDuration: Histogram<"kind">;
  readonly queueDepth: Gauge;
  readonly watchRestarts: Counter<"resource" | "reason">;
  readonly leader: Gauge;
  readonly writes: Counter<"verb" | "resource">;
  /** controller-runtime's names; `controller` is the kind in lower case, as kubebuilder names them. */
  readonly runtime: ControllerRuntimeMetrics;
  readonly xdsStreams: Gauge;
  readonly xdsPushes: Counter<"type">;
  readonly xdsNacks: Counter<"type">;
  readonly xdsStreamsRefused: Counter<"reason">;
  /** TokenReviews and pod GETs of the identity check in flight now (at most --xds-auth-max-reviews). */
  readonly xdsReviewsInFlight: Gauge;
  /** Pod admission reviews the webhook answered, by result. */
  readonly webhookAdmissions: Counter<"result">;
  /** How many ADS streams are open now (set by main once the xDS server runs). */
  xdsStreamCount: () => number = () => 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.runtime = new ControllerRuntimeMetrics(this.registry);
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
    this.xdsStreamsRefused = new Counter({
      name: "tether_operator_xds_streams_refused_total",
      help: "ADS streams refused by the identity check (--xds-auth), by reason.",
      labelNames: ["reason"],
      registers: [this.registry],
    });
    this.xdsReviewsInFlight = new Gauge({
      name: "tether_operator_xds_reviews_in_flight",
      help: "TokenReviews and pod GETs of the xDS identity check in flight (at most --xds-auth-max-reviews).",
      registers: [this.registry],
    });
    this.webhookAdmissions = new Counter({
      name: "tether_operator_webhook_admissions_total",
      help: "Pod admission reviews answered: injected, skipped (no Agent named, nothing to add), denied, error.",
      labelNames: ["result"],
      registers: [this.registry],
    });
    for (const result of ["injected", "skipped", "denied", "error"])
      this.webhookAdmissions.inc({ result }, 0);
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

/** The work queue's name in the `workqueue_*` families (one queue serves every kind). */
export const WORKQUEUE_NAME = "tether";
/** The controllers, as controller-runtime labels them. */
export const CONTROLLERS = ["policyservercluster", "agent", "broker", "proxyroute"] as const;

const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60];

/** The controller-runtime and client-go families, with their names, labels and meaning. */
export class ControllerRuntimeMetrics {
  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly reconcileTime: Histogram<"controller">;
  readonly depth: Gauge<"name" | "controller">;
  readonly adds: Counter<"name" | "controller">;
  readonly retries: Counter<"name" | "controller">;
  readonly queueDuration: Histogram<"name" | "controller">;
  readonly workDuration: Histogram<"name" | "controller">;
  readonly leaderStatus: Gauge<"name">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.reconcileTotal = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller (result: success | error).",
      labelNames: ["controller", "result"],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller.",
      labelNames: ["controller"],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller.",
      labelNames: ["controller"],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.depth = new Gauge({
      name: "workqueue_depth",
      help: "Current depth of the work queue.",
      labelNames: ["name", "controller"],
      registers,
    });
    this.adds = new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by the work queue.",
      labelNames: ["name", "controller"],
      registers,
    });
    this.retries = new Counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by the work queue.",
      labelNames: ["name", "controller"],
      registers,
    });
    this.queueDuration = new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long in seconds an item stays in the work queue before being requested.",
      labelNames: ["name", "controller"],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.workDuration = new Histogram({
      name: "workqueue_work_duration_seconds",
      help: "How long in seconds processing an item from the work queue takes.",
      labelNames: ["name", "controller"],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.leaderStatus = new Gauge({
      name: "leader_election_master_status",
      help: "1 while this replica leads (or leader election is off), else 0.",
      labelNames: ["name"],
      registers,
    });
    const queue = { name: WORKQUEUE_NAME, controller: WORKQUEUE_NAME };
    this.depth.set(queue, 0);
    this.adds.inc(queue, 0);
    this.retries.inc(queue, 0);
    for (const controller of CONTROLLERS) {
      for (const result of ["success", "error"]) this.reconcileTotal.inc({ controller, result }, 0);
      this.reconcileErrors.inc({ controller }, 0);
    }
  }
}
