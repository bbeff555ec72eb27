/**
 * End-to-end scenarios against a real cluster with the chart installed and the images loaded
 * (`npm run e2e:kind` sets that up on kind; any cluster works). Skipped unless
 * TETHER_E2E_KUBECONFIG names the cluster's kubeconfig, so `npm test` on a machine without a cluster
 * does not run them.
 *
 * Each scenario drives traffic through a port-forward to the demo agent: every request makes the
 * agent ask its tether-sidecar for a decision, so the assertion "no failed request, no agent
 * restart" covers the whole path while policy servers die, restart and roll.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster, type PortForward } from "../../src/scenarios/cluster.ts";
import {
  AGENT_PORT,
  PROXY_PORT,
  agent,
  podsOf,
  policyServerCluster,
  proxyRoutes,
} from "../../src/scenarios/fixtures.ts";
import { describeFailures, underLoad } from "../../src/scenarios/load.ts";

const cluster = Cluster.fromEnv();
const SCENARIO_TIMEOUT = 300_000;

function k(): Cluster {
  if (cluster === undefined) throw new Error("TETHER_E2E_KUBECONFIG is not set");
  return cluster;
}

/** Ready pods of the agent and policy servers, and a port-forward to the agent. */
async function deploy(
  ns: string,
  order: "agent-first" | "servers-first",
  replicas = 2,
): Promise<PortForward> {
  const steps =
    order === "agent-first"
      ? [agent(), policyServerCluster({ replicas })]
      : [policyServerCluster({ replicas }), agent()];
  for (const manifest of steps) await k().apply(ns, manifest);
  await k().wait(ns, "deployment/ps-main", "condition=Available");
  await k().wait(ns, "deployment/web", "condition=Available");
  await k().wait(ns, "agent/web", "condition=Ready");
  return k().portForward(ns, "deployment/web", AGENT_PORT);
}

describe.skipIf(cluster === undefined)("end-to-end scenarios (TETHER_E2E_KUBECONFIG)", () => {
  describe("S1: agent created before or after its policy servers", () => {
    for (const order of ["agent-first", "servers-first"] as const) {
      it(
        `${order}: decisions flow, no agent restart`,
        async () => {
          const ns = `tether-e2e-s1-${order}`;
          await k().createNamespace(ns);
          try {
            const forward = await deploy(ns, order);
            try {
              const result = await underLoad(forward.origin, () => Promise.resolve(), { settleMs: 5_000 });
              expect(result.failures, describeFailures(result)).toEqual([]);
              expect(result.requests).toBeGreaterThan(50);
            } finally {
              await forward.stop();
            }
            expect(await k().restarts(ns, podsOf("web", "agent"))).toEqual({ agent: 0, "tether-sidecar": 0 });
          } finally {
            await k().deleteNamespace(ns);
          }
        },
        SCENARIO_TIMEOUT,
      );
    }
  });

  describe("S2–S5: policy servers restarted under load", () => {
    const ns = "tether-e2e-restarts";
    let forward: PortForward | undefined;

    beforeAll(async () => {
      await k().createNamespace(ns);
      forward = await deploy(ns, "servers-first", 3);
    }, SCENARIO_TIMEOUT);

    afterAll(async () => {
      await forward?.stop();
      await k().deleteNamespace(ns);
    }, SCENARIO_TIMEOUT);

    const origin = (): string => {
      if (forward === undefined) throw new Error("no port-forward");
      return forward.origin;
    };
    const serverPods = async (): Promise<string[]> =>
      (await k().pods(ns, podsOf("ps-main", "policy-server"))).map((p) => p.metadata.name);
    const agentRestarts = async (): Promise<Record<string, number>> =>
      k().restarts(ns, podsOf("web", "agent"));

    it(
      "S2: one policy server restarted while the agent serves traffic: no failed request, no agent restart",
      async () => {
        const before = await agentRestarts();
        const [first] = await serverPods();
        const result = await underLoad(origin(), async () => {
          await k().deletePods(ns, [first ?? ""]);
          await k().rolloutStatus(ns, "ps-main");
        });
        expect(result.failures, describeFailures(result)).toEqual([]);
        expect(await agentRestarts()).toEqual(before);
      },
      SCENARIO_TIMEOUT,
    );

    it(
      "S3: every policy server restarted at once: requests are held, none fails within the hold window",
      async () => {
        const before = await agentRestarts();
        const result = await underLoad(origin(), async () => {
          await k().deletePods(ns, await serverPods(), true);
          await k().rolloutStatus(ns, "ps-main");
        });
        expect(result.failures, describeFailures(result)).toEqual([]);
        expect(await agentRestarts()).toEqual(before);
      },
      SCENARIO_TIMEOUT,
    );

    it(
      "S4: one of three policy servers killed under load: no failed request",
      async () => {
        const pods = await serverPods();
        expect(pods).toHaveLength(3);
        const result = await underLoad(
          origin(),
          async () => {
            await k().deletePods(ns, [pods[1] ?? ""], true);
            await k().rolloutStatus(ns, "ps-main");
          },
          { ratePerSecond: 50 },
        );
        expect(result.failures, describeFailures(result)).toEqual([]);
      },
      SCENARIO_TIMEOUT,
    );

    it(
      "S5: rolling restart of the policy servers under load: no failed request",
      async () => {
        const result = await underLoad(
          origin(),
          async () => {
            await k().kubectl(["rollout", "restart", "-n", ns, "deployment/ps-main"]);
            await k().rolloutStatus(ns, "ps-main");
          },
          { ratePerSecond: 50 },
        );
        expect(result.failures, describeFailures(result)).toEqual([]);
      },
      SCENARIO_TIMEOUT,
    );
  });

  // Not written yet: S6 needs a TLS backend peer the demo image does not have; S8 the sidecar's decision cache.
  it.todo("S6: broker with TLS passthrough and a backend loss (needs a TLS backend peer in the demo image)");
  it(
    "S7: proxy routes by path and by extension; a sticky session fails over when its server dies",
    async () => {
      const ns = "tether-e2e-s7";
      await k().createNamespace(ns);
      try {
        const forward = await deploy(ns, "servers-first", 2);
        await forward.stop();
        await k().apply(ns, proxyRoutes());
        await k().wait(ns, "proxyroute/app", "condition=Accepted");
        await k().wait(ns, "proxyroute/pages", "condition=Accepted");
        await k().rolloutStatus(ns, "web");
        const proxy = await k().portForward(ns, "deployment/web", PROXY_PORT);
        try {
          const get = async (path: string): Promise<{ status: number; server: string }> => {
            const res = await fetch(`${proxy.origin}${path}`, {
              headers: { cookie: "JSESSIONID=s7" },
              signal: AbortSignal.timeout(45_000),
            });
            const body = (await res.json()) as { server?: string };
            return { status: res.status, server: body.server ?? "" };
          };
          const decision = "/app/authorize?resource=/orders&action=GET";
          // By path: /app/authorize → /authorize on a demo server; one session sticks to one server.
          const first = await get(decision);
          expect(first.status).toBe(200);
          for (let i = 0; i < 10; i++) expect(await get(decision)).toEqual(first);
          // By extension: *.jsp reaches a demo server too (which does not know the page: its own 404).
          expect((await get("/shop/cart.jsp")).server).not.toBe("");
          // The session's server dies: the session moves to the other server, without a failure.
          await k().deletePods(ns, [first.server], true);
          const moved = await get(decision);
          expect(moved.status).toBe(200);
          expect(moved.server).not.toBe(first.server);
          for (let i = 0; i < 10; i++) expect(await get(decision)).toEqual(moved);
        } finally {
          await proxy.stop();
        }
      } finally {
        await k().deleteNamespace(ns);
      }
    },
    SCENARIO_TIMEOUT,
  );
  it.todo("S8: decision-cache expiry and notification (needs the sidecar's decision cache, issue 5)");
});
