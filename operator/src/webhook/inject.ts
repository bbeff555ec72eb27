/**
 * Sidecar injection into a Pod at admission: the Agent's renderer applied to the pod's own spec, and
 * the difference written as a JSON Patch (RFC 6902). Pure: no I/O, no clock.
 */
import type { AgentSpec } from "../api/index.ts";
import { renderAgentPodTemplate, type AgentInput, type JsonObject } from "../render/index.ts";

import { AGENT_ANNOTATION } from "../render/meta.ts";

export { AGENT_ANNOTATION };

export interface JsonPatchOperation {
  readonly op: "add";
  readonly path: string;
  readonly value: unknown;
}

/** The Agent's input for the renderer, minus the template: the pod supplies that. */
export type InjectionInput = Omit<AgentInput, "spec"> & { readonly spec: AgentSpec };

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * `want` holds in `have`: every field `want` sets has the same value there. The API server defaults
 * what we inject (terminationMessagePath, a probe's scheme, a volume's defaultMode…); those extra
 * fields must not make an injected pod look different from what we would inject now.
 */
export function containedIn(want: unknown, have: unknown): boolean {
  if (Array.isArray(want)) {
    return (
      Array.isArray(have) && want.length === have.length && want.every((w, i) => containedIn(w, have[i]))
    );
  }
  if (isObject(want)) {
    return isObject(have) && Object.entries(want).every(([k, v]) => containedIn(v, have[k]));
  }
  return want === have;
}

function nameOf(value: unknown): string | undefined {
  return isObject(value) && typeof value["name"] === "string" ? value["name"] : undefined;
}

/** What the field should be: the rendered value, keeping the pod's (defaulted) entries it already contains. */
function settle(rendered: unknown, current: unknown): unknown {
  if (!Array.isArray(rendered)) return containedIn(rendered, current) ? current : rendered;
  const existing: readonly unknown[] = Array.isArray(current) ? (current as unknown[]) : [];
  return (rendered as unknown[]).map((item) => {
    const name = nameOf(item);
    const mine = name === undefined ? undefined : existing.find((e) => nameOf(e) === name);
    return mine !== undefined && containedIn(item, mine) ? mine : item;
  });
}

/** RFC 6901: `~` and `/` in a key. */
function pointer(...keys: string[]): string {
  return keys.map((k) => `/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`).join("");
}

/**
 * The patch that gives `pod` the Agent's sidecar, its config and Secret volumes, and the agent
 * environment in every container. Empty when the pod already has all of it (idempotent, so a
 * reinvocation after another webhook changes nothing of ours that is still in place).
 */
export function injectionPatch(pod: JsonObject, input: InjectionInput): JsonPatchOperation[] {
  const podSpec = isObject(pod["spec"]) ? pod["spec"] : {};
  // The renderer's template is the pod's spec; metadata is left alone (the workload owns its
  // labels: the Agent's selector labels on it would make the Agent's own Deployment count it).
  const template = { spec: structuredClone(podSpec) } as AgentSpec["template"];
  const rendered = renderAgentPodTemplate({ ...input, spec: { ...input.spec, template } }).spec;
  const patch: JsonPatchOperation[] = [];
  for (const [field, value] of Object.entries(rendered)) {
    const settled = settle(value, podSpec[field]);
    if (settled !== podSpec[field] && !sameJson(settled, podSpec[field])) {
      // `add` on an object member sets it whether or not it exists.
      patch.push({ op: "add", path: pointer("spec", field), value: settled });
    }
  }
  return patch;
}

function sameJson(a: unknown, b: unknown): boolean {
  return containedIn(a, b) && containedIn(b, a);
}

/** The Agent a pod names, or undefined when it names none. */
export function requestedAgent(pod: JsonObject): string | undefined {
  const metadata = isObject(pod["metadata"]) ? pod["metadata"] : {};
  const annotations = isObject(metadata["annotations"]) ? metadata["annotations"] : {};
  const name = annotations[AGENT_ANNOTATION];
  return typeof name === "string" ? name.trim() : undefined;
}
