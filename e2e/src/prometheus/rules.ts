/**
 * Alerting rules for a test Prometheus, taken from the chart's rendered PrometheusRule: the
 * Prometheus Operator copies `spec.groups` into a rule file unchanged, so the test does the same.
 * `for:` durations can be shortened so a test sees an alert fire within seconds.
 */
import { parseAllDocuments, stringify } from "yaml";
import { PrometheusError } from "./config.ts";

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

interface Manifest {
  kind?: unknown;
  metadata?: { name?: unknown };
  spec?: { groups?: unknown };
}

function ruleError(message: string): PrometheusError {
  return new PrometheusError("TETHER_ERR_PROMETHEUS_RULES", message);
}

function parseRule(value: unknown, where: string): AlertRule {
  if (value === null || typeof value !== "object") throw ruleError(`${where}: expected a mapping`);
  const rule = value as Record<string, unknown>;
  if (typeof rule["alert"] !== "string") throw ruleError(`${where}.alert: expected the alert's name`);
  if (typeof rule["expr"] !== "string") throw ruleError(`${where}.expr: expected a PromQL string`);
  if (rule["for"] !== undefined && typeof rule["for"] !== "string") {
    throw ruleError(`${where}.for: expected a duration string`);
  }
  return rule as unknown as AlertRule;
}

/** The rule groups of every PrometheusRule in a multi-document YAML stream (`helm template` output). */
export function ruleGroupsFromManifests(text: string): RuleGroup[] {
  const groups: RuleGroup[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw ruleError(`manifest YAML: ${doc.errors[0]?.message ?? "parse error"}`);
    const manifest = doc.toJS() as Manifest | null;
    if (manifest?.kind !== "PrometheusRule") continue;
    const name = typeof manifest.metadata?.name === "string" ? manifest.metadata.name : "?";
    const list = manifest.spec?.groups;
    if (!Array.isArray(list)) throw ruleError(`PrometheusRule ${name}: spec.groups: expected a list`);
    list.forEach((group: unknown, i) => {
      const where = `PrometheusRule ${name}: spec.groups[${i}]`;
      const g = group as { name?: unknown; rules?: unknown } | null;
      if (typeof g?.name !== "string") throw ruleError(`${where}.name: expected a string`);
      if (!Array.isArray(g.rules)) throw ruleError(`${where}.rules: expected a list`);
      groups.push({
        name: g.name,
        rules: g.rules.map((rule: unknown, j) => parseRule(rule, `${where}.rules[${j}]`)),
      });
    });
  }
  if (groups.length === 0) throw ruleError("no PrometheusRule with groups in the manifests");
  return groups;
}

/** Every alert of the groups, by name. */
export function alertsByName(groups: readonly RuleGroup[]): Map<string, AlertRule> {
  return new Map(groups.flatMap((g) => g.rules.map((r) => [r.alert, r] as const)));
}

/**
 * The groups with each alert's `for:` replaced by `shorten(alert, for)`; an alert with no `for:`
 * keeps none.
 */
export function withForDurations(
  groups: readonly RuleGroup[],
  shorten: (alert: string, current: string) => string,
): RuleGroup[] {
  return groups.map((g) => ({
    name: g.name,
    rules: g.rules.map((r) => (r.for === undefined ? r : { ...r, for: shorten(r.alert, r.for) })),
  }));
}

/** The text of a Prometheus rule file holding these groups. */
export function ruleFile(groups: readonly RuleGroup[]): string {
  return stringify({ groups });
}
