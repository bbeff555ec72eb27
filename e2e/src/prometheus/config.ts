/**
 * The Prometheus configuration for tests: scrape jobs with static targets, each target carrying the
 * labels a Kubernetes scrape would add (namespace, pod, app_kubernetes_io_instance), and rule files.
 * Pure: builds the YAML text, no I/O.
 */
import { stringify } from "yaml";

export class PrometheusError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = "PrometheusError";
  }
}

export interface ScrapeTarget {
  /** host:port of the metrics endpoint. */
  readonly address: string;
  /** Labels added to every series scraped from this target. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface ScrapeJob {
  readonly name: string;
  /** Default /metrics. */
  readonly metricsPath?: string;
  readonly targets: readonly ScrapeTarget[];
}

export interface PrometheusConfigOptions {
  readonly jobs: readonly ScrapeJob[];
  /** Scrape interval and timeout, in seconds. Default 1. */
  readonly scrapeIntervalSeconds?: number;
  /** Rule evaluation interval, in seconds. Default 1. */
  readonly evaluationIntervalSeconds?: number;
  /** Absolute paths of rule files. */
  readonly ruleFiles?: readonly string[];
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const JOB_NAME = /^[\w.-]+$/;
const ADDRESS = /^[^\s/:]+:\d{1,5}$/;

function seconds(field: string, value: number | undefined): string {
  const n = value ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 3600) {
    throw new PrometheusError(
      "TETHER_ERR_PROMETHEUS_CONFIG",
      `${field}: ${n} is not a whole number of seconds in 1..3600`,
    );
  }
  return `${n}s`;
}

/** The prometheus.yml text for these jobs; throws naming the field for a bad job, target or label. */
export function prometheusConfig(options: PrometheusConfigOptions): string {
  const interval = seconds("scrapeIntervalSeconds", options.scrapeIntervalSeconds);
  const names = new Set<string>();
  const scrapeConfigs = options.jobs.map((job, i) => {
    if (!JOB_NAME.test(job.name) || names.has(job.name)) {
      throw new PrometheusError(
        "TETHER_ERR_PROMETHEUS_CONFIG",
        `jobs[${i}].name: "${job.name}" must be a unique name of letters, digits, ".", "-" and "_"`,
      );
    }
    names.add(job.name);
    return {
      job_name: job.name,
      metrics_path: job.metricsPath ?? "/metrics",
      static_configs: job.targets.map((target, j) => {
        if (!ADDRESS.test(target.address)) {
          throw new PrometheusError(
            "TETHER_ERR_PROMETHEUS_CONFIG",
            `jobs[${i}].targets[${j}].address: "${target.address}" is not host:port`,
          );
        }
        for (const label of Object.keys(target.labels ?? {})) {
          if (!LABEL_NAME.test(label) || label.startsWith("__")) {
            throw new PrometheusError(
              "TETHER_ERR_PROMETHEUS_CONFIG",
              `jobs[${i}].targets[${j}].labels.${label}: not a valid Prometheus label name`,
            );
          }
        }
        return { targets: [target.address], labels: { ...target.labels } };
      }),
    };
  });
  return stringify({
    global: {
      scrape_interval: interval,
      scrape_timeout: interval,
      evaluation_interval: seconds("evaluationIntervalSeconds", options.evaluationIntervalSeconds),
    },
    rule_files: [...(options.ruleFiles ?? [])],
    scrape_configs: scrapeConfigs,
  });
}
