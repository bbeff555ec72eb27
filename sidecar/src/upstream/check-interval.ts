// When the next active health check of a host runs, as Envoy's health checker decides it: by the
// last check's result and whether that result changed the host's state, completed a change, or left a
// change pending (a threshold not reached yet). Pure, so the schedule is tested without timers.
import type { HealthCheckConfig } from "@tether/envoy";

/**
 * What the last check did. `pending`: it counted toward a change the threshold has not made yet (a
 * failure of a host still in rotation, a pass of a host still out); `changed`: it moved the host in or
 * out of rotation (or was the host's first result); `unchanged`: it confirmed the host's state.
 */
export type CheckTransition = "changed" | "pending" | "unchanged";

export interface CheckOutcome {
  readonly passed: boolean;
  readonly transition: CheckTransition;
}

/** Before the first result (never used for a delay: a new host is checked at once). */
export const FIRST_CHECK: CheckOutcome = { passed: true, transition: "unchanged" };

/** Classifies a check from the host's out-of-rotation flag before and after it was recorded. */
export function checkOutcome(
  passed: boolean,
  wasFailed: boolean,
  nowFailed: boolean,
  firstResult: boolean,
): CheckOutcome {
  let transition: CheckTransition;
  // Envoy counts a host's first result as a change even when the flag stays (clearPendingFlag).
  if (firstResult || wasFailed !== nowFailed) transition = "changed";
  else if (passed ? wasFailed : !wasFailed) transition = "pending";
  else transition = "unchanged";
  return { passed, transition };
}

/**
 * Milliseconds to the next check. Before the cluster's first request: `no_traffic_interval`. Then a
 * failed check schedules `unhealthy_edge_interval` while the host is still in rotation (failures
 * below `unhealthy_threshold`), else `unhealthy_interval`; a passed check schedules
 * `healthy_edge_interval` while the host is still out (passes below `healthy_threshold`), else
 * `interval`. Defaults: unhealthy_interval = interval, unhealthy_edge_interval = unhealthy_interval,
 * healthy_edge_interval = interval.
 */
export function nextCheckDelay(
  config: Pick<
    HealthCheckConfig,
    | "interval"
    | "no_traffic_interval"
    | "unhealthy_interval"
    | "unhealthy_edge_interval"
    | "healthy_edge_interval"
  >,
  hadTraffic: boolean,
  last: CheckOutcome,
): number {
  if (!hadTraffic) return config.no_traffic_interval;
  const pending = last.transition === "pending";
  if (last.passed) return pending ? (config.healthy_edge_interval ?? config.interval) : config.interval;
  const unhealthy = config.unhealthy_interval ?? config.interval;
  return pending ? (config.unhealthy_edge_interval ?? unhealthy) : unhealthy;
}
