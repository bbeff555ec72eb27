import { describe, expect, it } from "vitest";
import { execFromIdle, jsonLines, loadArgs } from "./client.ts";

describe("client pod helpers", () => {
  it("builds the load command's flags from a spec", () => {
    expect(loadArgs({ target: "http://web.ns.svc:8000/app/orders" })).toEqual([
      "--target",
      "http://web.ns.svc:8000/app/orders",
      "--rate",
      "20",
      "--timeout-ms",
      "45000",
    ]);
    expect(
      loadArgs({
        target: "tls://b.ns.svc:20001",
        ratePerSecond: 50,
        slowMs: 250,
        timeoutMs: 1000,
        headers: { cookie: "JSESSIONID=s7" },
        ca: "/etc/ca/ca.crt",
        servername: "app.tether.test",
      }),
    ).toEqual([
      "--target",
      "tls://b.ns.svc:20001",
      "--rate",
      "50",
      "--timeout-ms",
      "1000",
      "--slow-ms",
      "250",
      "--header",
      "cookie: JSESSIONID=s7",
      "--ca",
      "/etc/ca/ca.crt",
      "--servername",
      "app.tether.test",
    ]);
  });

  it("reads JSON lines among other output, and the exec line from the idle role's logs", () => {
    const logs =
      'Warning: something\n{"event":"idle","exec":["/usr/local/bin/node","/app/e2e/dist/image/main.js"]}\n{bad\n';
    expect(jsonLines(logs)).toHaveLength(1);
    expect(execFromIdle(logs)).toEqual(["/usr/local/bin/node", "/app/e2e/dist/image/main.js"]);
    expect(execFromIdle('{"event":"idle","exec":[1]}')).toBeUndefined();
    expect(execFromIdle("")).toBeUndefined();
  });
});
