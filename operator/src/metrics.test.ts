import { describe, expect, it } from "vitest";
import { OperatorMetrics } from "./metrics.ts";

describe("OperatorMetrics", () => {
  it("exposes controller-runtime's families, from the start, and Node's process metrics unprefixed", async () => {
    const m = new OperatorMetrics();
    m.runtime.reconcileTotal.inc({ controller: "agent", result: "error" });
    const text = await m.registry.metrics();
    for (const sample of [
      'controller_runtime_reconcile_total{controller="agent",result="error"} 1',
      'controller_runtime_reconcile_total{controller="broker",result="success"} 0',
      'controller_runtime_reconcile_errors_total{controller="proxyroute"} 0',
      'workqueue_depth{name="tether",controller="tether"} 0',
      'workqueue_adds_total{name="tether",controller="tether"} 0',
      'workqueue_retries_total{name="tether",controller="tether"} 0',
    ]) {
      expect(text).toContain(sample);
    }
    for (const family of [
      "controller_runtime_reconcile_time_seconds",
      "workqueue_queue_duration_seconds",
      "workqueue_work_duration_seconds",
      "leader_election_master_status",
      "tether_operator_reconcile_total",
      "process_cpu_seconds_total",
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect(text).toContain(`# TYPE ${family} `);
    }
    expect(text).not.toContain("tether_operator_process_");
  });
});
