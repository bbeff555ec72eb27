import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { prometheusConfig } from "./config.ts";
import { substituteVariables } from "./grafana.ts";
import { alertsByName, ruleFile, ruleGroupsFromManifests, withForDurations } from "./rules.ts";

describe("prometheusConfig", () => {
  it("writes static targets with their labels, the intervals and the rule files", () => {
    const config = parse(
      prometheusConfig({
        jobs: [
          {
            name: "sidecar",
            metricsPath: "/stats/prometheus",
            targets: [{ address: "127.0.0.1:9901", labels: { namespace: "demo", pod: "web-0" } }],
          },
        ],
        scrapeIntervalSeconds: 1,
        evaluationIntervalSeconds: 2,
        ruleFiles: ["/tmp/x/rules.yml"],
      }),
    ) as Record<string, unknown>;
    expect(config).toEqual({
      global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "2s" },
      rule_files: ["/tmp/x/rules.yml"],
      scrape_configs: [
        {
          job_name: "sidecar",
          metrics_path: "/stats/prometheus",
          static_configs: [{ targets: ["127.0.0.1:9901"], labels: { namespace: "demo", pod: "web-0" } }],
        },
      ],
    });
  });

  it.each([
    [{ jobs: [{ name: "a b", targets: [] }] }, "jobs[0].name"],
    [{ jobs: [{ name: "a", targets: [{ address: "http://x:1" }] }] }, "jobs[0].targets[0].address"],
    [
      { jobs: [{ name: "a", targets: [{ address: "x:1", labels: { "app.kubernetes.io/x": "y" } }] }] },
      "labels.app",
    ],
    [{ jobs: [], scrapeIntervalSeconds: 0.5 }, "scrapeIntervalSeconds"],
  ])("rejects a bad field, naming it (%#)", (options, field) => {
    expect(() => prometheusConfig(options)).toThrow(field);
  });
});

const MANIFESTS = `
apiVersion: v1
kind: Service
metadata: { name: tether }
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: { name: tether }
spec:
  groups:
    - name: g
      rules:
        - alert: A
          expr: up == 0
          for: 5m
          labels: { severity: critical }
        - alert: B
          expr: vector(1)
`;

describe("rules from a rendered PrometheusRule", () => {
  it("extracts the groups and shortens for: durations", () => {
    const groups = withForDurations(ruleGroupsFromManifests(MANIFESTS), () => "2s");
    expect(alertsByName(groups).get("A")).toEqual({
      alert: "A",
      expr: "up == 0",
      for: "2s",
      labels: { severity: "critical" },
    });
    expect(alertsByName(groups).get("B")?.for).toBeUndefined();
    expect(parse(ruleFile(groups))).toEqual({ groups });
  });

  it("fails clearly without a PrometheusRule, or with a broken rule", () => {
    expect(() => ruleGroupsFromManifests("kind: Service\n")).toThrow("TETHER_ERR_PROMETHEUS_RULES");
    expect(() => ruleGroupsFromManifests(MANIFESTS.replace("expr: up == 0", "exp: x"))).toThrow(
      "spec.groups[0].rules[0].expr",
    );
  });
});

describe("substituteVariables", () => {
  it("replaces $var and ${var}", () => {
    expect(
      substituteVariables('rate(x{namespace=~"$namespace", a=~"${agent}"}[$__rate_interval])', {
        namespace: ".*",
        agent: "web",
        __rate_interval: "30s",
      }),
    ).toBe('rate(x{namespace=~".*", a=~"web"}[30s])');
  });

  it("names a variable without a value", () => {
    expect(() => substituteVariables('x{a=~"$cluster"}', {})).toThrow("$cluster");
  });
});
