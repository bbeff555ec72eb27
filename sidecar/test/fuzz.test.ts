// Mutated HTTP/1.1 requests against the built sidecar: a few thousand byte-level mutations of valid
// requests (seeded, so a failure replays), each on its own connection, with valid requests mixed in.
// The sidecar must keep answering the valid ones, never eject its healthy upstream because of what a
// client sent, and bring every active gauge back to zero once the clients are gone.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  httpListenerYaml,
  routeYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** mulberry32: a small deterministic generator, so a failing run can be replayed from its seed. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS: readonly string[] = [
  "GET /authorize?user=a HTTP/1.1\r\nHost: agent.local\r\nX-Session: s1\r\n\r\n",
  "POST /submit HTTP/1.1\r\nHost: agent.local\r\nContent-Length: 11\r\n\r\nhello world",
  "POST /chunks HTTP/1.1\r\nHost: agent.local\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
  "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  "HEAD /head HTTP/1.1\r\nHost: agent.local\r\nAccept: */*\r\nCookie: a=b; c=d\r\n\r\n",
  "GET http://agent.local/absolute HTTP/1.1\r\nHost: agent.local\r\n\r\n",
  "PUT /upload HTTP/1.1\r\nHost: agent.local\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
];

/** Byte-level pieces that parsers find interesting, spliced in by the mutator. */
const TOKENS: readonly string[] = [
  "\r\n",
  "\n",
  "\r",
  "\0",
  ":",
  " ",
  "\t",
  "Host: other\r\n",
  "Content-Length: 5\r\n",
  "Content-Length: -1\r\n",
  "Content-Length: 99999999999999999999\r\n",
  "Transfer-Encoding: chunked\r\n",
  "Transfer-Encoding: gzip, chunked\r\n",
  " folded\r\n",
  "ffffffffffffffff\r\n",
  "%00",
  "../",
  "HTTP/1.0",
  "HTTP/9.9",
  "CONNECT",
  "\u00ff\u00fe",
  "x".repeat(300),
];

function mutate(input: string, next: () => number): Buffer {
  let bytes = Buffer.from(input, "latin1");
  const pick = (n: number): number => Math.floor(next() * n);
  const rounds = 1 + pick(4);
  for (let r = 0; r < rounds; r++) {
    const at = pick(bytes.length + 1);
    switch (pick(6)) {
      case 0: {
        // Flip one byte.
        const copy = Buffer.from(bytes);
        if (copy.length > 0) copy[Math.min(at, copy.length - 1)] = pick(256);
        bytes = copy;
        break;
      }
      case 1: // Delete a run.
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + pick(8))]);
        break;
      case 2: // Insert a token.
        bytes = Buffer.concat([
          bytes.subarray(0, at),
          Buffer.from(TOKENS[pick(TOKENS.length)] ?? "", "latin1"),
          bytes.subarray(at),
        ]);
        break;
      case 3: // Duplicate a run (repeated headers, doubled chunks).
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at - pick(at + 1)), bytes.subarray(at)]);
        break;
      case 4: // Truncate.
        bytes = bytes.subarray(0, at);
        break;
      default: // Random bytes.
        bytes = Buffer.concat([
          bytes.subarray(0, at),
          Buffer.from(Array.from({ length: 1 + pick(6) }, () => pick(256))),
          bytes.subarray(at),
        ]);
    }
  }
  return bytes;
}

/** Sends one payload on a fresh connection; resolves when the sidecar closes it or after `lingerMs`. */
function sendRaw(port: number, payload: Buffer, lingerMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, lingerMs);
    socket.on("error", done);
    socket.on("close", done);
    socket.on("data", () => undefined);
    socket.on("connect", () => {
      socket.write(payload);
    });
  });
}

async function validRequest(port: number): Promise<number> {
  const res = await request(`http://127.0.0.1:${port}/valid`, {
    headers: { "x-session": "ok" },
    reset: true,
  });
  await res.body.text();
  return res.statusCode;
}

describe("fuzzing the http listener", () => {
  it("keeps serving valid requests through 3000 mutated ones, ejects nothing, and returns its gauges to zero", async () => {
    const [upPort, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const up = await new Upstream(upPort, "u0").start();
    cleanups.push(() => up.kill());
    // Retries and outlier detection on, so a request wrongly blamed on the upstream would show.
    const outlier = `      outlier_detection: { consecutive_5xx: 3, consecutive_gateway_failure: 3, interval: 0.5s, base_ejection_time: 30s, always_eject_one_host: true }\n`;
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, [routeYaml({ retryOn: "connect-failure,reset,5xx", numRetries: 2 })]),
      clusterYaml({ endpoints: [{ port: upPort }], extra: outlier }),
    );
    const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
    cleanups.push(() => s.stop());
    await s.start();

    const seed = 20261206;
    const next = generator(seed);
    const total = 3000;
    const concurrency = 16;
    const deadline = Date.now() + 60_000;
    let sent = 0;
    let validFailures = 0;
    while (sent < total && Date.now() < deadline) {
      const batch = Array.from({ length: concurrency }, () =>
        mutate(SEEDS[Math.floor(next() * SEEDS.length)] ?? "", next),
      );
      sent += batch.length;
      const [status] = await Promise.all([
        validRequest(listen),
        ...batch.map((payload) => sendRaw(listen, payload, 150)),
      ]);
      if (status !== 200) validFailures++;
    }
    expect(sent, `mutated requests sent before the time bound (seed ${seed})`).toBeGreaterThanOrEqual(1000);
    expect(validFailures, `valid requests that failed while fuzzing (seed ${seed})`).toBe(0);
    expect(await validRequest(listen)).toBe(200);

    // Everything the clients opened is closed; every gauge of work in progress returns to zero.
    const m = await waitFor(
      "active gauges back to zero",
      async () => {
        const all = await s.metrics();
        const active = [...all.entries()].filter(
          ([k, v]) =>
            v !== 0 &&
            (/_(rq|cx)_active\{/.test(k) ||
              k.startsWith("tether_held_requests") ||
              /pending_active\{/.test(k)) &&
            // The admin's own scrape and the pooled upstream connection are allowed to stay.
            !k.startsWith("envoy_cluster_upstream_cx_active"),
        );
        return active.length === 0 ? all : undefined;
      },
      10_000,
    );
    expect(m.get('envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name="backend"}')).toBe(0);
    expect(
      m.get('envoy_cluster_outlier_detection_ejections_enforced_total{envoy_cluster_name="backend"}'),
    ).toBe(0);
    expect(await s.healthFlags("backend", upPort)).toBe("healthy");
  });
});
