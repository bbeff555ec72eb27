import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { parseLoadArgs, runLoad, summarizeLoad } from "./load.ts";
import type { RequestRecord } from "./traffic.ts";

function rec(intendedAt: number, latency: number | null, server: string | null, status = 200): RequestRecord {
  return {
    intendedAt,
    sentAt: intendedAt,
    doneAt: latency === null ? 0 : intendedAt + latency,
    status: latency === null ? 0 : status,
    ok: latency !== null && status === 200,
    server,
    error:
      latency !== null && status === 200 ? null : status === 0 ? "ECONNREFUSED: refused" : `status ${status}`,
  };
}

const OPTS = { slowMs: 100, target: "http://web:8000/app/orders", ratePerSecond: 10 };

describe("load summary", () => {
  it("counts, percentiles and no recovery when every request was good", () => {
    const records = Array.from({ length: 100 }, (_, i) => rec(1000 + i * 10, i + 1, i < 50 ? "ps1" : "ps2"));
    const s = summarizeLoad(records, { startAt: 1000, endAt: 2000 }, OPTS);
    expect(s).toMatchObject({
      event: "summary",
      requests: 100,
      failures: 0,
      failureSamples: [],
      errors: [],
      p50Ms: 50,
      p99Ms: 99,
      maxMs: 100,
      slow: 0,
      recoverMs: 0,
      firstBadAtMs: null,
      lastBadAtMs: null,
      servedBy: { ps1: 50, ps2: 50 },
      switches: 1,
      unfinished: 0,
      durationMs: 1000,
    });
  });

  it("lists the slowest answered requests with how late the client itself sent them", () => {
    const records = Array.from({ length: 20 }, (_, i) => rec(1000 + i * 10, 2, "ps1"));
    records[3] = { ...rec(1030, 80, "ps2"), sentAt: 1100 }; // the client's loop was 70 ms late
    records[7] = rec(1070, 40, "ps1");
    records[9] = rec(1090, null, null); // unanswered: not among the slowest answers
    const s = summarizeLoad(records, { startAt: 1000, endAt: 2000 }, OPTS);
    expect(s.slowest).toHaveLength(5);
    expect(s.slowest?.slice(0, 2)).toEqual([
      { atMs: 30, latencyMs: 80, lateMs: 70, server: "ps2" },
      { atMs: 70, latencyMs: 40, lateMs: 0, server: "ps1" },
    ]);
  });

  it("answers naming a certificate serial: counted by serial, with the first answer per server", () => {
    const withSerial = (r: RequestRecord, certSerial: string | null): RequestRecord => ({ ...r, certSerial });
    const records = [
      withSerial(rec(0, 10, "ps-a"), "OLD"),
      withSerial(rec(100, 10, "ps-b"), "OLD"),
      withSerial(rec(200, 10, "ps-a"), "NEW"),
      withSerial(rec(300, 10, null, 503), "NEW"), // a failure is not an answer under any certificate
      withSerial(rec(400, 30, "ps-b"), "OLD"), // an open connection kept its certificate
      withSerial(rec(500, 10, "ps-b"), "NEW"),
      withSerial(rec(600, 10, "ps-a"), "NEW"),
    ];
    const s = summarizeLoad(records, { startAt: 0, endAt: 1000 }, OPTS);
    expect(s.certificates).toEqual({
      OLD: { answers: 3, firstAtMs: 10, lastAtMs: 430, firstByServer: { "ps-a": 10, "ps-b": 110 } },
      NEW: { answers: 3, firstAtMs: 210, lastAtMs: 610, firstByServer: { "ps-a": 210, "ps-b": 510 } },
    });
    // Without serials (plain HTTP servers) the field is absent.
    expect(
      summarizeLoad([rec(0, 10, "ps-a")], { startAt: 0, endAt: 100 }, OPTS).certificates,
    ).toBeUndefined();
  });

  it("time to recover spans the first bad request's schedule to the last bad one's completion", () => {
    // Scheduled out of completion order on purpose: the input order must not matter.
    const records = [
      rec(0, 5, "ps1"),
      rec(100, 5, "ps1"),
      rec(300, 40, null, 503), // first bad: a failure scheduled at 300
      rec(200, 450, "ps2"), // slow (450 > 100), scheduled before it: the first bad is this one, at 200
      rec(400, 20, null, 0), // failure
      rec(500, 700, "ps2"), // slow, completes at 1200: the last bad completion
      rec(600, 5, "ps2"),
      rec(700, 5, "ps2"),
    ];
    const s = summarizeLoad(records, { startAt: 0, endAt: 1500 }, OPTS);
    expect(s.requests).toBe(8);
    expect(s.failures).toBe(2);
    expect(s.slow).toBe(2);
    expect(s.firstBadAtMs).toBe(200);
    expect(s.lastBadAtMs).toBe(1200);
    expect(s.recoverMs).toBe(1000);
    expect(s.failureSamples).toEqual([
      { atMs: 300, status: 503, error: "status 503" },
      { atMs: 400, status: 0, error: "ECONNREFUSED: refused" },
    ]);
    expect(s.errors).toEqual([
      { error: "status 503", count: 1 },
      { error: "ECONNREFUSED: refused", count: 1 },
    ]);
    // Successful answers in schedule order: ps1 ps1 ps2 ps2 ps2 ps2 → one switch.
    expect(s.servedBy).toEqual({ ps1: 2, ps2: 4 });
    expect(s.switches).toBe(1);
    expect(s.maxMs).toBe(700);
  });

  it("a request unanswered at the stop is an unfinished failure that lasts until the stop", () => {
    const s = summarizeLoad([rec(0, 5, "a"), rec(50, null, null)], { startAt: 0, endAt: 900 }, OPTS);
    expect(s).toMatchObject({
      failures: 1,
      unfinished: 1,
      firstBadAtMs: 50,
      lastBadAtMs: 900,
      recoverMs: 850,
    });
    expect(s.failureSamples[0]?.error).toMatch(/^unfinished/);
    // Latency percentiles are over answered requests only.
    expect(s.maxMs).toBe(5);
  });

  it("keeps five failure samples and the ten most frequent errors", () => {
    const records = Array.from({ length: 30 }, (_, i) => rec(i, 1, null, 500 + (i % 12)));
    const s = summarizeLoad(records, { startAt: 0, endAt: 30 }, OPTS);
    expect(s.failures).toBe(30);
    expect(s.failureSamples).toHaveLength(5);
    expect(s.errors).toHaveLength(10);
    expect(s.errors[0]).toEqual({ error: "status 500", count: 3 });
    expect(s.switches).toBe(0);
    expect(s.recoverMs).toBe(30);
  });

  it("an empty run summarizes to zeros", () => {
    expect(summarizeLoad([], { startAt: 5, endAt: 5 }, OPTS)).toMatchObject({
      requests: 0,
      failures: 0,
      p50Ms: 0,
      p99Ms: 0,
      maxMs: 0,
      recoverMs: 0,
    });
  });
});

describe("load flags", () => {
  it("defaults and http headers", () => {
    const o = parseLoadArgs([
      "--target",
      "http://web.ns.svc:8000/app/orders?x=1",
      "--header",
      "Cookie: JSESSIONID=s7",
    ]);
    expect(o).toMatchObject({
      target: "http://web.ns.svc:8000/app/orders?x=1",
      ratePerSecond: 20,
      headers: { cookie: "JSESSIONID=s7" },
      timeoutMs: 45_000,
      slowMs: 1000,
      maxInFlight: 1024,
      maxDurationMs: 900_000,
      durationMs: null,
      ca: null,
      servername: null,
    });
  });

  it("tls targets read the CA and verify the target's host name unless --servername is given", () => {
    const read = (path: string): string => `PEM of ${path}`;
    expect(parseLoadArgs(["--target", "tls://broker.ns.svc:20001", "--ca", "/ca.crt"], read)).toMatchObject({
      ca: "PEM of /ca.crt",
      servername: "broker.ns.svc",
    });
    expect(
      parseLoadArgs(["--target", "tls://b:1", "--ca", "/c", "--servername", "app.tether.test"], read)
        .servername,
    ).toBe("app.tether.test");
  });

  it.each([
    [["--rate", "5"], "--target"],
    [["--target", "ftp://x/"], "--target"],
    [["--target", "tls://b:1/path", "--ca", "c"], "--target"],
    [["--target", "tls://b:1"], "--ca"],
    [["--target", "http://x/", "--ca", "c"], "--ca"],
    [["--target", "http://x/", "--rate", "0"], "--rate"],
    [["--target", "http://x/", "--slow-ms", "1.5"], "--slow-ms"],
    [["--target", "http://x/", "--header", "nocolon"], "--header"],
    [["--target", "http://x/", "--bogus"], "bogus"],
  ])("rejects %j naming %s", (argv, flag) => {
    expect(() => parseLoadArgs(argv, () => "")).toThrow(flag);
  });

  it("names an unreadable CA file", () => {
    expect(() =>
      parseLoadArgs(["--target", "tls://b:1", "--ca", "/nope"], () => {
        throw new Error("ENOENT");
      }),
    ).toThrow(/--ca: cannot read \/nope/);
  });
});

describe("load run", () => {
  it("prints started, stops on a 'stop' line and prints the summary (nothing listening: all fail fast)", async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const lines: string[] = [];
    let firstLine: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (firstLine = resolve));
    output.on("data", (chunk: Buffer) => {
      lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      firstLine();
    });
    // Port 9 on loopback (discard) is closed here; connections are refused at once.
    const options = parseLoadArgs([
      "--target",
      "http://127.0.0.1:9/x",
      "--rate",
      "200",
      "--timeout-ms",
      "2000",
    ]);
    const run = runLoad(options, { input, output });
    await started;
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({ event: "started", ratePerSecond: 200 });
    input.write("not yet\nstop\n");
    const summary = await run;
    expect(summary.requests).toBeGreaterThan(0);
    expect(summary.failures).toBe(summary.requests);
    expect(summary.errors[0]?.error).toMatch(/ECONNREFUSED/);
    expect(JSON.parse(lines[1] ?? "{}")).toMatchObject({ event: "summary", stoppedBy: "stop" });
  });

  it("stops when stdin ends", async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const run = runLoad(parseLoadArgs(["--target", "http://127.0.0.1:9/x", "--rate", "1"]), {
      input,
      output,
    });
    input.end();
    const text = await new Promise<string>((resolve) => {
      let all = "";
      output.on("data", (chunk: Buffer) => {
        all += chunk.toString("utf8");
        if (all.includes('"summary"')) resolve(all);
      });
    });
    await run;
    expect(text).toContain('"stoppedBy":"stdin closed"');
  });
});
