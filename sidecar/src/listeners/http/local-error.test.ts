import { describe, expect, it } from "vitest";
import { UpstreamConnectError } from "../../upstream/connect.ts";
import { UpstreamProtocolError, UpstreamRequestError, UpstreamResetError } from "../../upstream/pool.ts";
import { localDispatchError } from "./local-error.ts";

describe("localDispatchError", () => {
  it("answers 400 for a request the pool refuses because of its own headers", () => {
    expect(localDispatchError(new UpstreamRequestError("duplicate host header"), false)).toEqual({
      status: 400,
      text: "invalid request: duplicate host header",
    });
    expect(localDispatchError(new UpstreamRequestError("invalid x-a header"), true)?.status).toBe(400);
  });

  it("answers 500 when the path the route rewrote is what was refused", () => {
    const reply = localDispatchError(new UpstreamRequestError("invalid request path"), true);
    expect(reply?.status).toBe(500);
    expect(reply?.text).toContain("invalid request path");
    expect(localDispatchError(new UpstreamRequestError("invalid request path"), false)?.status).toBe(400);
  });

  it("leaves failures on the wire to the retry and outlier logic", () => {
    expect(localDispatchError(new UpstreamResetError("other side closed"), false)).toBeUndefined();
    expect(localDispatchError(new UpstreamProtocolError("bad status line"), false)).toBeUndefined();
    expect(
      localDispatchError(new UpstreamConnectError("h:1", "refused", 1, undefined), false),
    ).toBeUndefined();
    expect(
      localDispatchError(Object.assign(new Error("reset"), { code: "ECONNRESET" }), false),
    ).toBeUndefined();
    expect(localDispatchError(null, false)).toBeUndefined();
  });
});
