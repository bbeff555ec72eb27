import { describe, expect, it } from "vitest";
import { psc } from "../../test/fixtures/specs.ts";
import { renderPolicyServerCluster } from "./policy-server-cluster.ts";
import { POD_TEMPLATE_HASH_ANNOTATION } from "./meta.ts";

const owner = { kind: "PolicyServerCluster" as const, name: "ps-main", namespace: "default", uid: "uid-ps" };
const labels = {
  "app.kubernetes.io/name": "tether",
  "app.kubernetes.io/instance": "ps-main",
  "app.kubernetes.io/component": "policy-server",
};

describe("renderPolicyServerCluster", () => {
  it("renders a Deployment of the template and a headless Service, both owned", () => {
    const out = renderPolicyServerCluster(
      owner,
      psc({
        port: 8080,
        managed: {
          replicas: 3,
          template: {
            metadata: { labels: { tier: "ps" } },
            spec: { containers: [{ name: "ps", image: "ps:1" }] },
          },
        },
      }),
    );
    expect(out).toBeDefined();
    const { deployment, service } = out!;
    expect(deployment.metadata).toMatchObject({
      name: "ps-main",
      namespace: "default",
      labels: { ...labels, "app.kubernetes.io/managed-by": "tether-operator" },
      ownerReferences: [
        {
          kind: "PolicyServerCluster",
          name: "ps-main",
          uid: "uid-ps",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    });
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.selector.matchLabels).toEqual(labels);
    expect(deployment.spec.template.metadata.labels).toEqual({ tier: "ps", ...labels });
    expect(deployment.spec.template.metadata.annotations?.[POD_TEMPLATE_HASH_ANNOTATION]).toMatch(
      /^[0-9a-f]{16}$/,
    );
    // Server-side drain by default: a 5 s preStop sleep, a 30 s grace period.
    expect(deployment.spec.template.spec.containers).toEqual([
      { name: "ps", image: "ps:1", lifecycle: { preStop: { sleep: { seconds: 5 } } } },
    ]);
    expect(deployment.spec.template.spec["terminationGracePeriodSeconds"]).toBe(30);
    expect(service.metadata.name).toBe("ps-main");
    expect(service.spec).toEqual({
      clusterIP: "None",
      selector: labels,
      ports: [{ name: "policy-server", port: 8080, targetPort: 8080, protocol: "TCP" }],
    });
  });

  it("renders nothing for an external cluster", () => {
    expect(
      renderPolicyServerCluster(
        owner,
        psc({ managed: undefined, external: { servers: [{ host: "ps1.corp" }] } }),
      ),
    ).toBeUndefined();
  });

  it("changes the template hash only with the template", () => {
    const a = renderPolicyServerCluster(owner, psc())!.deployment;
    const scaled = renderPolicyServerCluster(
      owner,
      psc({
        managed: {
          replicas: 5,
          template: { spec: { containers: [{ name: "policy-server", image: "ps:1" }] } },
        },
      }),
    )!.deployment;
    const newImage = renderPolicyServerCluster(
      owner,
      psc({
        managed: {
          replicas: 2,
          template: { spec: { containers: [{ name: "policy-server", image: "ps:2" }] } },
        },
      }),
    )!.deployment;
    const hash = (d: typeof a): string | undefined =>
      d.spec.template.metadata.annotations?.[POD_TEMPLATE_HASH_ANNOTATION];
    expect(hash(scaled)).toBe(hash(a));
    expect(hash(newImage)).not.toBe(hash(a));
  });

  it("drains terminating pods as spec.drain says; the template's own preStop and grace period win", () => {
    const render = (drain: object, template: object): Record<string, unknown> =>
      renderPolicyServerCluster(owner, psc({ managed: { replicas: 1, template }, drain }))!.deployment.spec
        .template.spec;
    const plain = { spec: { containers: [{ name: "a", image: "a:1" }] } };
    const tuned = render({ preStopDelay: "1500ms", gracePeriod: "1s" }, plain);
    // Rounded up to whole seconds; the grace period always outlasts the sleep.
    expect(tuned["containers"]).toEqual([
      { name: "a", image: "a:1", lifecycle: { preStop: { sleep: { seconds: 2 } } } },
    ]);
    expect(tuned["terminationGracePeriodSeconds"]).toBe(3);
    const own = {
      spec: {
        terminationGracePeriodSeconds: 90,
        containers: [{ name: "a", image: "a:1", lifecycle: { preStop: { exec: { command: ["stop"] } } } }],
      },
    };
    const kept = render({}, own);
    expect(kept["containers"]).toEqual(own.spec.containers);
    expect(kept["terminationGracePeriodSeconds"]).toBe(90);
    expect(render({ preStopDelay: "0s" }, plain)["containers"]).toEqual(plain.spec.containers);
  });
});
