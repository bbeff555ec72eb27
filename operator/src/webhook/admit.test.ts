import { describe, expect, it } from "vitest";
import { agent, psc } from "../../test/fixtures/specs.ts";
import type { InjectionResolution } from "../controllers/injection.ts";
import { admitPod } from "./admit.ts";
import { admissionResponse, parseAdmissionReview, ReviewError, type AdmissionRequest } from "./review.ts";

const resolved: InjectionResolution = {
  ok: true,
  input: {
    owner: { kind: "Agent", name: "web", namespace: "shop", uid: "u" },
    spec: agent(),
    policyServers: { name: "ps", spec: psc() },
    routes: [],
    options: { sidecarImage: "img", clusterDomain: "cluster.local" },
  },
};

function review(annotations?: Record<string, string>, operation = "CREATE"): unknown {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "3f7c",
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      operation,
      namespace: "shop",
      object: {
        metadata: { generateName: "web-", ...(annotations === undefined ? {} : { annotations }) },
        spec: { containers: [{ name: "httpd", image: "httpd:2.4" }] },
      },
    },
  };
}

const request = (annotations?: Record<string, string>, operation?: string): AdmissionRequest =>
  parseAdmissionReview(review(annotations, operation));

describe("admitPod", () => {
  const asked: string[] = [];
  const options = {
    synced: () => true,
    resolve: (namespace: string, name: string): InjectionResolution => {
      asked.push(`${namespace}/${name}`);
      return name === "web"
        ? resolved
        : { ok: false, message: `Agent ${name} not found in namespace ${namespace}` };
    },
  };

  it("lets a pod that names no Agent through untouched", () => {
    expect(admitPod(request(), options)).toEqual({ allowed: true });
    expect(admitPod(request({ other: "x" }), options)).toEqual({ allowed: true });
  });

  it("only mutates at CREATE", () => {
    expect(admitPod(request({ "tether.dev/agent": "web" }, "UPDATE"), options)).toEqual({ allowed: true });
  });

  it("patches a pod naming an Agent that resolves", () => {
    const decision = admitPod(request({ "tether.dev/agent": "web" }), options);
    expect(decision.allowed).toBe(true);
    expect(decision.allowed && decision.patch?.map((op) => op.path)).toEqual(
      expect.arrayContaining(["/spec/initContainers", "/spec/containers", "/spec/volumes"]),
    );
    expect(asked).toContain("shop/web");
  });

  it("denies a pod naming a missing Agent, saying which and what to do", () => {
    const decision = admitPod(request({ "tether.dev/agent": "nope" }), options);
    expect(decision).toEqual({
      allowed: false,
      code: 403,
      message:
        "annotation tether.dev/agent: Agent nope not found in namespace shop; the pod would run without its sidecar (create the Agent, or remove the annotation)",
    });
  });

  it("denies a name that cannot be an Agent's, and asks to retry while the caches are not synced", () => {
    const bad = admitPod(request({ "tether.dev/agent": "Web_1" }), options);
    expect(bad).toMatchObject({ allowed: false, code: 400 });
    expect(!bad.allowed && bad.message).toContain('"Web_1" is not an Agent name');
    const starting = admitPod(request({ "tether.dev/agent": "web" }), { ...options, synced: () => false });
    expect(starting).toMatchObject({ allowed: false, code: 503 });
  });
});

describe("AdmissionReview", () => {
  it("names what is wrong with a request", () => {
    expect(() => parseAdmissionReview([])).toThrow(ReviewError);
    expect(() =>
      parseAdmissionReview({ apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview" }),
    ).toThrow(/admissionReviewVersions: \[v1\]/);
    expect(() =>
      parseAdmissionReview({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }),
    ).toThrow("request: missing");
    expect(() =>
      parseAdmissionReview({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: {} }),
    ).toThrow("request.uid: missing");
  });

  it("answers with the request's uid, a base64 JSONPatch when there is one, a status when denied", () => {
    const patch = [{ op: "add" as const, path: "/spec/volumes", value: [] }];
    const allowed = admissionResponse("u1", { allowed: true, patch }) as {
      response: Record<string, unknown>;
    };
    expect(allowed).toMatchObject({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" });
    expect(allowed.response["uid"]).toBe("u1");
    expect(allowed.response["patchType"]).toBe("JSONPatch");
    expect(JSON.parse(Buffer.from(String(allowed.response["patch"]), "base64").toString("utf8"))).toEqual(
      patch,
    );
    expect(admissionResponse("u2", { allowed: true, patch: [] })).toEqual({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "u2", allowed: true },
    });
    expect(admissionResponse("u3", { allowed: false, code: 403, message: "no" })).toEqual({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "u3", allowed: false, status: { code: 403, message: "no" } },
    });
  });
});
