/**
 * A real Prometheus for tests: start it scraping given targets (server.ts), query it (client.ts),
 * load the chart's alerts as a rule file (rules.ts), and fill in Grafana variables (grafana.ts).
 */
export {
  PrometheusClient,
  pollUntil,
  type ActiveAlert,
  type Labels,
  type RuleGroupStatus,
  type RuleStatus,
  type Sample,
  type Series,
  type TargetStatus,
} from "./client.ts";
export {
  PrometheusError,
  prometheusConfig,
  type PrometheusConfigOptions,
  type ScrapeJob,
  type ScrapeTarget,
} from "./config.ts";
export { substituteVariables } from "./grafana.ts";
export {
  alertsByName,
  ruleFile,
  ruleGroupsFromManifests,
  withForDurations,
  type AlertRule,
  type RuleGroup,
} from "./rules.ts";
export { findPrometheus, startPrometheus, type PrometheusOptions, type RunningPrometheus } from "./server.ts";
