import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../api/generate.ts";
import { DASHBOARD_ROWS, NOT_ADMIN_CLUSTER, NOT_ADMIN_LISTENER } from "./dashboard.ts";

// The public admin port's listener and cluster carry the kubelet's probes and Prometheus' scrapes:
// a starting sidecar's /ready 503 must not show as an upstream error or fire an alert.
describe("the sidecar's own admin traffic", () => {
  const exprs = DASHBOARD_ROWS.flatMap((r) => r.panels.flatMap((p) => p.targets.map((t) => t.expr)));

  it("is left out of every per-cluster and per-listener dashboard query", () => {
    const perCluster = exprs.filter((e) => /envoy_cluster_|tether_held_requests|tether_upstream_/.test(e));
    expect(perCluster.length).toBeGreaterThan(5);
    for (const e of perCluster) expect(e, e).toContain(NOT_ADMIN_CLUSTER);
    const perListener = exprs.filter((e) => e.includes("envoy_http_downstream_"));
    expect(perListener.length).toBeGreaterThan(0);
    for (const e of perListener) expect(e, e).toContain(NOT_ADMIN_LISTENER);
  });

  it("is left out of the chart's per-cluster alerts", () => {
    const rules = readFileSync(join(REPO_ROOT, "charts/tether/templates/prometheusrule.yaml"), "utf8");
    const selectors = [
      ...rules.matchAll(/(envoy_cluster_upstream_rq_\w+|tether_held_requests)(\{[^}]*\})?/g),
    ];
    expect(selectors.length).toBeGreaterThanOrEqual(3);
    for (const [whole, , labels] of selectors) expect(labels ?? "", whole).toContain(NOT_ADMIN_CLUSTER);
  });
});
