import { describe, expect, it } from "vitest";
import { customResourceDefinition, KINDS, type OpenApiSchema } from "./index.ts";

/** Every node of a structural schema has a type, unless it keeps unknown fields. */
function untypedNodes(node: OpenApiSchema, path: string): string[] {
  const out: string[] = [];
  if (node.type === undefined && node["x-kubernetes-preserve-unknown-fields"] !== true) out.push(path);
  for (const [k, child] of Object.entries(node.properties ?? {}))
    out.push(...untypedNodes(child, `${path}.${k}`));
  if (node.items) out.push(...untypedNodes(node.items, `${path}[]`));
  if (node.additionalProperties) out.push(...untypedNodes(node.additionalProperties, `${path}.*`));
  return out;
}

function undocumented(node: OpenApiSchema, path: string): string[] {
  const out: string[] = [];
  for (const [k, child] of Object.entries(node.properties ?? {})) {
    if (child.description === undefined) out.push(`${path}.${k}`);
    out.push(...undocumented(child, `${path}.${k}`));
  }
  if (node.items) out.push(...undocumented(node.items, `${path}[]`));
  return out;
}

describe("CRD generation", () => {
  for (const kind of KINDS) {
    const crd = customResourceDefinition(kind) as {
      spec: {
        names: { categories: string[]; shortNames?: string[] };
        versions: {
          schema: { openAPIV3Schema: OpenApiSchema };
          subresources: unknown;
          additionalPrinterColumns: { name: string }[];
        }[];
      };
    };
    const version = crd.spec.versions[0]!;
    const root = version.schema.openAPIV3Schema;

    it(`${kind.kind}: structural, documented, in category tether, with status and READY`, () => {
      expect(untypedNodes(root, "")).toEqual([]);
      expect(undocumented(root.properties!.spec!, "spec")).toEqual([]);
      expect(crd.spec.names.categories).toEqual(["tether"]);
      // Agent and Broker scale (kubectl scale, HorizontalPodAutoscaler); the others have no replicas.
      const scale = {
        specReplicasPath: ".spec.replicas",
        statusReplicasPath: ".status.replicas",
        labelSelectorPath: ".status.selector",
      };
      expect(version.subresources).toEqual(
        kind.kind === "Agent" || kind.kind === "Broker" ? { status: {}, scale } : { status: {} },
      );
      expect(version.additionalPrinterColumns[0]!.name).toBe("Ready");
    });

    it(`${kind.kind}: a short name that is not another operator's, and conditions' lastTransitionTime a date-time`, () => {
      const short = crd.spec.names.shortNames ?? [];
      expect(short.length).toBe(1);
      // ECK registers Agent as "agent", Knative Broker as "broker"; plain words collide.
      for (const taken of ["agent", "broker", "route", "ar", "br"]) expect(short).not.toContain(taken);
      const conditions = root.properties!.status!.properties!["conditions"]!.items!;
      expect(conditions.properties!["lastTransitionTime"]!.format).toBe("date-time");
    });
  }

  it("has no column the operator never fills (Broker backends)", () => {
    const broker = KINDS.find((k) => k.kind === "Broker")!;
    expect(broker.printerColumns.map((c) => c.name)).not.toContain("Backends");
  });

  it("PolicyServerCluster has the short name psc and its exactly-one-of rule", () => {
    const crd = customResourceDefinition(KINDS[0]!) as {
      spec: { names: { shortNames: string[] }; versions: { schema: { openAPIV3Schema: OpenApiSchema } }[] };
    };
    expect(crd.spec.names.shortNames).toEqual(["psc"]);
    const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
    expect(spec["x-kubernetes-validations"]?.[0]?.rule).toBe("has(self.managed) != has(self.external)");
  });
});
