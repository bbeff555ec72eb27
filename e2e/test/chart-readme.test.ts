/**
 * The chart README documents every value: its values table is what `npm run chart:readme` generates
 * from values.yaml's `# --` comments (one row per leaf of values.schema.json, with values.yaml's
 * default as JSON), and it names every alert.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHART_DIR } from "../src/chart/index.ts";
import { expectedReadme, valueComments, valueRows } from "../src/chart/values-doc.ts";

const readme = readFileSync(join(CHART_DIR, "README.md"), "utf8");
const valuesYaml = readFileSync(join(CHART_DIR, "values.yaml"), "utf8");
const schema = JSON.parse(readFileSync(join(CHART_DIR, "values.schema.json"), "utf8")) as unknown;

describe("charts/tether/README.md", () => {
  it("has the values table generated from values.yaml (run `npm run chart:readme` if this fails)", () => {
    expect(readme).toBe(expectedReadme(CHART_DIR));
  });

  it("has one row per value of the schema, each with a comment and values.yaml's default", () => {
    const rows = valueRows(valuesYaml, schema);
    const byPath = new Map(rows.map((r) => [r.path, r]));
    expect(byPath.get("operator.image.repository")?.default).toBe('`"localhost/tether/operator"`');
    expect(byPath.get("sidecar.image.pullPolicy")?.default).toBe('`""`');
    expect(byPath.get("global")?.default).toBe("`{}`");
    expect(byPath.get("crds.keep")?.description).toContain("helm.sh/resource-policy: keep");
    for (const r of rows) expect(readme).toContain(`| \`${r.path}\` | ${r.default.replace(/\|/g, "\\|")} |`);
  });

  it("refuses a value without a `# --` comment, naming it", () => {
    const stripped = valuesYaml.replace(/^ {2}# -- Operator replicas.*\n(^ {2}# .*\n)*/m, "");
    expect(() => valueRows(stripped, schema)).toThrow(/operator\.replicas/);
    expect(valueComments("a:\n  # -- one\n  # two\n  b: 1\n").get("a.b")).toBe("one two");
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
