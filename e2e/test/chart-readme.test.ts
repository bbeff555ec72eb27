/**
 * The chart README documents every value: one table row per leaf of values.schema.json (and of
 * values.yaml), with the default exactly as values.yaml sets it (as JSON), and nothing else.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CHART_DIR } from "../src/chart/index.ts";

interface SchemaNode {
  $ref?: string;
  properties?: Record<string, SchemaNode>;
}

const schema = JSON.parse(readFileSync(join(CHART_DIR, "values.schema.json"), "utf8")) as SchemaNode & {
  $defs: Record<string, SchemaNode>;
};
const values = parse(readFileSync(join(CHART_DIR, "values.yaml"), "utf8")) as Record<string, unknown>;
const readme = readFileSync(join(CHART_DIR, "README.md"), "utf8");

/** Leaf paths of the schema (objects with `properties` are walked), with values.yaml's default. */
function leaves(
  node: SchemaNode,
  value: unknown,
  path: string,
  out: Map<string, string>,
): Map<string, string> {
  const resolved = node.$ref === undefined ? node : schema.$defs[node.$ref.split("/").pop() ?? ""];
  if (resolved?.properties === undefined) {
    out.set(path, value === undefined ? "(unset)" : `\`${JSON.stringify(value)}\``);
    return out;
  }
  for (const [key, child] of Object.entries(resolved.properties)) {
    const sub =
      value !== null && typeof value === "object" ? (value as Record<string, unknown>)[key] : undefined;
    leaves(child, sub, path === "" ? key : `${path}.${key}`, out);
  }
  return out;
}

/** The README's values table: `path` → default cell. */
function documented(): Map<string, string> {
  const rows = new Map<string, string>();
  const section = readme.split("## Values")[1]?.split("\n## ")[0] ?? "";
  for (const line of section.split("\n")) {
    const m = /^\|\s*`([a-zA-Z.]+)`\s*\|\s*(.*?)\s*\|/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) rows.set(m[1], m[2]);
  }
  return rows;
}

describe("charts/tether/README.md", () => {
  it("has one row per value, with values.yaml's default", () => {
    expect(Object.fromEntries(documented())).toEqual(
      Object.fromEntries(leaves(schema, values, "", new Map())),
    );
  });

  it("names every alert of the PrometheusRule template", () => {
    const template = readFileSync(join(CHART_DIR, "templates", "prometheusrule.yaml"), "utf8");
    const alerts = [...template.matchAll(/- alert: (\w+)/g)].map((m) => m[1] ?? "");
    expect(alerts.length).toBeGreaterThan(0);
    for (const alert of alerts) expect(readme).toContain(`| \`${alert}\``);
  });

  it("shows the install command", () => {
    expect(readme).toContain("helm install tether charts/tether -n tether-system --create-namespace");
  });
});
