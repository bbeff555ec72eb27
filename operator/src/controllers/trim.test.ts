import { describe, expect, it } from "vitest";
import { isSubset } from "../kube/compare.ts";
import type { KubeObject } from "../kube/resources.ts";
import { POD_TEMPLATE_HASH_ANNOTATION } from "../render/index.ts";
import { trimConfigMap, trimDeployment, trimMetadata } from "./trim.ts";

const meta = { name: "web-sidecar", namespace: "ns", uid: "u1", resourceVersion: "7" };

describe("children caches, trimmed", () => {
  it("compares a ConfigMap by its data's digests: equal data matches, any change does not", () => {
    const live = trimConfigMap({ metadata: meta, data: { "envoy.yaml": "a: 1\n".repeat(500) } });
    expect(JSON.stringify(live).length).toBeLessThan(300);
    const same = trimConfigMap({
      metadata: { name: "web-sidecar", namespace: "ns" },
      data: { "envoy.yaml": "a: 1\n".repeat(500) },
    });
    const changed = trimConfigMap({
      metadata: { name: "web-sidecar", namespace: "ns" },
      data: { "envoy.yaml": "a: 2\n" },
    });
    expect(isSubset(same, live)).toBe(true);
    expect(isSubset(changed, live)).toBe(false);
    // Trimming what is already trimmed changes nothing (remember() and the watch meet the same object).
    expect(trimConfigMap(live)).toBe(live);
  });

  it("compares a Deployment's pod template by its hash annotation, the rest of the spec as it is", () => {
    const template = (hash: string, image: string): object => ({
      metadata: { annotations: { [POD_TEMPLATE_HASH_ANNOTATION]: hash } },
      spec: { containers: [{ name: "agent", image }] },
    });
    const deployment = (hash: string, image: string, extra: object = {}): KubeObject => ({
      metadata: meta,
      spec: { replicas: 2, template: template(hash, image), ...extra },
    });
    // The live object carries server defaults the desired one does not.
    const live = trimDeployment(deployment("h1", "agent:1", { revisionHistoryLimit: 10 }));
    expect(JSON.stringify(live)).not.toContain("agent:1");
    expect(isSubset(trimDeployment(deployment("h1", "agent:1")), live)).toBe(true);
    expect(isSubset(trimDeployment(deployment("h2", "agent:2")), live)).toBe(false);
    const scaled: KubeObject = { metadata: meta, spec: { replicas: 3, template: template("h1", "agent:1") } };
    expect(isSubset(trimDeployment(scaled), live)).toBe(false);
  });

  it("keeps in a metadata cache only names, owners and versions", () => {
    const trimmed = trimMetadata({
      metadata: {
        ...meta,
        annotations: { big: "x".repeat(1000) },
        ownerReferences: [
          { apiVersion: "tether.dev/v1alpha1", kind: "Agent", name: "web", uid: "a1", controller: true },
        ],
      },
    });
    expect(trimmed.metadata.annotations).toBeUndefined();
    expect(trimmed.metadata.ownerReferences?.[0]?.uid).toBe("a1");
    expect(trimmed.metadata.resourceVersion).toBe("7");
  });
});
