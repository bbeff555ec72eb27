/**
 * What the children caches keep of each object: only what reconciles read and compare. A child is
 * compared trimmed on both sides (the desired object goes through the same function), so a cache
 * without the bulky parts still tells "already as wanted" from "needs an apply":
 * - a ConfigMap's data values become digests (data is never defaulted, so equal digests are equal data);
 * - a Deployment's pod template becomes its `tether.dev/pod-template-hash` annotation, which the
 *   renderer stamps from the template's content (the rest of the spec and the status stay);
 * - the metadata-only caches keep names, owners and versions, not labels' neighbours, annotations.
 */
import { createHash } from "node:crypto";
import type { KubeObject } from "../kube/resources.ts";
import { POD_TEMPLATE_HASH_ANNOTATION } from "../render/index.ts";

const DIGEST = "sha256:";

function digest(value: string): string {
  return DIGEST + createHash("sha256").update(value).digest("base64url");
}

/** Already trimmed (this object, or the same object met again): returned as is. */
const trimmed = new WeakSet<object>();

function once(object: KubeObject, trim: (o: KubeObject) => KubeObject): KubeObject {
  if (trimmed.has(object)) return object;
  const out = trim(object);
  trimmed.add(out);
  return out;
}

export function trimConfigMap(object: KubeObject): KubeObject {
  return once(object, (o) => {
    const data = o["data"] as Record<string, string> | undefined;
    const binary = o["binaryData"] as Record<string, string> | undefined;
    const out: KubeObject = { ...o };
    if (data !== undefined)
      out["data"] = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, digest(v)]));
    if (binary !== undefined)
      out["binaryData"] = Object.fromEntries(Object.entries(binary).map(([k, v]) => [k, digest(v)]));
    return out;
  });
}

export function trimDeployment(object: KubeObject): KubeObject {
  return once(object, (o) => {
    const spec = o["spec"] as
      { template?: { metadata?: { annotations?: Record<string, string> } } } | undefined;
    if (spec?.template === undefined) return o;
    const hash = spec.template.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION];
    return {
      ...o,
      spec: {
        ...spec,
        template: {
          metadata: { annotations: hash === undefined ? {} : { [POD_TEMPLATE_HASH_ANNOTATION]: hash } },
        },
      },
    };
  });
}

/** Metadata-only caches answer "which names exist, and who controls them". */
export function trimMetadata(object: KubeObject): KubeObject {
  return once(object, (o) => {
    const m = o.metadata;
    return {
      metadata: {
        name: m.name,
        ...(m.namespace === undefined ? {} : { namespace: m.namespace }),
        ...(m.uid === undefined ? {} : { uid: m.uid }),
        ...(m.resourceVersion === undefined ? {} : { resourceVersion: m.resourceVersion }),
        ...(m.deletionTimestamp === undefined ? {} : { deletionTimestamp: m.deletionTimestamp }),
        ...(m.labels === undefined ? {} : { labels: m.labels }),
        ...(m.ownerReferences === undefined ? {} : { ownerReferences: m.ownerReferences }),
      },
    };
  });
}

/** The trim of a child kind's cache, for the desired side of a comparison. */
export function trimChild(kind: string, object: KubeObject): KubeObject {
  if (kind === "ConfigMap") return trimConfigMap(object);
  if (kind === "Deployment") return trimDeployment(object);
  return object;
}
