/** metav1.Conditions: lastTransitionTime moves only when a condition's status changes. */
import type { Condition } from "../api/index.ts";
import { canonicalJson } from "../render/index.ts";

export interface ConditionUpdate {
  readonly type: string;
  readonly status: "True" | "False" | "Unknown";
  readonly reason: string;
  readonly message: string;
}

/** A status object as the controllers write it. */
export type StatusWithConditions = { conditions: Condition[] } & Record<string, unknown>;

/** RFC 3339 without fractions, as metav1.Time serializes. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function mergeConditions(
  previous: readonly Condition[] | undefined,
  updates: readonly ConditionUpdate[],
  generation: number,
  now: Date,
): Condition[] {
  return updates.map((u) => {
    const old = previous?.find((c) => c.type === u.type);
    const lastTransitionTime =
      old !== undefined && old.status === u.status ? old.lastTransitionTime : rfc3339(now);
    return {
      type: u.type,
      status: u.status,
      observedGeneration: generation,
      lastTransitionTime,
      reason: u.reason,
      message: u.message,
    };
  });
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Deep equality as the API server would store it (key order ignored). */
export function sameStatus(a: unknown, b: unknown): boolean {
  return canonicalJson(a ?? {}) === canonicalJson(b ?? {});
}

/** The status of a resource whose spec cannot be parsed: Ready False, reason InvalidSpec. */
export function invalidSpecStatus(
  previous: readonly Condition[] | undefined,
  generation: number,
  message: string,
  now: Date,
): StatusWithConditions {
  return {
    observedGeneration: generation,
    conditions: mergeConditions(
      previous,
      [{ type: "Ready", status: "False", reason: "InvalidSpec", message }],
      generation,
      now,
    ),
  };
}

/**
 * ConfigRejected as the xDS server last heard it; with nothing heard yet (say, after a restart) the
 * condition in status stays as it is until a sidecar ACKs or NACKs again.
 */
export function configRejectedCondition(
  heard: ConditionUpdate | undefined,
  previous: readonly Condition[] | undefined,
): ConditionUpdate[] {
  if (heard !== undefined) return [heard];
  const old = findCondition(previous, "ConfigRejected");
  return old === undefined
    ? []
    : [{ type: old.type, status: old.status, reason: old.reason, message: old.message }];
}
