/**
 * A small client for Prometheus's HTTP API (v1): instant and range queries, alerts, rules,
 * targets and label values. Every call has a timeout; an API error throws a PrometheusError that
 * names the query.
 */
import { PrometheusError } from "./config.ts";

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly metric: Labels;
  /** NaN and ±Inf are kept as such. */
  readonly value: number;
}

export interface Series {
  readonly metric: Labels;
  /** [unix seconds, value] pairs. */
  readonly values: readonly (readonly [number, number])[];
}

export interface ActiveAlert {
  readonly labels: Labels;
  readonly annotations: Labels;
  readonly state: "pending" | "firing";
  readonly activeAt: string;
  readonly value: string;
}

export interface RuleStatus {
  readonly name: string;
  readonly query: string;
  readonly health: string;
  readonly lastError?: string;
  readonly state?: string;
  readonly type: "alerting" | "recording";
}

export interface RuleGroupStatus {
  readonly name: string;
  readonly rules: readonly RuleStatus[];
  readonly lastEvaluation: string;
}

export interface TargetStatus {
  readonly labels: Labels;
  readonly scrapeUrl: string;
  readonly health: "up" | "down" | "unknown";
  readonly lastError: string;
}

interface ApiResponse<T> {
  status: "success" | "error";
  data?: T;
  errorType?: string;
  error?: string;
}

type RawValue = [number, string];

function num(text: string): number {
  return text === "NaN" ? NaN : Number(text);
}

export class PrometheusClient {
  readonly origin: string;
  private readonly timeoutMs: number;

  constructor(origin: string, timeoutMs = 10_000) {
    this.origin = origin.replace(/\/$/, "");
    this.timeoutMs = timeoutMs;
  }

  /** True when /-/ready answers 200. */
  async ready(): Promise<boolean> {
    try {
      const res = await fetch(`${this.origin}/-/ready`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** An instant query; a scalar result comes back as one sample with no labels. */
  async query(expr: string, time?: number): Promise<Sample[]> {
    const params: Record<string, string> = { query: expr };
    if (time !== undefined) params["time"] = String(time);
    const data = await this.api<{ resultType: string; result: unknown }>("query", params, expr);
    if (data.resultType === "scalar") return [{ metric: {}, value: num((data.result as RawValue)[1]) }];
    if (data.resultType !== "vector") {
      throw new PrometheusError(
        "TETHER_ERR_PROMETHEUS_QUERY",
        `${expr}: expected an instant vector, got ${data.resultType}`,
      );
    }
    return (data.result as { metric: Labels; value: RawValue }[]).map((r) => ({
      metric: r.metric,
      value: num(r.value[1]),
    }));
  }

  /** A range query from `start` to `end` (unix seconds) at `step` seconds. */
  async queryRange(expr: string, start: number, end: number, step: number): Promise<Series[]> {
    const data = await this.api<{ resultType: string; result: { metric: Labels; values: RawValue[] }[] }>(
      "query_range",
      { query: expr, start: String(start), end: String(end), step: String(step) },
      expr,
    );
    return data.result.map((r) => ({
      metric: r.metric,
      values: r.values.map(([t, v]) => [t, num(v)] as const),
    }));
  }

  /** Alerts that are pending or firing now. */
  async alerts(): Promise<ActiveAlert[]> {
    return (await this.api<{ alerts: ActiveAlert[] }>("alerts", {}, "alerts")).alerts;
  }

  async rules(): Promise<RuleGroupStatus[]> {
    return (await this.api<{ groups: RuleGroupStatus[] }>("rules", {}, "rules")).groups;
  }

  async targets(): Promise<TargetStatus[]> {
    return (await this.api<{ activeTargets: TargetStatus[] }>("targets", { state: "active" }, "targets"))
      .activeTargets;
  }

  /** Values of `label`, optionally only on series matching the selectors (as Grafana's label_values). */
  async labelValues(label: string, match: readonly string[] = []): Promise<string[]> {
    const params = new URLSearchParams();
    for (const m of match) params.append("match[]", m);
    return this.api<string[]>(`label/${encodeURIComponent(label)}/values`, params, `label_values(${label})`);
  }

  private async api<T>(
    path: string,
    params: Record<string, string> | URLSearchParams,
    what: string,
  ): Promise<T> {
    const query = new URLSearchParams(params).toString();
    const url = `${this.origin}/api/v1/${path}${query === "" ? "" : `?${query}`}`;
    let body: ApiResponse<T>;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs) });
      body = (await res.json()) as ApiResponse<T>;
    } catch (error) {
      throw new PrometheusError(
        "TETHER_ERR_PROMETHEUS_API",
        `${what}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    if (body.status !== "success" || body.data === undefined) {
      throw new PrometheusError(
        "TETHER_ERR_PROMETHEUS_QUERY",
        `${what}: ${body.errorType ?? "error"}: ${body.error ?? "no data"}`,
      );
    }
    return body.data;
  }
}

/**
 * Calls `check` every `intervalMs` until it returns a value other than undefined/false, and
 * resolves with it; rejects after `timeoutMs` naming `what` and the last error.
 */
export async function pollUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error instanceof Error ? `: ${error.message}` : `: ${String(error)}`;
    }
    if (Date.now() >= deadline) {
      throw new PrometheusError(
        "TETHER_ERR_PROMETHEUS_TIMEOUT",
        `timed out after ${timeoutMs} ms waiting for ${what}${last}`,
      );
    }
    await new Promise<void>((resolve) => {
      setTimeout(resolve, intervalMs);
    });
  }
}
