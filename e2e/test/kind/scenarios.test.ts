/**
 * End-to-end scenarios S1–S16 against a real cluster with the chart installed and the images loaded
 * (`npm run e2e:kind` sets that up on kind, `npm run e2e:local` on the local one-node cluster; any
 * cluster works). Skipped unless TETHER_E2E_KUBECONFIG names the cluster's kubeconfig, so
 * `npm test` on a machine without a cluster does not run them.
 *
 * Traffic comes from a client pod (the demo image's `load` command, `kubectl exec`ed into a pod of
 * the demo image) through Services, while the suite disturbs the servers. Each scenario prints one
 * row — requests, failures, p50/p99/max latency, slow answers, time to recover, who served — and
 * the suite prints the whole table at the end and leaves it in .tether/e2e/scenarios.md
 * (TETHER_E2E_REPORT to choose the file). Every request to the demo agent makes it ask its
 * tether-sidecar for a decision, so "no failed request, no agent restart" covers the whole path.
 */
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { summarizeLoad } from "../../src/demo/load.ts";
import { metricSum } from "../../src/demo/sidecar.ts";
import { formatMs } from "../../src/demo/summary.ts";
import type { RequestRecord } from "../../src/demo/traffic.ts";
import { ClientPod, jsonLines, type HttpAnswer } from "../../src/scenarios/client.ts";
import { Cluster, type PodJson } from "../../src/scenarios/cluster.ts";
import { FirstAnswerTimeout, FirstAnswerWatch, type FirstAnswer } from "../../src/scenarios/first-answer.ts";
import {
  AGENT_PORT,
  BROKER,
  CA_MOUNT,
  PROXY_PORT,
  agent,
  agentService,
  broker,
  caConfigMap,
  caSecret,
  httpBackends,
  podsOf,
  policyServerCluster,
  prefixRoute,
  proxyRoutes,
  tlsBackends,
  tlsSecret,
} from "../../src/scenarios/fixtures.ts";
import { describeSidecarTimes, sidecarTimes } from "../../src/scenarios/access-log.ts";
import { describeFailures, describeSlowest, underLoad, type LoadSummary } from "../../src/scenarios/load.ts";
import { ScenarioReport } from "../../src/scenarios/report.ts";
import { makeTestCerts } from "../../src/scenarios/tls-certs.ts";

const cluster = Cluster.fromEnv();
/** How to run a command in the node's network namespace (set by e2e/local/run.sh and e2e/kind/run.sh). */
const nodeExec = (process.env["TETHER_E2E_NODE_EXEC"] ?? "").split(" ").filter((w) => w !== "");
const report = new ScenarioReport();
const SCENARIO_TIMEOUT = 420_000;
/** The sidecar's public admin port (GET /ready, /stats/prometheus, /metrics only). */
const ADMIN_PORT = 9901;
/** The sidecar's full admin, on 127.0.0.1 inside the pod (Agent spec.sidecar.localAdminPort). */
const LOCAL_ADMIN_PORT = 15000;

function k(): Cluster {
  if (cluster === undefined) throw new Error("TETHER_E2E_KUBECONFIG is not set");
  return cluster;
}

/**
 * POST /notifications to the sidecar's loopback admin from inside the agent pod (its sidecar
 * container runs node), as a policy-side helper in the pod would; resolves with status and JSON body.
 */
async function notifyFromPod(
  ns: string,
  pod: string,
  event: object,
): Promise<{ status: number; body: unknown }> {
  const script = `fetch("http://127.0.0.1:${LOCAL_ADMIN_PORT}/notifications", { method: "POST", headers: { "content-type": "application/json" }, body: process.argv[1], signal: AbortSignal.timeout(10000) }).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.json() })))`;
  const result = await k().exec(
    ns,
    pod,
    ["node", "-e", script, JSON.stringify(event)],
    30_000,
    "tether-sidecar",
  );
  const line = result.stdout.trim().split("\n").at(-1) ?? "";
  if (result.code !== 0 || line === "") {
    throw new Error(
      `POST /notifications in ${ns}/${pod} (exit ${result.code}): ${result.stderr.slice(-2000)}`,
    );
  }
  return JSON.parse(line) as { status: number; body: unknown };
}

/**
 * How many times the sidecar of `pod` has taken new TLS files into use (its log line for a rotation of
 * the material it reads, e.g. a CA bundle mounted from a Secret).
 */
async function sidecarTlsRotations(ns: string, pod: string): Promise<number> {
  const logs = await k().kubectl(["logs", "-n", ns, pod, "-c", "tether-sidecar"]);
  return jsonLines(logs).filter((line) => String(line["msg"]).startsWith("TLS material rotated")).length;
}

/** Whether the demo policy server `pod` has reported serving the certificate `serial` to new handshakes. */
async function policyServerRotatedTo(ns: string, pod: string, serial: string): Promise<boolean> {
  return jsonLines(await k().logs(ns, pod)).some(
    (line) => line["event"] === "tls-rotated" && line["serial"] === serial,
  );
}

/** The agent's decision path through the `web` Service, as the client pod reaches it. */
const agentUrl = (ns: string, path = "/app/orders"): string => `http://web.${ns}.svc:${AGENT_PORT}${path}`;

async function pause(ms: number): Promise<void> {
  await new Promise<void>((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `attempt` (every 500 ms) until it resolves with a value, or throws the last error at the
 * deadline. For the first request through a new Service (kube-proxy and DNS catch up).
 */
async function eventually<T>(
  what: string,
  attempt: () => Promise<T | undefined>,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
      last = "not yet";
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last})`);
    await pause(500);
  }
}

const ok200 = (answer: HttpAnswer): HttpAnswer | undefined => (answer.status === 200 ? answer : undefined);

/** The agent and its policy servers in `order`, the `web` Service, and a client pod that reaches them. */
async function deploy(
  ns: string,
  order: "agent-first" | "servers-first",
  options: {
    replicas?: number;
    agents?: number;
    cache?: { ttl: string };
    accessLog?: boolean;
    /** false: the Agent opts out of the operator's xDS (spec.sidecar.xds.enabled). */
    xds?: boolean;
  } = {},
): Promise<ClientPod> {
  const psc = policyServerCluster({ replicas: options.replicas ?? 2 });
  const web = agent({
    ...(options.accessLog === true ? { accessLog: true } : {}),
    ...(options.xds === false ? { xds: false } : {}),
    ...(options.cache === undefined ? {} : { cache: options.cache }),
    ...(options.agents === undefined ? {} : { replicas: options.agents }),
  });
  for (const manifest of order === "agent-first" ? [web, psc] : [psc, web]) await k().apply(ns, manifest);
  await k().apply(ns, agentService());
  const client = ClientPod.start(k(), ns);
  client.catch(() => undefined); // awaited below; a failed wait first must not leave it unhandled
  await k().wait(ns, "deployment/ps-main", "condition=Available");
  await k().wait(ns, "deployment/web", "condition=Available");
  await k().wait(ns, "agent/web", "condition=Ready");
  const pod = await client;
  await eventually("a first decision through the web Service", async () =>
    ok200(await pod.request(agentUrl(ns))),
  );
  return pod;
}

async function withNamespace(ns: string, body: () => Promise<void>): Promise<void> {
  await k().createNamespace(ns);
  try {
    await body();
  } finally {
    await k().deleteNamespace(ns);
  }
}

const agentRestarts = async (ns: string): Promise<Record<string, number>> =>
  k().restarts(ns, podsOf("web", "agent"));

/** The operator's Deployment as the suite's run scripts install the chart (release `tether`). */
const OPERATOR = { namespace: "tether-system", deployment: "tether" } as const;

/** The operator Deployment's desired replicas and its pods' label selector. */
async function operatorDeployment(): Promise<{ replicas: number; selector: string }> {
  const deployment = JSON.parse(
    await k().kubectl(["get", "deployment", OPERATOR.deployment, "-n", OPERATOR.namespace, "-o", "json"]),
  ) as { spec: { replicas?: number; selector: { matchLabels?: Record<string, string> } } };
  const labels = Object.entries(deployment.spec.selector.matchLabels ?? {});
  if (labels.length === 0) throw new Error(`deployment/${OPERATOR.deployment}: no matchLabels selector`);
  return {
    replicas: deployment.spec.replicas ?? 1,
    selector: labels.map(([name, value]) => `${name}=${value}`).join(","),
  };
}

async function scaleOperator(replicas: number): Promise<void> {
  await k().kubectl([
    "scale",
    "deployment",
    OPERATOR.deployment,
    "-n",
    OPERATOR.namespace,
    `--replicas=${replicas}`,
  ]);
}

/** The sidecar's public admin port on `pod`, as the client pod reaches it. */
function publicAdmin(pod: PodJson): string {
  const ip = pod.status?.podIP ?? "";
  if (ip === "") throw new Error(`${pod.metadata.name}: no pod IP yet`);
  return `http://${ip.includes(":") ? `[${ip}]` : ip}:${ADMIN_PORT}`;
}

/**
 * `envoy_control_plane_connected_state` of the sidecar of every pod of the Agent `web`, by pod, read
 * from each sidecar's public admin `/stats/prometheus` through the client pod.
 */
async function controlPlaneConnected(client: ClientPod, ns: string): Promise<Record<string, number>> {
  const gauge = "envoy_control_plane_connected_state";
  const states: Record<string, number> = {};
  for (const pod of await k().pods(ns, podsOf("web", "agent"))) {
    const answer = await client.request(`${publicAdmin(pod)}/stats/prometheus`, { timeoutMs: 10_000 });
    const text = String(answer.body);
    if (answer.status !== 200 || !text.includes(gauge)) {
      throw new Error(
        `${pod.metadata.name}: /stats/prometheus answered ${answer.status} without ${gauge} (is the chart's xds.enabled off?)`,
      );
    }
    states[pod.metadata.name] = metricSum(text, gauge);
  }
  return states;
}

/** Resolves `states` once there are `count` sidecars and every one is in `state`. */
const allIn = (
  states: Record<string, number>,
  count: number,
  state: 0 | 1,
): Record<string, number> | undefined => {
  const values = Object.values(states);
  return values.length === count && values.every((v) => v === state) ? states : undefined;
};

/** The operator's admin port (chart value `operator.adminPort`, the run scripts keep its default). */
const OPERATOR_ADMIN_PORT = 8080;

/**
 * `tether_operator_xds_streams` of every running operator pod, by pod name, read from its admin
 * `/metrics` through the client pod; a pod that does not answer (killed, restarting) counts 0.
 */
async function operatorStreams(client: ClientPod, selector: string): Promise<Record<string, number>> {
  const streams: Record<string, number> = {};
  for (const pod of await k().pods(OPERATOR.namespace, selector)) {
    const ip = pod.status?.podIP ?? "";
    if (ip === "" || pod.metadata.deletionTimestamp !== undefined) continue;
    const host = ip.includes(":") ? `[${ip}]` : ip;
    const answer = await client
      .request(`http://${host}:${OPERATOR_ADMIN_PORT}/metrics`, { timeoutMs: 5_000 })
      .catch(() => undefined);
    streams[pod.metadata.name] =
      answer?.status === 200 ? metricSum(String(answer.body), "tether_operator_xds_streams") : 0;
  }
  return streams;
}

interface SidecarConfig {
  /**
   * The snapshot version the sidecar runs: the version_info of its latest update. (Each type keeps
   * the version it was last pushed with, so the set of versions differs after a reconnect re-sends
   * every type at the current one, for the same config.)
   */
  version: string;
  /** A hash of every cluster, listener and endpoint assignment as the sidecar runs it. */
  content: string;
}

/** What the sidecar of `pod` runs, from its loopback admin's /config_dump (read inside the pod). */
async function sidecarConfig(ns: string, pod: string): Promise<SidecarConfig> {
  const script = `fetch("http://127.0.0.1:${LOCAL_ADMIN_PORT}/config_dump", { signal: AbortSignal.timeout(10000) }).then((r) => r.json()).then((dump) => {
  let latest = { at: "", version: "" }; const raw = [];
  const walk = (o) => { if (Array.isArray(o)) { for (const x of o) walk(x); return; } if (o === null || typeof o !== "object") return;
    if (typeof o.version_info === "string" && typeof o.last_updated === "string" && o.last_updated >= latest.at) latest = { at: o.last_updated, version: o.version_info };
    for (const [key, value] of Object.entries(o)) { if (key === "cluster" || key === "listener" || key === "endpoint_config") raw.push(JSON.stringify(value)); else walk(value); } };
  walk(dump);
  console.log(JSON.stringify({ version: latest.version, content: require("crypto").createHash("sha256").update(raw.sort().join("\\n")).digest("hex").slice(0, 16) }));
})`;
  const result = await k().exec(ns, pod, ["node", "-e", script], 30_000, "tether-sidecar");
  const line = result.stdout.trim().split("\n").at(-1) ?? "";
  if (result.code !== 0 || line === "") {
    throw new Error(`config_dump in ${ns}/${pod} (exit ${result.code}): ${result.stderr.slice(-2000)}`);
  }
  return JSON.parse(line) as SidecarConfig;
}

/**
 * From the sidecar's log (pino JSON lines, epoch-ms `time`): when it saw its xDS stream break after
 * `sinceMs` and when it was connected again; undefined when its stream did not break.
 */
async function xdsReconnect(
  ns: string,
  pod: string,
  sinceMs: number,
): Promise<{ disconnectedAt: number; connectedAt: number | undefined; retries: string[] } | undefined> {
  const text = await k().kubectl(["logs", "-n", ns, pod, "-c", "tether-sidecar"]);
  let disconnectedAt: number | undefined;
  // Each "xDS stream closed; reconnecting" on the way: why, and the back-off wait drawn after it.
  const retries: string[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { time?: number; msg?: string; reason?: string; retryInMs?: number };
    if (entry.time === undefined || entry.time < sinceMs) continue;
    if (entry.msg === "xDS disconnected" && disconnectedAt === undefined) disconnectedAt = entry.time;
    if (entry.msg === "xDS stream closed; reconnecting" && disconnectedAt !== undefined) {
      retries.push(`${String(entry.reason)}, waited ${String(entry.retryInMs)} ms`);
    }
    if (entry.msg === "xDS connected" && disconnectedAt !== undefined) {
      return { disconnectedAt, connectedAt: entry.time, retries };
    }
  }
  return disconnectedAt === undefined ? undefined : { disconnectedAt, connectedAt: undefined, retries };
}

describe.skipIf(cluster === undefined)("end-to-end scenarios (TETHER_E2E_KUBECONFIG)", () => {
  afterAll(() => {
    report.printTable();
  });

  describe("S1: agent created before or after its policy servers", () => {
    for (const order of ["agent-first", "servers-first"] as const) {
      it(
        `${order}: decisions flow, no agent restart`,
        async () => {
          const ns = `tether-e2e-s1-${order}`;
          await withNamespace(ns, async () => {
            const client = await deploy(ns, order);
            const result = await underLoad(client, { target: agentUrl(ns) }, () => Promise.resolve(), {
              settleMs: 5_000,
            });
            const restarts = await agentRestarts(ns);
            report.add(`S1 ${order}`, result, `agent restarts ${JSON.stringify(restarts)}`);
            expect(result.failures, describeFailures(result)).toBe(0);
            expect(result.requests).toBeGreaterThan(50);
            expect(restarts).toEqual({ agent: 0, "tether-sidecar": 0 });
          });
        },
        SCENARIO_TIMEOUT,
      );
    }
  });

  describe("S2–S5: policy servers restarted under load", () => {
    const ns = "tether-e2e-restarts";
    const servers = podsOf("ps-main", "policy-server");
    let client: ClientPod | undefined;

    beforeAll(async () => {
      await k().createNamespace(ns);
      client = await deploy(ns, "servers-first", { replicas: 3, accessLog: true });
    }, SCENARIO_TIMEOUT);

    afterAll(async () => {
      await k().deleteNamespace(ns);
    }, SCENARIO_TIMEOUT);

    const pod = (): ClientPod => {
      if (client === undefined) throw new Error("no client pod");
      return client;
    };
    const serverPods = async (): Promise<string[]> =>
      (await k().pods(ns, servers)).map((p) => p.metadata.name);
    /** Where the tail came from: the client's slowest request and the sidecars' own access-log view. */
    const tail = async (from: Date, result: LoadSummary): Promise<string> => {
      const to = new Date();
      const log = await k().kubectl([
        "logs",
        "-n",
        ns,
        "-l",
        podsOf("web", "agent"),
        "-c",
        "tether-sidecar",
        "--tail=-1",
        `--since-time=${from.toISOString()}`,
      ]);
      return [describeSlowest(result), describeSidecarTimes(sidecarTimes(log, { from, to }))]
        .filter((part) => part !== "")
        .join("; ");
    };
    const restartsSince = async (before: Record<string, number>): Promise<Record<string, number>> => {
      const now = await agentRestarts(ns);
      return Object.fromEntries(Object.entries(now).map(([c, n]) => [c, n - (before[c] ?? 0)]));
    };

    it(
      "S2: one policy server restarted while the agent serves traffic: no failed request, no agent restart",
      async () => {
        const before = await agentRestarts(ns);
        const from = new Date();
        const [first] = await serverPods();
        const victims = [first ?? ""];
        const result = await underLoad(
          pod(),
          { target: agentUrl(ns) },
          async () => {
            await k().deletePods(ns, victims);
            await k().waitDeleted(ns, `pod/${first ?? ""}`);
            await k().waitReplaced(ns, servers, 3, victims);
          },
          { settleMs: 5_000 },
        );
        const restarts = await restartsSince(before);
        report.add(
          "S2 one policy server restarted",
          result,
          `agent restarts +${JSON.stringify(restarts)}; ${await tail(from, result)}`,
        );
        expect(result.failures, describeFailures(result)).toBe(0);
        expect(restarts).toEqual({ agent: 0, "tether-sidecar": 0 });
      },
      SCENARIO_TIMEOUT,
    );

    it(
      "S3: every policy server restarted at once: requests are held, none fails within the hold window",
      async () => {
        const before = await agentRestarts(ns);
        const victims = await serverPods();
        const result = await underLoad(
          pod(),
          { target: agentUrl(ns) },
          async () => {
            await k().deletePods(ns, victims, true);
            await k().waitReplaced(ns, servers, 3, victims);
          },
          { settleMs: 5_000 },
        );
        const restarts = await restartsSince(before);
        report.add(
          "S3 all policy servers restarted",
          result,
          `held, agent restarts +${JSON.stringify(restarts)}`,
        );
        expect(result.failures, describeFailures(result)).toBe(0);
        expect(restarts).toEqual({ agent: 0, "tether-sidecar": 0 });
      },
      SCENARIO_TIMEOUT,
    );

    it(
      "S4: one of three policy servers killed under load: no failed request",
      async () => {
        const victims = await serverPods();
        expect(victims).toHaveLength(3);
        const killed = [victims[1] ?? ""];
        const from = new Date();
        const result = await underLoad(
          pod(),
          { target: agentUrl(ns), ratePerSecond: 50 },
          async () => {
            await k().deletePods(ns, killed, true);
            await k().waitReplaced(ns, servers, 3, killed);
          },
          { settleMs: 5_000 },
        );
        report.add(
          "S4 one of three killed",
          result,
          `killed ${killed.join("")}; ${await tail(from, result)}`,
        );
        expect(result.failures, describeFailures(result)).toBe(0);
      },
      SCENARIO_TIMEOUT,
    );

    it(
      "S5: rolling restart of the policy servers under load: no failed request",
      async () => {
        const from = new Date();
        const result = await underLoad(
          pod(),
          { target: agentUrl(ns), ratePerSecond: 50 },
          async () => {
            await k().kubectl(["rollout", "restart", "-n", ns, "deployment/ps-main"]);
            await k().rolloutStatus(ns, "ps-main");
          },
          { settleMs: 5_000 },
        );
        report.add(
          "S5 rolling restart",
          result,
          `rollout restart deployment/ps-main; ${await tail(from, result)}`,
        );
        expect(result.failures, describeFailures(result)).toBe(0);
      },
      SCENARIO_TIMEOUT,
    );

    it.skipIf(nodeExec.length === 0)(
      "S15: one of three policy servers' node lost (its pod cut off the network for 10 s) under load: no failed and no slow request",
      async () => {
        // A serving pod: after S5's rollout, pods of the old ReplicaSet may still be listed (completed
        // or terminating), and cutting one of those off would test nothing.
        const victim = await eventually("three running policy servers", async () => {
          const running = (await k().pods(ns, servers)).filter(
            (p) => p.status?.phase === "Running" && p.metadata.deletionTimestamp === undefined,
          );
          return running.length === 3 ? running[0]?.metadata.name : undefined;
        });
        let restore: (() => Promise<void>) | undefined;
        try {
          const result = await underLoad(
            pod(),
            { target: agentUrl(ns), ratePerSecond: 50 },
            async () => {
              restore = await k().isolatePod(ns, victim, nodeExec);
              await pause(10_000);
              await restore();
              restore = undefined;
            },
            { settleMs: 5_000 },
          );
          report.add("S15 a policy server's node lost", result, `${victim} cut off for 10 s`);
          expect(result.failures, describeFailures(result)).toBe(0);
          expect(result.slow, `${result.slow} of ${result.requests} answered after ${result.slowMs} ms`).toBe(
            0,
          );
        } finally {
          await restore?.();
        }
      },
      SCENARIO_TIMEOUT,
    );
  });

  it(
    "S6: broker with TLS passthrough: the client sees the backend's certificate; a lost backend's connections go to the other",
    async () => {
      const ns = "tether-e2e-s6";
      const verifyName = "appserver.tether.test";
      const certs = await makeTestCerts(verifyName, ["appserver-0", "appserver-1"]);
      try {
        await withNamespace(ns, async () => {
          for (const server of certs.servers) {
            await k().apply(ns, tlsSecret(`${server.name}-tls`, server.certPem, server.keyPem));
          }
          await k().apply(ns, caConfigMap("appserver-ca", certs.caPem));
          await k().apply(ns, tlsBackends());
          await k().apply(ns, broker());
          const clientStarting = ClientPod.start(k(), ns, {
            mounts: [{ name: "ca", mountPath: CA_MOUNT, configMap: "appserver-ca" }],
          });
          clientStarting.catch(() => undefined); // awaited below
          await k().wait(ns, "pod/appserver-0", "condition=Ready");
          await k().wait(ns, "pod/appserver-1", "condition=Ready");
          await k().wait(ns, `deployment/${BROKER.name}`, "condition=Available");
          await k().wait(ns, `broker/${BROKER.name}`, "condition=Ready");
          const client = await clientStarting;
          const target = `tls://${BROKER.name}.${ns}.svc:${BROKER.port}`;
          const spec = { target, ca: `${CA_MOUNT}/ca.crt`, servername: verifyName };
          const fingerprints = Object.fromEntries(certs.servers.map((s) => [s.name, s.fingerprint256]));

          // One exchange: verified against the test CA, and the certificate is the answering backend's own.
          const probe = await eventually("a first TLS exchange through the broker", () =>
            client.tls(target, spec.ca, verifyName),
          );
          expect(probe.subject).toBe(probe.server);
          expect(probe.fingerprint256).toBe(fingerprints[probe.server]);

          const baseline = await underLoad(client, spec, () => Promise.resolve(), { settleMs: 5_000 });
          report.add("S6 broker TLS, both backends", baseline, "certificates = the backends' own");
          expect(baseline.failures, describeFailures(baseline)).toBe(0);
          expect(Object.keys(baseline.servedBy).sort()).toEqual(["appserver-0", "appserver-1"]);
          expect(baseline.peers).toEqual(fingerprints);

          const loss = await underLoad(
            client,
            spec,
            async () => {
              await k().deletePods(ns, ["appserver-0"], true);
              await k().waitDeleted(ns, "pod/appserver-0");
            },
            { settleMs: 5_000 },
          );
          report.add("S6 broker TLS, appserver-0 killed", loss, "new connections → appserver-1");
          // A connection open through the broker at the very moment its backend dies cannot be saved
          // (passthrough: the TLS session ends at that backend), and per broker replica a connection
          // may spend its three attempts on the dying backend before outlier detection ejects it (after
          // three local failures) or the health check (1 s × 2) drops it. Nothing fails after that.
          expect(loss.failures, describeFailures(loss)).toBeLessThanOrEqual(5);
          expect(loss.recoverMs).toBeLessThan(15_000);
          expect(loss.servedBy["appserver-1"]).toBeGreaterThan(0);
          for (const [name, fingerprint] of Object.entries(loss.peers ?? {})) {
            expect(fingerprint).toBe(fingerprints[name]);
          }

          const after = await underLoad(client, spec, () => Promise.resolve(), { settleMs: 5_000 });
          report.add("S6 broker TLS, after the loss", after, "only the survivor");
          expect(after.failures, describeFailures(after)).toBe(0);
          expect(Object.keys(after.servedBy)).toEqual(["appserver-1"]);
          expect(after.peers).toEqual({ "appserver-1": fingerprints["appserver-1"] });
        });
      } finally {
        await certs.remove();
      }
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "S7: proxy routes by path and by extension; a sticky session fails over when its server dies, and stays",
    async () => {
      const ns = "tether-e2e-s7";
      await withNamespace(ns, async () => {
        await k().apply(ns, httpBackends({ name: "app" }));
        const client = await deploy(ns, "servers-first");
        await k().wait(ns, "pod/app-0", "condition=Ready");
        await k().wait(ns, "pod/app-1", "condition=Ready");
        await k().apply(ns, proxyRoutes({ backend: "app" }));
        await k().wait(ns, "proxyroute/app", "condition=Accepted");
        await k().wait(ns, "proxyroute/pages", "condition=Accepted");
        await k().rolloutStatus(ns, "web");
        const proxy = `http://web.${ns}.svc:${PROXY_PORT}`;
        const decision = `${proxy}/app/authorize?resource=/orders&action=GET`;
        const session = { cookie: "JSESSIONID=s7" };
        const serverOf = (answer: HttpAnswer): string => (answer.body as { server?: string }).server ?? "";

        // By path: /app/authorize → /authorize on a demo server; one session sticks to one server.
        const first = await eventually("a first answer through the proxy route", async () =>
          ok200(await client.request(decision, { headers: session })),
        );
        const sticky = serverOf(first);
        expect(["app-0", "app-1"]).toContain(sticky);
        for (let i = 0; i < 3; i++)
          expect(serverOf(await client.request(decision, { headers: session }))).toBe(sticky);
        // By extension: *.jsp reaches a demo server too (which does not know the page: its own 404).
        const page = await client.request(`${proxy}/shop/cart.jsp`, { headers: session });
        expect(page.status).toBe(404);
        expect(["app-0", "app-1"]).toContain(serverOf(page));

        // The session's server dies under load: the session moves to the other server once, and stays.
        const result = await underLoad(
          client,
          { target: decision, headers: session },
          async () => {
            await k().deletePods(ns, [sticky], true);
            await k().waitDeleted(ns, `pod/${sticky}`);
          },
          { settleMs: 5_000 },
        );
        const other = sticky === "app-0" ? "app-1" : "app-0";
        report.add(
          "S7 sticky session, its server killed",
          result,
          `${sticky} → ${other}, ${result.switches} switch`,
        );
        expect(result.failures, describeFailures(result)).toBe(0);
        expect(Object.keys(result.servedBy).sort()).toEqual(["app-0", "app-1"]);
        expect(result.switches).toBe(1);
        expect(serverOf(await client.request(decision, { headers: session }))).toBe(other);
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "S8: decision cache: a repeated decision is served by the sidecar, expires after the ttl, and a notification invalidates it at once",
    async () => {
      const ns = "tether-e2e-s8";
      // Long enough for a few kubectl exec round trips (the hit and notification checks run within it).
      const ttlMs = 20_000;
      await withNamespace(ns, async () => {
        const client = await deploy(ns, "servers-first", { cache: { ttl: `${ttlMs / 1000}s` } });
        const [agentPod] = await k().pods(ns, podsOf("web", "agent"));
        const ip = agentPod?.status?.podIP ?? "";
        expect(ip).not.toBe("");
        const admin = `http://${ip.includes(":") ? `[${ip}]` : ip}:${ADMIN_PORT}`;
        const cacheMetric = async (name: string): Promise<number> => {
          const answer = await client.request(`${admin}/stats/prometheus`);
          return metricSum(String(answer.body), `tether_decision_cache_${name}`);
        };
        // A decision as the agent passes it on: who decided, which run of it, and its request number.
        const decide = async (path: string): Promise<{ id: string; at: number }> => {
          const sent = performance.now();
          const answer = await client.request(agentUrl(ns, path));
          expect(answer.status).toBe(200);
          const body = answer.body as { server?: string; instance?: string; seq?: number };
          return { id: `${body.server ?? ""}/${body.instance ?? ""}/${String(body.seq)}`, at: sent };
        };

        const result = await underLoad(
          client,
          { target: agentUrl(ns, "/s8/load") },
          async () => {
            // Hit: the second identical request is answered from the cache (same decision, same number).
            const hitsBefore = await cacheMetric("hits_total");
            const first = await decide("/s8/page");
            expect((await decide("/s8/page")).id).toBe(first.id);
            expect(await cacheMetric("hits_total")).toBeGreaterThan(hitsBefore);

            // Expiry: the decision is asked for again once the ttl has passed since it was stored.
            const expiredBefore = await cacheMetric("expired_total");
            const fresh = await eventually(
              "a fresh decision after the ttl",
              async () => {
                const again = await decide("/s8/page");
                return again.id === first.id ? undefined : { ...again, doneAt: performance.now() };
              },
              ttlMs + 30_000,
            );
            expect(fresh.doneAt - first.at).toBeGreaterThanOrEqual(ttlMs);

            // Notification: policy-changed on the sidecar's admin port invalidates at once (well within the ttl).
            const cached = await decide("/s8/page");
            expect(cached.id).toBe(fresh.id);
            // The public admin port refuses it; the pod's own containers reach the loopback admin.
            const refused = await client.request(`${admin}/notifications`, {
              data: JSON.stringify({ type: "policy-changed" }),
            });
            expect(refused.status).toBe(404);
            const notified = await notifyFromPod(ns, agentPod?.metadata.name ?? "", {
              type: "policy-changed",
            });
            expect(notified.status).toBe(200);
            expect((notified.body as { invalidated?: number }).invalidated).toBeGreaterThanOrEqual(1);
            const afterNotice = await decide("/s8/page");
            expect(afterNotice.id).not.toBe(fresh.id);
            expect(performance.now() - fresh.at).toBeLessThan(ttlMs);
            expect(await cacheMetric("expired_total")).toBeGreaterThan(expiredBefore);
          },
          { settleMs: 3_000 },
        );
        const hits = await cacheMetric("hits_total");
        const misses = await cacheMetric("misses_total");
        report.add("S8 decision cache", result, `cache hits ${hits}, misses ${misses}, ttl ${ttlMs / 1000}s`);
        expect(result.failures, describeFailures(result)).toBe(0);
        // The load's one path misses once per ttl and per notification; everything else is a hit.
        const loadMisses = 2 + Math.ceil(result.durationMs / ttlMs) + 5;
        expect(hits).toBeGreaterThanOrEqual(result.requests - loadMisses);
      });
    },
    SCENARIO_TIMEOUT,
  );

  /**
   * `changes` ProxyRoute applies, each moving the route to a prefix never used before, so the first
   * answer under it can only come from the new rule; the client pod polls it from the moment the
   * apply returned. One row: requests = changes, failures = changes never answered through the new
   * rule within `answerTimeoutMs`, p50/p99/max = apply → first answer, slow = answered after `slowMs`.
   */
  async function configPush(options: {
    ns: string;
    xds: boolean;
    changes: number;
    slowMs: number;
    answerTimeoutMs: number;
  }): Promise<{ summary: LoadSummary; note: string; lastPrefixStatus: number }> {
    const { ns, changes } = options;
    const pollMs = 50;
    await k().apply(ns, httpBackends({ name: "app" }));
    const client = await deploy(ns, "servers-first", { xds: options.xds });
    await k().wait(ns, "pod/app-0", "condition=Ready");
    await k().wait(ns, "pod/app-1", "condition=Ready");
    const proxy = `http://web.${ns}.svc:${PROXY_PORT}`;
    // `/v<n>/authorize` → `/authorize` on a demo server while the route's prefix is `/v<n>/`.
    const decision = (prefix: string): string => `${proxy}${prefix}authorize?resource=/orders&action=GET`;

    // The route's first version opens the proxy listener; the Service and kube-proxy catch up.
    await k().apply(ns, prefixRoute({ name: "s9", prefix: "/v0/" }));
    await k().wait(ns, "proxyroute/s9", "condition=Accepted");
    await eventually(
      "a first answer through the route",
      async () => ok200(await client.request(decision("/v0/"))),
      Math.max(90_000, options.answerTimeoutMs),
    );

    const watch = await FirstAnswerWatch.start(client, pollMs);
    const records: RequestRecord[] = [];
    const answers: FirstAnswer[] = [];
    const startAt = performance.now();
    try {
      for (let i = 1; i <= changes; i++) {
        const prefix = `/v${i}/`;
        await k().apply(ns, prefixRoute({ name: "s9", prefix }));
        const appliedAt = performance.now();
        try {
          const answer = await watch.firstAnswer(decision(prefix), options.answerTimeoutMs);
          answers.push(answer);
          records.push({
            intendedAt: appliedAt,
            sentAt: appliedAt,
            doneAt: appliedAt + answer.ms,
            status: 200,
            ok: true,
            server: answer.server,
            error: null,
          });
        } catch (error) {
          if (!(error instanceof FirstAnswerTimeout)) throw error;
          records.push({
            intendedAt: appliedAt,
            sentAt: appliedAt,
            doneAt: appliedAt + error.ms,
            status: 0,
            ok: false,
            server: null,
            error: `change ${i}: ${error.message}`,
          });
        }
      }
    } finally {
      await watch.stop();
    }
    const summary = summarizeLoad(
      records,
      { startAt, endAt: performance.now() },
      { slowMs: options.slowMs, target: decision("/v<n>/"), ratePerSecond: 0 },
    );
    const roundTripMax = Math.max(0, ...answers.map((a) => a.roundTripMs));
    // A change replaces the rule rather than adding one: the previous prefix no longer routes.
    const previous = await client.request(decision(`/v${changes - 1}/`));
    return {
      summary,
      note: `${changes} ProxyRoute applies; p50/p99/max: apply returned → first answer by the new rule, polled every ${pollMs} ms in the client pod (max ${formatMs(roundTripMax)} with kubectl's stdin/stdout)`,
      lastPrefixStatus: previous.status,
    };
  }

  // With xDS on (the chart's default) a ProxyRoute change reaches the sidecar by push.
  it(
    "S9: config push: 20 ProxyRoute changes, each answered through the new rule within 2 s (p99) of kubectl apply returning",
    async () => {
      const ns = "tether-e2e-s9";
      await withNamespace(ns, async () => {
        const run = await configPush({ ns, xds: true, changes: 20, slowMs: 2_000, answerTimeoutMs: 30_000 });
        report.add("S9 config push (xDS)", run.summary, run.note);
        expect(run.summary.failures, describeFailures(run.summary)).toBe(0);
        expect(run.summary.p99Ms).toBeLessThanOrEqual(2_000);
        expect(run.lastPrefixStatus).toBe(404);
      });
    },
    SCENARIO_TIMEOUT,
  );

  // The same with the Agent opted out of xDS (spec.sidecar.xds.enabled: false): the path before the
  // control plane, a ConfigMap volume the kubelet refreshes on its own period (1 minute by default,
  // plus its cache), then the sidecar's file reload. Three changes, for the comparison only.
  it(
    "S9b: config by ConfigMap volume (xDS off for the Agent): 3 ProxyRoute changes, each answered through the new rule",
    async () => {
      const ns = "tether-e2e-s9b";
      await withNamespace(ns, async () => {
        const run = await configPush({ ns, xds: false, changes: 3, slowMs: 2_000, answerTimeoutMs: 180_000 });
        report.add("S9b config by ConfigMap volume", run.summary, `${run.note}; xDS off for this Agent`);
        expect(run.summary.failures, describeFailures(run.summary)).toBe(0);
        expect(run.lastPrefixStatus).toBe(404);
      });
    },
    4 * 180_000,
  );

  it("S10: operator away: scaled to 0 under traffic while a policy server is replaced, no failed request; back, every sidecar reconnects", async () => {
    const ns = "tether-e2e-s10";
    const agents = 2;
    const servers = podsOf("ps-main", "policy-server");
    await withNamespace(ns, async () => {
      const client = await deploy(ns, "servers-first", { replicas: 3, agents });
      await eventually("every sidecar connected to the operator's xDS", async () =>
        allIn(await controlPlaneConnected(client, ns), agents, 1),
      );
      const operator = await operatorDeployment();
      try {
        let victim = "";
        let replacements: string[] = [];
        const result = await underLoad(
          client,
          { target: agentUrl(ns), ratePerSecond: 50 },
          async () => {
            await scaleOperator(0);
            await eventually(
              "no operator pod left",
              async () =>
                (await k().pods(OPERATOR.namespace, operator.selector)).length === 0 ? true : undefined,
              120_000,
            );
            // A stream ends when its operator stops (or, if it vanished silently, at the keepalive: 30 s + 10 s).
            await eventually(
              "every sidecar sees the operator gone",
              async () => allIn(await controlPlaneConnected(client, ns), agents, 0),
              90_000,
            );
            // No EDS now: the sidecars keep their last endpoints, and their health checks take the
            // deleted server out; its replacement is unknown to them until the operator is back.
            victim = (await k().pods(ns, servers))[0]?.metadata.name ?? "";
            await k().deletePods(ns, [victim]);
            await k().waitDeleted(ns, `pod/${victim}`);
            replacements = await k().waitReplaced(ns, servers, 3, [victim]);
          },
          { settleMs: 5_000 },
        );

        await scaleOperator(operator.replicas);
        await k().rolloutStatus(OPERATOR.namespace, OPERATOR.deployment);
        const readyAt = performance.now();
        // Each sidecar retries with a jittered back-off capped at 5 s (the rendered retry_back_off).
        await eventually(
          "every sidecar reconnected to the operator",
          async () => allIn(await controlPlaneConnected(client, ns), agents, 1),
          120_000,
        );
        const reconnectMs = performance.now() - readyAt;
        // On reconnect the operator pushes the current endpoints: a server the sidecars could not
        // know while it was away (none of the load's answers came from it) now answers.
        const newcomer = await eventually(
          "a decision by the policy server started while the operator was away",
          async () => {
            const answer = await client.request(agentUrl(ns));
            const server = (answer.body as { server?: string }).server ?? "";
            return answer.status === 200 && server !== "" && !(server in result.servedBy)
              ? server
              : undefined;
          },
          120_000,
        );
        report.add(
          "S10 operator away, a policy server replaced",
          result,
          `operator ${operator.replicas} → 0 → ${operator.replicas}; ${victim} deleted meanwhile; ${agents} sidecars reconnected ≤ ${formatMs(reconnectMs)} after the operator was ready; ${newcomer} in rotation after`,
        );
        expect(result.failures, describeFailures(result)).toBe(0);
        expect(replacements).toContain(newcomer);
      } finally {
        // Whatever failed, the operator comes back (idempotent when it already is).
        await scaleOperator(operator.replicas);
      }
    });
  }, 600_000);

  it("S16: the operator replica serving the most sidecars SIGKILLed under traffic while a policy server restarts: no failed request, every sidecar on the other replica within 2 s, same config", async () => {
    const ns = "tether-e2e-s16";
    const agents = 2;
    const servers = podsOf("ps-main", "policy-server");
    await withNamespace(ns, async () => {
      const operator = await operatorDeployment();
      expect(
        operator.replicas,
        "S16 needs two operator replicas (the chart's default)",
      ).toBeGreaterThanOrEqual(2);
      await k().rolloutStatus(OPERATOR.namespace, OPERATOR.deployment);
      const client = await deploy(ns, "servers-first", { replicas: 3, agents });
      await eventually("every sidecar connected to the operator's xDS", async () =>
        allIn(await controlPlaneConnected(client, ns), agents, 1),
      );
      const sidecars = (await k().pods(ns, podsOf("web", "agent"))).map((p) => p.metadata.name);
      const before = Object.fromEntries(
        await Promise.all(sidecars.map(async (pod) => [pod, await sidecarConfig(ns, pod)] as const)),
      );
      // The replica serving the most ADS streams (every sidecar of the namespace counts, as they all do).
      const streams = await eventually(
        "every sidecar's stream counted by the operator replicas",
        async () => {
          const counts = await operatorStreams(client, operator.selector);
          const total = Object.values(counts).reduce((a, b) => a + b, 0);
          return total >= agents ? counts : undefined;
        },
      );
      const [victim, victimStreams] = Object.entries(streams).sort((a, b) => b[1] - a[1])[0] ?? ["", 0];
      const psVictim = await eventually("three running policy servers", async () => {
        const running = (await k().pods(ns, servers)).filter(
          (p) => p.status?.phase === "Running" && p.metadata.deletionTimestamp === undefined,
        );
        return running.length === 3 ? running[0] : undefined;
      });
      const psContainer = psVictim.status?.containerStatuses?.[0]?.name ?? "";
      const psRestarts = psVictim.status?.containerStatuses?.[0]?.restartCount ?? 0;
      // SIGKILL from the node when the suite can run commands there; otherwise a forced delete
      // (grace 0: the kubelet still sends SIGTERM first, so the replica closes its streams itself).
      const how = nodeExec.length > 0 ? "SIGKILLed" : "force-deleted";
      let killedAt = 0;
      let allConnectedMs = 0;
      const result = await underLoad(
        client,
        { target: agentUrl(ns), ratePerSecond: 50 },
        async () => {
          // A policy server restarts in place (same pod, same address): the sidecars' health checks
          // take it out and back, and the EndpointSlice, and so EDS, ends as it began.
          if (nodeExec.length > 0) await k().killContainer(ns, psVictim.metadata.name, psContainer, nodeExec);
          else
            await k().exec(
              ns,
              psVictim.metadata.name,
              ["node", "-e", "process.kill(1, 'SIGTERM')"],
              30_000,
              psContainer,
            );
          killedAt = Date.now();
          if (nodeExec.length > 0) await k().killContainer(OPERATOR.namespace, victim, "operator", nodeExec);
          else await k().deletePods(OPERATOR.namespace, [victim], true);
          await eventually(
            "every sidecar connected again, all streams on live replicas",
            async () => {
              const states = allIn(await controlPlaneConnected(client, ns), agents, 1);
              const counts = await operatorStreams(client, operator.selector);
              const total = Object.values(counts).reduce((a, b) => a + b, 0);
              return states !== undefined && total >= agents ? true : undefined;
            },
            60_000,
          );
          allConnectedMs = Date.now() - killedAt;
          await eventually(
            "the policy server restarted and ready",
            async () => {
              const pod = (await k().pods(ns, servers)).find(
                (p) => p.metadata.name === psVictim.metadata.name,
              );
              const status = pod?.status?.containerStatuses?.[0];
              return status !== undefined && status.restartCount > psRestarts && status.ready
                ? true
                : undefined;
            },
            120_000,
          );
        },
        { settleMs: 5_000 },
      );
      // Per sidecar, from its own log: the stream broke, and was up again how long after the kill.
      const reconnects = await Promise.all(sidecars.map((pod) => xdsReconnect(ns, pod, killedAt - 1_000)));
      const moved = reconnects.filter((r) => r !== undefined);
      // Stream broken → open again on a live replica (the kill itself is seen at once: the kernel
      // closes a killed process's connections); and from just before the kill command ran.
      const slowest = Math.max(
        0,
        ...moved.map((r) => (r.connectedAt ?? Number.POSITIVE_INFINITY) - r.disconnectedAt),
      );
      const sinceKill = Math.max(
        0,
        ...moved.map((r) => (r.connectedAt ?? Number.POSITIVE_INFINITY) - killedAt),
      );
      // The config ends as it began: the other replica serves the same snapshot (same versions).
      const after = await eventually(
        "every sidecar back on the config it had",
        async () => {
          const configs = Object.fromEntries(
            await Promise.all(sidecars.map(async (pod) => [pod, await sidecarConfig(ns, pod)] as const)),
          );
          return sidecars.every((pod) => JSON.stringify(configs[pod]) === JSON.stringify(before[pod]))
            ? configs
            : undefined;
        },
        60_000,
      ).catch(async () =>
        Object.fromEntries(
          await Promise.all(sidecars.map(async (pod) => [pod, await sidecarConfig(ns, pod)] as const)),
        ),
      );
      report.add(
        "S16 the busiest xDS replica killed, a policy server restarted",
        result,
        `${victim} (${victimStreams} of ${agents} streams) ${how} while ${psVictim.metadata.name} restarted in place; ${moved.length} sidecars reconnected ≤ ${formatMs(slowest)} after their stream broke (${formatMs(sinceKill)} after the kill command started; their logs; all connected, polled: ${formatMs(allConnectedMs)}; attempts per sidecar ${moved.map((r) => r.retries.length).join("/")}); config version ${JSON.stringify(after) === JSON.stringify(before) ? "unchanged" : "CHANGED"}`,
      );
      expect(result.failures, describeFailures(result)).toBe(0);
      expect(moved.length, "no sidecar of the scenario was on the killed replica").toBeGreaterThan(0);
      expect(moved.every((r) => r.connectedAt !== undefined)).toBe(true);
      expect(
        slowest,
        `each sidecar's attempts after the kill: ${JSON.stringify(moved.map((r) => r.retries))}`,
      ).toBeLessThanOrEqual(2_000);
      expect(after).toEqual(before);
    });
  }, 600_000);

  it(
    "S11: the agent pod starts while every policy server is down; when they come up its first request succeeds, no restart",
    async () => {
      const ns = "tether-e2e-s11";
      await withNamespace(ns, async () => {
        await k().apply(ns, policyServerCluster({ replicas: 0 }));
        await k().apply(ns, agent());
        await k().apply(ns, agentService());
        const clientStarting = ClientPod.start(k(), ns);
        clientStarting.catch(() => undefined); // awaited below
        // The native sidecar starts first and is ready with no server up; the agent starts after it.
        await k().wait(ns, "deployment/web", "condition=Available");
        const [pod] = await k().pods(ns, podsOf("web", "agent"));
        expect(pod?.status?.initContainerStatuses?.map((c) => c.name)).toContain("tether-sidecar");
        await k().apply(ns, policyServerCluster({ replicas: 2 }));
        await k().wait(ns, "deployment/ps-main", "condition=Available");
        const client = await clientStarting;
        const first = await eventually("the agent's first decision once the servers are up", async () =>
          ok200(await client.request(agentUrl(ns))),
        );
        const result = await underLoad(client, { target: agentUrl(ns) }, () => Promise.resolve(), {
          settleMs: 5_000,
        });
        const restarts = await agentRestarts(ns);
        report.add(
          "S11 agent started with no policy server",
          result,
          `agent restarts ${JSON.stringify(restarts)}`,
        );
        expect(first.status).toBe(200);
        expect(result.failures, describeFailures(result)).toBe(0);
        expect(restarts).toEqual({ agent: 0, "tether-sidecar": 0 });
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "S12: an agent pod deleted under load: no request the agent sent is lost",
    async () => {
      const ns = "tether-e2e-s12";
      await withNamespace(ns, async () => {
        await k().apply(ns, policyServerCluster({ replicas: 2 }));
        await k().apply(ns, agent({ replicas: 2 }));
        await k().apply(ns, agentService());
        const clientStarting = ClientPod.start(k(), ns);
        clientStarting.catch(() => undefined); // awaited below
        await k().wait(ns, "deployment/ps-main", "condition=Available");
        await k().wait(ns, "deployment/web", "condition=Available");
        const client = await clientStarting;
        await eventually("a first decision through the web Service", async () =>
          ok200(await client.request(agentUrl(ns))),
        );
        const [victim] = (await k().pods(ns, podsOf("web", "agent"))).map((p) => p.metadata.name);
        const result = await underLoad(
          client,
          { target: agentUrl(ns), ratePerSecond: 50 },
          async () => {
            // A graceful delete: the kubelet stops the agent container first, the native sidecar last.
            await k().deletePods(ns, [victim ?? ""]);
            await k().waitDeleted(ns, `pod/${victim ?? ""}`);
          },
          { settleMs: 5_000 },
        );
        // A request the agent sent to its sidecar and lost comes back as the agent's 5xx; a request
        // the Service still routed to the terminating pod fails at the connection (counted apart).
        const agentLost = result.errors
          .filter((e) => /^status 5\d\d$/.test(e.error))
          .reduce((n, e) => n + e.count, 0);
        report.add("S12 agent pod deleted under load", result, `agent decisions lost ${agentLost}`);
        expect(agentLost, describeFailures(result)).toBe(0);
      });
    },
    SCENARIO_TIMEOUT,
  );

  // The kubelet refreshes a Secret volume at the pod's next sync (syncFrequency, 1 min by default,
  // jittered up to +50 %), so each step waits for the update to be seen where it matters, with a
  // deadline well past that period.
  it("S13: the policy servers' CA and certificates rotate under traffic: 0 failures, new handshakes use the new certificate", async () => {
    const ns = "tether-e2e-s13";
    const serverName = "ps.tether.test";
    const propagationMs = 180_000;
    // A CA rotation as cert-manager does it: the servers' certificate from the old CA, then from the new.
    const old = await makeTestCerts(serverName, ["ps-main"]);
    const next = await makeTestCerts(serverName, ["ps-main"]);
    const oldCert = old.servers[0]!;
    const newCert = next.servers[0]!;
    const oldSerial = new X509Certificate(oldCert.certPem).serialNumber.toUpperCase();
    const newSerial = new X509Certificate(newCert.certPem).serialNumber.toUpperCase();
    try {
      await withNamespace(ns, async () => {
        await k().apply(ns, caSecret("ps-ca", old.caPem));
        await k().apply(ns, tlsSecret("ps-tls", oldCert.certPem, oldCert.keyPem));
        const tls = { certSecret: "ps-tls", caSecret: "ps-ca", serverName };
        await k().apply(ns, policyServerCluster({ replicas: 2, tls }));
        // Connections renewed every 20 requests (≈ 2 s at 10 req/s per server) and closed after 5 s
        // idle: under steady traffic the sidecar keeps making new handshakes, which is what rotates.
        await k().apply(ns, agent({ pool: { maxRequestsPerConnection: 20, idleTimeout: "5s" } }));
        await k().apply(ns, agentService());
        const clientStarting = ClientPod.start(k(), ns);
        clientStarting.catch(() => undefined); // awaited below
        await k().wait(ns, "deployment/ps-main", "condition=Available");
        await k().wait(ns, "deployment/web", "condition=Available");
        await k().wait(ns, "agent/web", "condition=Ready");
        const client = await clientStarting;
        const first = await eventually("a first decision over TLS through the web Service", async () =>
          ok200(await client.request(agentUrl(ns))),
        );
        expect((first.body as { certSerial?: string }).certSerial).toBe(oldSerial);
        const [agentPod] = (await k().pods(ns, podsOf("web", "agent"))).map((p) => p.metadata.name);
        const serverPods = (await k().pods(ns, podsOf("ps-main", "policy-server")))
          .filter((p) => p.status?.phase === "Running" && p.metadata.deletionTimestamp === undefined)
          .map((p) => p.metadata.name);
        expect(serverPods).toHaveLength(2);

        let loadStart = 0;
        const took = { bundle: 0, servers: 0, reduced: 0 };
        let certUpdatedAt = 0;
        let serversRotatedAt = 0;
        const sidecarRotatedSince = async (before: number, what: string, since: number): Promise<number> => {
          await eventually(
            what,
            async () => ((await sidecarTlsRotations(ns, agentPod ?? "")) > before ? true : undefined),
            propagationMs,
          );
          return performance.now() - since;
        };
        const result = await underLoad(
          client,
          { target: agentUrl(ns), ratePerSecond: 20 },
          async () => {
            loadStart = performance.now();
            // (a) The CA bundle grows to old + new; the sidecar takes it for new handshakes.
            const beforeBundle = await sidecarTlsRotations(ns, agentPod ?? "");
            await k().apply(ns, caSecret("ps-ca", old.caPem + next.caPem));
            took.bundle = await sidecarRotatedSince(
              beforeBundle,
              "the sidecar trusts the CA bundle old + new",
              performance.now(),
            );
            // (b) The servers' certificate is replaced by one from the new CA.
            await k().apply(ns, tlsSecret("ps-tls", newCert.certPem, newCert.keyPem));
            certUpdatedAt = performance.now();
            await eventually(
              "every policy server serves the new certificate",
              async () => {
                for (const pod of serverPods) {
                  if (!(await policyServerRotatedTo(ns, pod, newSerial))) return undefined;
                }
                return true;
              },
              propagationMs,
            );
            serversRotatedAt = performance.now();
            took.servers = serversRotatedAt - certUpdatedAt;
            // (c) The old CA leaves the bundle: from now on a handshake with the old certificate would fail.
            const beforeReduce = await sidecarTlsRotations(ns, agentPod ?? "");
            await k().apply(ns, caSecret("ps-ca", next.caPem));
            took.reduced = await sidecarRotatedSince(
              beforeReduce,
              "the sidecar trusts the new CA only",
              performance.now(),
            );
          },
          { settleMs: 10_000 },
        );
        const seen = result.certificates ?? {};
        const oldSeen = seen[oldSerial];
        const newSeen = seen[newSerial];
        // The serial switch: from the certificate Secret's update to the first answer under the new
        // certificate (the load's clock starts at loadStart, within one kubectl exec line of it).
        const updatedAtMs = certUpdatedAt - loadStart;
        const switchMs = newSeen === undefined ? NaN : newSeen.firstAtMs - updatedAtMs;
        const everyServerMs =
          newSeen === undefined ? NaN : Math.max(...Object.values(newSeen.firstByServer)) - updatedAtMs;
        report.add(
          "S13 CA and certificates rotated",
          result,
          `bundle old+new in the sidecar after ${formatMs(took.bundle)}; serial switch ${formatMs(switchMs)} after the certificate Secret update (every server ${formatMs(everyServerMs)}; servers reported it after ${formatMs(took.servers)}); old CA dropped after ${formatMs(took.reduced)}; answers under old ${oldSeen?.answers ?? 0}, new ${newSeen?.answers ?? 0}`,
        );
        expect(result.failures, describeFailures(result)).toBe(0);
        expect(oldSeen?.answers ?? 0).toBeGreaterThan(0);
        // New handshakes present the new certificate: every server answered under it, and the old one
        // stopped being used within a few connection lifetimes of the servers' rotation.
        expect(Object.keys(newSeen?.firstByServer ?? {}).sort()).toEqual([...serverPods].sort());
        expect(oldSeen?.lastAtMs ?? Infinity).toBeLessThan(serversRotatedAt - loadStart + 15_000);
        const after = await client.request(agentUrl(ns));
        expect(after.status).toBe(200);
        expect((after.body as { certSerial?: string }).certSerial).toBe(newSerial);
      });
    } finally {
      await old.remove();
      await next.remove();
    }
  }, 900_000);

  it(
    "S14: kubectl scale agent web --replicas 3 and back; an HPA on an Agent is accepted",
    async () => {
      const ns = "tether-e2e-s14";
      await withNamespace(ns, async () => {
        await k().apply(ns, policyServerCluster({ replicas: 1 }));
        await k().apply(ns, agent());
        await k().wait(ns, "deployment/web", "condition=Available");
        await k().kubectl(["scale", "-n", ns, "agent/web", "--replicas", "3"]);
        await eventually("three ready agent pods", async () => {
          const pods = await k().pods(ns, podsOf("web", "agent"));
          const ready = pods.filter((p) => (p.status?.containerStatuses ?? []).every((c) => c.ready));
          return ready.length === 3 ? ready : undefined;
        });
        await k().wait(ns, "agent/web", "condition=Ready");
        const scale = JSON.parse(
          await k().kubectl(["get", "--raw", `/apis/tether.dev/v1alpha1/namespaces/${ns}/agents/web/scale`]),
        ) as { spec: { replicas: number }; status: { replicas: number; selector: string } };
        expect(scale.spec.replicas).toBe(3);
        expect(scale.status.selector).toBe(
          "app.kubernetes.io/name=tether,app.kubernetes.io/instance=web,app.kubernetes.io/component=agent",
        );
        await k().kubectl(["scale", "-n", ns, "agent/web", "--replicas", "1"]);
        await eventually("back to one agent pod", async () => {
          const pods = await k().pods(ns, podsOf("web", "agent"));
          return pods.length === 1 ? pods : undefined;
        });
        await k().apply(
          ns,
          `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: tether.dev/v1alpha1, kind: Agent, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`,
        );
        await eventually(
          "the HPA reads the Agent's scale",
          async () => {
            const out = JSON.parse(await k().kubectl(["get", "hpa", "web", "-n", ns, "-o", "json"])) as {
              status?: { conditions?: { type: string; status: string }[] };
            };
            return out.status?.conditions?.some((c) => c.type === "AbleToScale" && c.status === "True") ===
              true
              ? out
              : undefined;
          },
          120_000,
        );
      });
    },
    SCENARIO_TIMEOUT,
  );
});
