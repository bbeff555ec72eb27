// Steady HTTP load through the sidecar from a few sequential client loops, recording what a user
// would notice: failures, the slowest request, and which upstream answered.
import { Pool } from "undici";

export interface LoadResult {
  ok: number;
  failures: string[];
  maxMs: number;
  byUpstream: Map<string, number>;
}

/** GET /work from `workers` sequential loops until stop() resolves (the upstream's name starts each answer). */
export function steadyLoad(
  port: number,
  workers: number,
): { stop: () => Promise<LoadResult>; result: LoadResult } {
  const client = new Pool(`http://127.0.0.1:${port}`, { connections: workers });
  const result: LoadResult = { ok: 0, failures: [], maxMs: 0, byUpstream: new Map() };
  let running = true;
  const loop = async (): Promise<void> => {
    while (running) {
      const t0 = performance.now();
      try {
        const res = await client.request({ path: "/work", method: "GET" });
        const text = await res.body.text();
        if (res.statusCode === 200) {
          result.ok++;
          const name = text.split(" ")[0] ?? "?";
          result.byUpstream.set(name, (result.byUpstream.get(name) ?? 0) + 1);
        } else result.failures.push(`${res.statusCode} ${text}`);
      } catch (err) {
        result.failures.push(String(err));
      }
      result.maxMs = Math.max(result.maxMs, performance.now() - t0);
    }
  };
  const loops = Array.from({ length: workers }, () => loop());
  return {
    result,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      await client.close();
      return result;
    },
  };
}
