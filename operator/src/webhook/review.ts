/**
 * admission.k8s.io/v1 AdmissionReview: the request the API server sends and the response it takes.
 * Pure: parsing and building only.
 */
import type { JsonObject } from "../render/index.ts";
import type { JsonPatchOperation } from "./inject.ts";

export const ADMISSION_API_VERSION = "admission.k8s.io/v1";

export interface AdmissionRequest {
  readonly uid: string;
  readonly operation: string;
  readonly namespace: string;
  readonly kind: { readonly group: string; readonly version: string; readonly kind: string };
  readonly object: JsonObject;
  readonly dryRun: boolean;
}

export class ReviewError extends Error {
  readonly code = "TETHER_ERR_ADMISSION_REVIEW";
  constructor(message: string) {
    super(message);
    this.name = "ReviewError";
  }
}

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The request of an AdmissionReview body; a ReviewError naming the field when it is not one. */
export function parseAdmissionReview(body: unknown): AdmissionRequest {
  if (!isObject(body)) throw new ReviewError("body: not a JSON object");
  if (body["apiVersion"] !== ADMISSION_API_VERSION || body["kind"] !== "AdmissionReview") {
    throw new ReviewError(
      `apiVersion/kind: expected ${ADMISSION_API_VERSION} AdmissionReview, got ${String(body["apiVersion"])} ${String(body["kind"])} (set admissionReviewVersions: [v1])`,
    );
  }
  const request = body["request"];
  if (!isObject(request)) throw new ReviewError("request: missing");
  const uid = request["uid"];
  if (typeof uid !== "string" || uid === "") throw new ReviewError("request.uid: missing");
  const kind = isObject(request["kind"]) ? request["kind"] : {};
  const object = request["object"];
  return {
    uid,
    operation: typeof request["operation"] === "string" ? request["operation"] : "",
    namespace: typeof request["namespace"] === "string" ? request["namespace"] : "",
    kind: {
      group: typeof kind["group"] === "string" ? kind["group"] : "",
      version: typeof kind["version"] === "string" ? kind["version"] : "",
      kind: typeof kind["kind"] === "string" ? kind["kind"] : "",
    },
    object: isObject(object) ? object : {},
    dryRun: request["dryRun"] === true,
  };
}

export type AdmissionDecision =
  | { readonly allowed: true; readonly patch?: readonly JsonPatchOperation[]; readonly warning?: string }
  | { readonly allowed: false; readonly code: number; readonly message: string };

/** The AdmissionReview response for `uid`: allowed (with a JSONPatch when there is one) or denied. */
export function admissionResponse(uid: string, decision: AdmissionDecision): JsonObject {
  const response: JsonObject = { uid, allowed: decision.allowed };
  if (decision.allowed) {
    if (decision.patch !== undefined && decision.patch.length > 0) {
      response["patchType"] = "JSONPatch";
      response["patch"] = Buffer.from(JSON.stringify(decision.patch)).toString("base64");
    }
    if (decision.warning !== undefined) response["warnings"] = [decision.warning];
  } else {
    response["status"] = { code: decision.code, message: decision.message };
  }
  return { apiVersion: ADMISSION_API_VERSION, kind: "AdmissionReview", response };
}
