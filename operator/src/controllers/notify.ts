/** Events for what a person should notice: a condition turning bad or good, children changed. */
import type { KubeObject } from "../kube/resources.ts";
import type { ApplyOutcome } from "./children.ts";
import type { ConditionUpdate } from "./conditions.ts";
import type { ControllerContext } from "./context.ts";

export function notify(
  ctx: ControllerContext,
  object: KubeObject,
  before: readonly ConditionUpdate[] | undefined,
  after: readonly ConditionUpdate[] | undefined,
  outcome: ApplyOutcome | undefined,
): void {
  const record = (type: "Normal" | "Warning", reason: string, message: string): void => {
    void ctx.events.record(object, type, reason, message);
  };
  if (outcome !== undefined && outcome.applied.length > 0) {
    record("Normal", "Applied", `Applied ${outcome.applied.join(", ")}`);
  }
  // Ready carries the cause; RoutesAccepted is the one problem Ready does not reflect.
  for (const c of (after ?? []).filter((x) => x.type === "Ready" || x.type === "RoutesAccepted")) {
    const old = before?.find((b) => b.type === c.type);
    if (old !== undefined && old.status === c.status && old.reason === c.reason) continue;
    if (c.status === "False" && c.reason !== "Progressing")
      record("Warning", c.reason, `${c.type}: ${c.message}`);
    else if (c.status === "True" && old !== undefined && old.status === "False")
      record("Normal", c.reason, `${c.type}: ${c.message}`);
  }
  // ConfigRejected is bad when True: a sidecar NACKed its xDS config; the Event names the error.
  const rejected = after?.find((x) => x.type === "ConfigRejected");
  const old = before?.find((b) => b.type === "ConfigRejected");
  if (rejected !== undefined && (old?.status !== rejected.status || old.message !== rejected.message)) {
    if (rejected.status === "True") record("Warning", rejected.reason, rejected.message);
    else if (old?.status === "True")
      record("Normal", rejected.reason, `${rejected.type}: ${rejected.message}`);
  }
}
