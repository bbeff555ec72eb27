/**
 * The admission decision for one Pod: untouched when it names no Agent, patched with the Agent's
 * sidecar when it names one that resolves, denied (with the reason) when it names one that does not.
 */
import type { InjectionResolution } from "../controllers/injection.ts";
import { AGENT_ANNOTATION, injectionPatch, requestedAgent } from "./inject.ts";
import type { AdmissionDecision, AdmissionRequest } from "./review.ts";

/** A Kubernetes object name (DNS subdomain), as an Agent's name must be. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface AdmitOptions {
  /** False until the operator's caches have listed: an Agent not yet seen may exist. */
  readonly synced: () => boolean;
  readonly resolve: (namespace: string, agent: string) => InjectionResolution;
}

export function admitPod(request: AdmissionRequest, options: AdmitOptions): AdmissionDecision {
  // The configuration sends only Pod CREATE; anything else passes untouched.
  if (request.kind.kind !== "Pod" || request.kind.group !== "" || request.operation !== "CREATE") {
    return { allowed: true };
  }
  const agent = requestedAgent(request.object);
  if (agent === undefined) return { allowed: true };
  const where = `annotation ${AGENT_ANNOTATION}`;
  if (agent === "" || agent.length > 253 || !DNS_SUBDOMAIN.test(agent)) {
    return {
      allowed: false,
      code: 400,
      message: `${where}: "${agent}" is not an Agent name (a DNS subdomain)`,
    };
  }
  if (!options.synced()) {
    // 503: the ReplicaSet or Job controller creates the pod again with back-off.
    return {
      allowed: false,
      code: 503,
      message: `${where}: the tether operator is starting (caches not synced); try again`,
    };
  }
  const resolution = options.resolve(request.namespace, agent);
  if (!resolution.ok) {
    return {
      allowed: false,
      code: 403,
      message: `${where}: ${resolution.message}; the pod would run without its sidecar (create the Agent, or remove the annotation)`,
    };
  }
  return { allowed: true, patch: injectionPatch(request.object, resolution.input) };
}
