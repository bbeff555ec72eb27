import { describe, expect, it } from "vitest";
import { parseWrkDuration, parseWrkOutput } from "./wrk.ts";

const SAMPLE = `Running 5s test @ http://127.0.0.1:18201/payload
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.12ms  310.20us   9.87ms   90.12%
    Req/Sec    28.61k     1.02k   30.11k    72.00%
  Latency Distribution
     50%    1.08ms
     75%    1.20ms
     90%    1.41ms
     99%  854.00us
  142345 requests in 5.00s, 170.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  28469.10
Transfer/sec:     34.02MB
`;

describe("wrk output", () => {
  it("reads throughput, percentiles with their units, and every kind of error", () => {
    expect(parseWrkOutput(SAMPLE)).toEqual({
      requestsPerSecond: 28469.1,
      p50Ms: 1.08,
      p99Ms: 0.854,
      errors: 7,
    });
  });

  it("converts wrk's duration units to ms", () => {
    expect(parseWrkDuration("34.00us")).toBeCloseTo(0.034);
    expect(parseWrkDuration("2.00s")).toBe(2000);
    expect(parseWrkDuration("1.5m")).toBe(90_000);
    expect(parseWrkDuration("fast")).toBeNaN();
  });

  it("fails with a clear error when there is no report", () => {
    expect(() => parseWrkOutput("unable to connect to 127.0.0.1:1 Connection refused")).toThrow(
      /TETHER_ERR_BENCH_WRK/,
    );
  });
});
