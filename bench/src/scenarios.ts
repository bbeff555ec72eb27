// Restart scenarios: demo policy servers behind a proxy, constant-rate traffic, upstreams killed
// with SIGKILL and restarted. Counted: failed requests, the longest request, and how long after
// the restarted server was listening again it answered its first request through the proxy.
import { ConstantRateLoad, summarize } from "./loadgen.ts";
import type { LoadRecord } from "./loadgen.ts";
import { Proc, freePort, pause } from "./proc.ts";
import { REPO_ROOT, startProxy, waitServing } from "./targets.ts";
import type { ProxyKind, Target } from "./targets.ts";

const DECISION_PATH = "/authorize?resource=/app&action=GET";

/** A demo policy server (e2e/src/demo/policy-server.ts) that can be killed and restarted. */
class PolicyUpstream {
  readonly name: string;
  readonly port: number;
  private readonly cpus: string;
  private proc: Proc | null = null;

  constructor(name: string, port: number, cpus: string) {
    this.name = name;
    this.port = port;
    this.cpus = cpus;
  }

  /** Starts it; resolves with `performance.now()` when it reported listening. */
  async start(): Promise<number> {
    const proc = new Proc({
      name: `policy server ${this.name}`,
      command: process.execPath,
      args: [`${REPO_ROOT}e2e/src/demo/policy-server.ts`, "--port", String(this.port), "--name", this.name],
      cpus: this.cpus,
    });
    this.proc = proc;
    return proc.waitForStdoutLine(
      (line) => (line.includes('"listening"') ? performance.now() : undefined),
      10_000,
    );
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly proxy: ProxyKind;
  readonly rate: number;
  readonly requests: number;
  readonly failures: number;
  readonly p99Ms: number;
  readonly longestMs: number;
  /** From the kill to the last restarted server listening again (includes its start-up time). */
  readonly outageMs: number;
  /** ms from the restarted server listening to its first answer through the proxy; null: none. */
  readonly firstServedAfterMs: number | null;
  readonly errors: Readonly<Record<string, number>>;
}

interface ScenarioPlan {
  readonly name: string;
  readonly servers: number;
  readonly rate: number;
  /** Which servers to kill, how long they stay down, and which one's return is timed. */
  readonly kill: readonly number[];
  readonly outageMs: number;
  readonly timed: number;
}

export const SCENARIOS: readonly ScenarioPlan[] = [
  {
    name: "kill 1 of 2 under load, restart after 3 s",
    servers: 2,
    rate: 500,
    kill: [0],
    outageMs: 3000,
    timed: 0,
  },
  {
    name: "single upstream restarted, 1 s outage",
    servers: 1,
    rate: 200,
    kill: [0],
    outageMs: 1000,
    timed: 0,
  },
  {
    name: "both upstreams restarted, 1 s outage",
    servers: 2,
    rate: 200,
    kill: [0, 1],
    outageMs: 1000,
    timed: 0,
  },
];

async function firstServed(
  load: ConstantRateLoad,
  server: string,
  since: number,
  timeoutMs: number,
): Promise<LoadRecord | null> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const record = load.records.find((r) => r.ok && r.server === server && r.doneAt >= since);
    if (record) return record;
    await pause(20);
  }
  return null;
}

/** Waits until every server has answered through the proxy (health checks have seen them all). */
async function waitAllServing(target: Target, names: readonly string[], timeoutMs: number): Promise<void> {
  await waitServing(target.origin, DECISION_PATH, timeoutMs);
  const load = new ConstantRateLoad({
    origin: target.origin,
    path: DECISION_PATH,
    ratePerSecond: 100,
    connections: 4,
    readServer: true,
  });
  load.start();
  const deadline = performance.now() + timeoutMs;
  while (
    performance.now() < deadline &&
    !names.every((n) => load.records.some((r) => r.ok && r.server === n))
  )
    await pause(50);
  await load.stop();
}

export async function runScenario(
  plan: ScenarioPlan,
  proxy: ProxyKind,
  dir: string,
): Promise<ScenarioResult> {
  const servers: PolicyUpstream[] = [];
  for (let i = 0; i < plan.servers; i++)
    servers.push(new PolicyUpstream(`ps${i + 1}`, await freePort(), "1"));
  let target: Target | null = null;
  try {
    await Promise.all(servers.map((server) => server.start()));
    target = await startProxy(proxy, {
      dir,
      port: await freePort(),
      adminPort: await freePort(),
      upstreams: servers.map((server) => ({ host: "127.0.0.1", port: server.port })),
      cpus: "0",
    });
    await waitAllServing(
      target,
      servers.map((s) => s.name),
      10_000,
    );
    const load = new ConstantRateLoad({
      origin: target.origin,
      path: DECISION_PATH,
      ratePerSecond: plan.rate,
      connections: 4096,
      readServer: true,
    });
    load.start();
    await pause(2000);
    const victims = plan.kill.map((i) => servers[i]).filter((s) => s !== undefined);
    const killedAt = performance.now();
    await Promise.all(victims.map((server) => server.kill()));
    await pause(plan.outageMs);
    const listening = await Promise.all(victims.map((server) => server.start()));
    const timed = servers[plan.timed];
    const timedListening = listening[plan.kill.indexOf(plan.timed)] ?? 0;
    const first = timed ? await firstServed(load, timed.name, timedListening, 15_000) : null;
    await pause(1000);
    await load.stop();
    const summary = summarize(load.records);
    return {
      scenario: plan.name,
      proxy,
      rate: plan.rate,
      requests: summary.requests,
      failures: summary.failures,
      p99Ms: summary.p99Ms,
      longestMs: summary.maxMs,
      outageMs: Math.max(...listening) - killedAt,
      firstServedAfterMs: first ? first.doneAt - timedListening : null,
      errors: summary.errors,
    };
  } finally {
    await target?.proc?.kill();
    await Promise.all(servers.map((server) => server.kill()));
  }
}
