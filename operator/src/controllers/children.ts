/**
 * Converging children: compare the desired object with what is there, apply only what differs,
 * and never touch an object of the same name that this resource does not control.
 */
import { applyStatus, serverSideApply } from "../kube/apply.ts";
import { isNotFound, KubeError } from "../kube/errors.ts";
import { isSubset } from "../kube/compare.ts";
import { RESOURCES, resourcePath, type KubeObject, type ResourceType } from "../kube/resources.ts";
import type { Store } from "../kube/store.ts";
import type { ControllerContext } from "./context.ts";
import { sameStatus, type ConditionUpdate } from "./conditions.ts";
import { trimChild } from "./trim.ts";

export interface DesiredChild {
  readonly apiVersion: string;
  readonly kind: "Deployment" | "Service" | "ConfigMap";
  readonly metadata: { name: string; namespace: string };
}

export interface ChildConflict {
  readonly kind: string;
  readonly name: string;
  /** Who controls it instead, for the message. */
  readonly controller: string;
}

export interface ApplyOutcome {
  /** The children as they are now (after any apply), by kind. */
  readonly observed: Map<string, KubeObject>;
  readonly conflicts: ChildConflict[];
  /** Kinds/names applied in this reconcile (empty when nothing changed). */
  readonly applied: string[];
  /** Children the API server refused as invalid (retrying cannot help until the spec changes). */
  readonly rejected: ChildRejection[];
}

export interface ChildRejection {
  readonly kind: string;
  readonly name: string;
  readonly message: string;
}

interface ChildStores {
  readonly resource: ResourceType;
  /** Whole objects, only Tether's (labelled managed-by=tether-operator) for Deployments and ConfigMaps. */
  readonly objects: Store;
  /** Metadata of every object of the type (the Services cache already holds them all). */
  readonly names: Store;
}

function storesFor(ctx: ControllerContext, kind: DesiredChild["kind"]): ChildStores {
  const s = ctx.stores;
  if (kind === "Deployment")
    return { resource: RESOURCES.deployments, objects: s.deployments, names: s.deploymentNames };
  if (kind === "Service") return { resource: RESOURCES.services, objects: s.services, names: s.services };
  return { resource: RESOURCES.configMaps, objects: s.configMaps, names: s.configMapNames };
}

export function controllerOf(object: KubeObject): string | undefined {
  const ref = object.metadata.ownerReferences?.find((r) => r.controller === true);
  return ref === undefined ? undefined : `${ref.kind} ${ref.name}`;
}

export function isControlledBy(object: KubeObject, ownerUid: string): boolean {
  return object.metadata.ownerReferences?.some((r) => r.controller === true && r.uid === ownerUid) ?? false;
}

/**
 * What is there under the child's name: our cached object, another object's metadata (a name
 * conflict, or our child without its labels), or nothing. No request in the common cases.
 */
async function observe(
  ctx: ControllerContext,
  stores: ChildStores,
  desired: DesiredChild,
): Promise<KubeObject | undefined> {
  const { namespace, name } = desired.metadata;
  const cached = stores.objects.get(namespace, name);
  if (cached !== undefined) return cached;
  const meta = stores.names.get(namespace, name);
  if (meta === undefined) return undefined;
  // Ours but not in the labelled cache (someone removed a label): read it whole to compare.
  try {
    const whole = await ctx.client.request<KubeObject>("GET", resourcePath(stores.resource, namespace, name));
    return trimChild(desired.kind, whole);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export async function applyChildren(
  ctx: ControllerContext,
  ownerUid: string,
  children: readonly DesiredChild[],
): Promise<ApplyOutcome> {
  const observed = new Map<string, KubeObject>();
  const conflicts: ChildConflict[] = [];
  const applied: string[] = [];
  const rejected: ChildRejection[] = [];
  // Children are independent: converge them in parallel (a cold start is bound by round trips).
  const results = await Promise.all(children.map((child) => convergeChild(ctx, ownerUid, child)));
  results.forEach((result, i) => {
    const child = children[i];
    if (child === undefined) return;
    if (result.conflict !== undefined) conflicts.push(result.conflict);
    if (result.object !== undefined) observed.set(`${child.kind}/${child.metadata.name}`, result.object);
    if (result.applied) applied.push(`${child.kind} ${child.metadata.name}`);
    if (result.rejected !== undefined) {
      rejected.push({ kind: child.kind, name: child.metadata.name, message: result.rejected });
    }
  });
  return { observed, conflicts, applied, rejected };
}

interface ChildResult {
  readonly object?: KubeObject;
  readonly conflict?: ChildConflict;
  readonly applied: boolean;
  readonly rejected?: string;
}

async function convergeChild(
  ctx: ControllerContext,
  ownerUid: string,
  child: DesiredChild,
): Promise<ChildResult> {
  const stores = storesFor(ctx, child.kind);
  const meta =
    stores.objects.get(child.metadata.namespace, child.metadata.name) ??
    stores.names.get(child.metadata.namespace, child.metadata.name);
  if (meta !== undefined && !isControlledBy(meta, ownerUid)) {
    const controller = controllerOf(meta) ?? "no controller";
    return { conflict: { kind: child.kind, name: child.metadata.name, controller }, applied: false };
  }
  const current = await observe(ctx, stores, child);
  if (current !== undefined && !isControlledBy(current, ownerUid)) {
    const controller = controllerOf(current) ?? "no controller";
    return { conflict: { kind: child.kind, name: child.metadata.name, controller }, applied: false };
  }
  // Lists leave apiVersion and kind out of their items: compare what the object holds.
  // Both sides trimmed alike (trim.ts): the caches hold digests where the whole content was.
  const wanted = trimChild(child.kind, child as unknown as KubeObject);
  if (current !== undefined && isSubset({ ...wanted, apiVersion: undefined, kind: undefined }, current)) {
    return { object: current, applied: false };
  }
  let result: KubeObject;
  try {
    result = await serverSideApply(ctx.client, stores.resource, child as unknown as KubeObject);
  } catch (error) {
    // 422 Invalid / 400 BadRequest: the rendered object (e.g. the user's pod template) is not
    // acceptable; say so in status instead of retrying forever. Anything else is retried.
    if (error instanceof KubeError && (error.status === 422 || error.status === 400)) {
      return { object: current, applied: false, rejected: error.message };
    }
    throw error;
  }
  stores.objects.remember(result);
  return { object: result, applied: true };
}

/** One line per child the API server refused, with its reason. */
function rejectionMessage(rejected: readonly ChildRejection[], namespace: string): string {
  return rejected.map((r) => `${r.kind} ${namespace}/${r.name} was rejected: ${r.message}`).join("; ");
}

function conflictMessage(conflicts: readonly ChildConflict[], namespace: string, ownerKind: string): string {
  return conflicts
    .map(
      (c) =>
        `${c.kind} ${namespace}/${c.name} already exists and is controlled by ${c.controller}, not this ${ownerKind}; rename or delete it`,
    )
    .join("; ");
}

/**
 * The False condition `type` of an owner whose children could not all be applied: the API server
 * refused one (ApplyFailed) or another controller owns the name (NameConflict); undefined otherwise.
 */
export function applyFailure(
  outcome: ApplyOutcome,
  namespace: string,
  ownerKind: string,
  type = "Ready",
): ConditionUpdate | undefined {
  if (outcome.rejected.length > 0) {
    return {
      type,
      status: "False",
      reason: "ApplyFailed",
      message: rejectionMessage(outcome.rejected, namespace),
    };
  }
  if (outcome.conflicts.length > 0) {
    return {
      type,
      status: "False",
      reason: "NameConflict",
      message: conflictMessage(outcome.conflicts, namespace, ownerKind),
    };
  }
  return undefined;
}

/** Writes status through the status subresource, only when it differs from what is stored. */
export async function writeStatusIfChanged(
  ctx: ControllerContext,
  resource: ResourceType,
  store: Store,
  object: KubeObject,
  status: unknown,
): Promise<boolean> {
  if (sameStatus(object["status"], status)) return false;
  const result = await applyStatus(ctx.client, resource, object, status);
  store.remember(result);
  return true;
}
