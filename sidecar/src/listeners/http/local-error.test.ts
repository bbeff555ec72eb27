import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { UpstreamConnectError } from "../../upstream/connect.ts";
import { localDispatchError } from "./local-error.ts";

const require = createRequire(import.meta.url);
const errors = require("undici/lib/core/errors.js") as {
  InvalidArgumentError: new (m: string) => Error;
  NotSupportedError: new (m: string) => Error;
  SocketError: new (m: string) => Error;
  RequestAbortedError: new () => Error;
};

describe("localDispatchError", () => {
  it("answers 400 for a request undici refuses because of its own headers", () => {
    expect(localDispatchError(new errors.InvalidArgumentError("duplicate host header"), false)).toEqual({
      status: 400,
      text: "invalid request: duplicate host header",
    });
    expect(
      localDispatchError(new errors.NotSupportedError("expect header not supported"), true)?.status,
    ).toBe(400);
  });

  it("answers 500 when the path the route rewrote is what was refused", () => {
    const reply = localDispatchError(new errors.InvalidArgumentError("invalid request path"), true);
    expect(reply?.status).toBe(500);
    expect(reply?.text).toContain("invalid request path");
    expect(localDispatchError(new errors.InvalidArgumentError("invalid request path"), false)?.status).toBe(
      400,
    );
  });

  it("leaves failures on the wire to the retry and outlier logic", () => {
    expect(localDispatchError(new errors.SocketError("other side closed"), false)).toBeUndefined();
    expect(localDispatchError(new errors.RequestAbortedError(), false)).toBeUndefined();
    expect(
      localDispatchError(new UpstreamConnectError("h:1", "refused", 1, undefined), false),
    ).toBeUndefined();
    expect(
      localDispatchError(Object.assign(new Error("reset"), { code: "ECONNRESET" }), false),
    ).toBeUndefined();
    expect(localDispatchError(null, false)).toBeUndefined();
  });
});
