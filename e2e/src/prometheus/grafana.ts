/**
 * Grafana template variables in dashboard queries, replaced the way Grafana does before it sends a
 * query to Prometheus: `$name` and `${name}` by a value, `$__rate_interval` by a duration.
 */
import { PrometheusError } from "./config.ts";

/** Replaces `$var` / `${var}` by `values[var]`; a variable without a value is an error naming it. */
export function substituteVariables(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (_match, braced: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare ?? "";
      const value = values[name];
      if (value === undefined) {
        throw new PrometheusError(
          "TETHER_ERR_PROMETHEUS_VARIABLE",
          `query uses $${name}, which has no value (known: ${Object.keys(values).join(", ")}): ${expr}`,
        );
      }
      return value;
    },
  );
}
