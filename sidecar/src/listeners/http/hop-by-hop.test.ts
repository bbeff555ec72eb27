import { describe, expect, it } from "vitest";
import { isHopByHop } from "./proxy.ts";

describe("isHopByHop", () => {
  it("names every hop-by-hop header the proxy drops", () => {
    for (const name of [
      "connection",
      "keep-alive",
      "proxy-connection",
      "transfer-encoding",
      "te",
      "upgrade",
      "trailer",
      "expect",
      "http2-settings",
    ])
      expect(isHopByHop(name), name).toBe(true);
  });

  it("passes end-to-end headers, including ones of the same length", () => {
    for (const name of [
      "tx",
      "accept",
      "trailers",
      "content-length",
      "x-forwarded-for",
      "keep-alivex",
      "connectiom",
    ])
      expect(isHopByHop(name), name).toBe(false);
  });
});
