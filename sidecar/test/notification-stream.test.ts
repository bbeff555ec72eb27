// The decision cache's subscription against the demo policy server as a child process: events
// published on the policy server reach the cache through GET /notifications/stream.
import { spawn } from "node:child_process";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import { decisionCacheSchema } from "@tether/envoy";
import { DecisionCache, NotificationStream } from "../src/listeners/http/decision-cache.ts";
import { exited, freePort, waitFor } from "./support/harness.ts";

const POLICY_SERVER = fileURLToPath(new URL("../../e2e/src/demo/policy-server.ts", import.meta.url));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startPolicyServer(port: number): Promise<() => Promise<void>> {
  const proc = spawn(process.execPath, [POLICY_SERVER, "--port", String(port), "--name", "ps1"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on("data", (c: Buffer) => {
      if (c.toString().includes('"listening"')) resolve();
    });
    proc.once("exit", (code) => {
      reject(new Error(`policy server exited with ${code}`));
    });
  });
  return async () => {
    proc.kill("SIGKILL");
    await exited(proc);
  };
}

describe("decision cache notification stream", () => {
  it("receives the policy server's published events, and reconnects after it restarts", async () => {
    const port = await freePort();
    let stop = await startPolicyServer(port);
    cleanups.push(() => stop());
    const cache = new DecisionCache(
      decisionCacheSchema.parse({ "@type": "type.googleapis.com/tether.v1alpha1.DecisionCache" }),
    );
    const sub = new NotificationStream(cache, {
      open: () => http.request({ host: "127.0.0.1", port, path: "/notifications/stream", agent: false }),
      baseIntervalMs: 50,
      maxIntervalMs: 200,
    });
    cleanups.push(() => {
      sub.stop();
    });
    sub.start();
    await waitFor("subscribed", () => sub.stats.connects === 1);
    const publish = async (event: object): Promise<unknown> => {
      const res = await request(`http://127.0.0.1:${port}/notifications/publish`, {
        method: "POST",
        body: JSON.stringify(event),
      });
      return { status: res.statusCode, body: await res.body.json() };
    };
    cache.store("a", 200, [], Buffer.from("allow"), "s1");
    cache.store("b", 200, [], Buffer.from("allow"), "s2");
    expect(await publish({ session: "s1" })).toEqual({ status: 200, body: { delivered: 1 } });
    await waitFor("session invalidated", () => cache.size === 1);
    expect(await publish({ type: "policy-changed" })).toEqual({ status: 200, body: { delivered: 1 } });
    await waitFor("all invalidated", () => cache.size === 0);
    expect((await publish({ nonsense: 1 })) as { status: number }).toMatchObject({ status: 400 });

    // The policy server dies and comes back: the stream is reopened and the cache starts clean.
    cache.store("c", 200, [], Buffer.from("allow"), "s3");
    await stop();
    await waitFor("stream down", () => sub.stats.disconnects >= 1);
    stop = await startPolicyServer(port);
    await waitFor("resubscribed", () => sub.stats.connects === 2);
    expect(cache.size).toBe(0);
    cache.store("d", 200, [], Buffer.from("allow"), "s4");
    expect(await publish({ session: "s4" })).toEqual({ status: 200, body: { delivered: 1 } });
    await waitFor("session invalidated after reconnect", () => cache.size === 0);
  });
});
