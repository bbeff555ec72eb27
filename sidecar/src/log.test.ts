import { describe, expect, it } from "vitest";
import { createLogger } from "./log.ts";

function capture(level: Parameters<typeof createLogger>[0]): {
  lines: () => Record<string, unknown>[];
  log: ReturnType<typeof createLogger>;
} {
  const out: string[] = [];
  const log = createLogger(level, (line) => out.push(line));
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("createLogger", () => {
  it("writes pino's JSON lines: level, time, component, child bindings, fields, msg", () => {
    const { log, lines } = capture("info");
    log.child({ listener: "l1" }).warn({ conn: "d1", bytesIn: 3 }, "downstream connection closed");
    log.info("ready");
    const [first, second] = lines();
    expect(Object.keys(first!)).toEqual(["level", "time", "component", "listener", "conn", "bytesIn", "msg"]);
    expect(first).toMatchObject({
      level: 40,
      component: "tether-sidecar",
      listener: "l1",
      conn: "d1",
      msg: "downstream connection closed",
    });
    expect(typeof first!["time"]).toBe("number");
    expect(second).toMatchObject({ level: 30, msg: "ready" });
  });

  it("drops lines below the level and everything when silent", () => {
    const info = capture("info");
    info.log.debug({ a: 1 }, "hidden");
    info.log.error({ a: 1 }, "shown");
    expect(info.lines().map((l) => l["msg"])).toEqual(["shown"]);
    const silent = capture("silent");
    silent.log.fatal("nothing");
    expect(silent.lines()).toEqual([]);
  });

  it("serializes an Error passed as err, with its code", () => {
    const { log, lines } = capture("trace");
    const err = Object.assign(new Error("boom"), { code: "ECONNRESET" });
    log.error({ err }, "failed");
    expect(lines()[0]!["err"]).toMatchObject({ type: "Error", message: "boom", code: "ECONNRESET" });
  });
});
