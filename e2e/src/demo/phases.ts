// The demo's scenario as data: phases that kill or restart policy servers while traffic runs.
// Shared by `npm run demo` and the e2e test, which runs a shorter form.
import type { PolicyServerProcess } from "./processes.ts";
import type { PhaseWindow } from "./summary.ts";
import type { ConstantRateTraffic } from "./traffic.ts";

export interface PhaseSpec {
  readonly name: string;
  /** Servers killed (SIGKILL) when the phase begins. */
  readonly kill?: readonly string[];
  /** Servers restarted when the phase begins. */
  readonly restart?: readonly string[];
  /** Traffic runs at least this long in the phase. */
  readonly minDurationMs: number;
  /** With restarts: the phase lasts until each restarted server answered, but at most this long. */
  readonly maxDurationMs?: number;
}

/** The full demo: one server killed and restarted, then both. */
export function demoPhases(first: string, second: string, scale = 1): PhaseSpec[] {
  const ms = (value: number): number => Math.round(value * scale);
  return [
    { name: "steady", minDurationMs: ms(6000) },
    { name: `kill ${first}`, kill: [first], minDurationMs: ms(6000) },
    { name: `restart ${first}`, restart: [first], minDurationMs: ms(6000), maxDurationMs: 20_000 },
    { name: "kill both", kill: [first, second], minDurationMs: ms(3000) },
    { name: "restart both", restart: [first, second], minDurationMs: ms(6000), maxDurationMs: 20_000 },
    { name: "steady", minDurationMs: ms(6000) },
  ];
}

export type PhaseLog = (message: string) => void;

/** Runs the phases in order against running traffic; returns each phase's time window. */
export async function runPhases(
  traffic: ConstantRateTraffic,
  servers: ReadonlyMap<string, PolicyServerProcess>,
  specs: readonly PhaseSpec[],
  log: PhaseLog = () => undefined,
  now: () => number = () => performance.now(),
): Promise<PhaseWindow[]> {
  const windows: PhaseWindow[] = [];
  const server = (name: string): PolicyServerProcess => {
    const found = servers.get(name);
    if (!found) throw new Error(`TETHER_ERR_DEMO_PHASE: no server named ${name}`);
    return found;
  };
  for (const spec of specs) {
    const startAt = now();
    log(`phase "${spec.name}"`);
    await Promise.all((spec.kill ?? []).map((name) => server(name).kill()));
    const restarted = await Promise.all(
      (spec.restart ?? []).map(async (name) => ({
        server: name,
        listeningAt: (await server(name).restart()).at,
      })),
    );
    const maxEnd = startAt + Math.max(spec.maxDurationMs ?? 0, spec.minDurationMs);
    await Promise.all(
      restarted.map(async ({ server: name, listeningAt }) => {
        const record = await traffic.waitForServer(name, listeningAt, Math.max(0, maxEnd - now()));
        log(
          record
            ? `  ${name} listening again; its first answer came ${(record.doneAt - listeningAt).toFixed(0)} ms later`
            : `  ${name} listening again but answered nothing within the phase`,
        );
      }),
    );
    const remaining = startAt + spec.minDurationMs - now();
    if (remaining > 0) await new Promise<void>((resolve) => setTimeout(resolve, remaining));
    windows.push({ name: spec.name, startAt, endAt: now(), restarted });
  }
  return windows;
}
