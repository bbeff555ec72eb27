// The S9 poller without a cluster: a stand-in `kubectl` runs `exec … -- node -e <script>` on this
// machine, against a local HTTP server that answers as the sidecar does before a route exists (404
// "no route matched") until the test "applies" the route, then as a demo server (200, JSON naming
// the server). What only a cluster shows (the route arriving by xDS) is left to the scenario.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientPod } from "../src/scenarios/client.ts";
import { Cluster } from "../src/scenarios/cluster.ts";
import { FirstAnswerTimeout, FirstAnswerWatch } from "../src/scenarios/first-answer.ts";

const FAKE_KUBECTL = `#!/bin/bash
# A stand-in for kubectl: exec runs the command on this machine.
set -eu
case "$1" in
  exec) while [ "$1" != "--" ]; do shift; done; shift; exec "$@" ;;
  *) echo "fake kubectl: unsupported: $*" >&2; exit 1 ;;
esac
`;

let dir = "";
let server: Server;
let origin = "";
/** Paths that answer as a demo server; the others get the sidecar's no-route 404. */
const routed = new Set<string>();
const seen: { path: string; connection: string | undefined }[] = [];
let client: ClientPod;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tether-fake-kubectl-"));
  const kubectl = join(dir, "kubectl");
  writeFileSync(kubectl, FAKE_KUBECTL);
  chmodSync(kubectl, 0o755);
  server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    seen.push({ path, connection: req.headers.connection });
    if (routed.has(path)) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ server: "app-1", allowed: true }));
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("no route matched");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const cluster = new Cluster({ kubeconfig: join(dir, "no-kubeconfig"), kubectl });
  client = new ClientPod(cluster, "ns", "client", [process.execPath, "unused-entry"]);
});

afterAll(async () => {
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  rmSync(dir, { recursive: true, force: true });
});

describe("first-answer watch (the S9 poller)", () => {
  it("polls a path every interval, each time on a new connection, until a demo server answers it", async () => {
    const watch = await FirstAnswerWatch.start(client, 50);
    try {
      setTimeout(() => routed.add("/v1/authorize"), 400).unref();
      const answer = await watch.firstAnswer(`${origin}/v1/authorize?resource=/orders`, 10_000);
      expect(answer.server).toBe("app-1");
      // ~8 polls in 400 ms at 50 ms; the answer came after the route did, not before.
      expect(answer.ms).toBeGreaterThanOrEqual(350);
      expect(answer.polls).toBeGreaterThanOrEqual(4);
      expect(answer.roundTripMs).toBeGreaterThanOrEqual(answer.ms);
      const polls = seen.filter((s) => s.path === "/v1/authorize");
      expect(polls).toHaveLength(answer.polls);
      expect(polls.every((s) => s.connection === "close")).toBe(true);

      // A second change on the same watch: measured from its own line.
      routed.add("/v2/authorize");
      const second = await watch.firstAnswer(`${origin}/v2/authorize`, 10_000);
      expect(second.polls).toBe(1);
      expect(second.ms).toBeLessThan(answer.ms);
    } finally {
      await watch.stop();
    }
  });

  it("reports a path never routed within the deadline with the last answer seen", async () => {
    const watch = await FirstAnswerWatch.start(client, 50);
    try {
      const failure = await watch.firstAnswer(`${origin}/never/`, 300).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(FirstAnswerTimeout);
      expect((failure as FirstAnswerTimeout).message).toContain("404 no route matched");
      expect((failure as FirstAnswerTimeout).ms).toBeGreaterThan(300);
    } finally {
      await watch.stop();
    }
  });
});
