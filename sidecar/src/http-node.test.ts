import http from "node:http";
import { describe, expect, it } from "vitest";
import { nodeMaxHeaderSize, reasonPhrase, STATUS_REASONS } from "./http-node.ts";

describe("http-node", () => {
  it("has node:http's reason phrases, every one", () => {
    expect(STATUS_REASONS).toEqual(
      Object.fromEntries(Object.entries(http.STATUS_CODES).map(([code, text]) => [Number(code), text])),
    );
    expect(reasonPhrase(431)).toBe("Request Header Fields Too Large");
    expect(reasonPhrase(299)).toBe("unknown");
  });

  it("takes Node's header limit from node's own flag, wherever it is set", () => {
    expect(nodeMaxHeaderSize([], undefined)).toBe(16 * 1024);
    expect(nodeMaxHeaderSize(["--max-semi-space-size=4"], "--no-warnings")).toBe(16 * 1024);
    // Set: node:http answers with the value this process runs with (its own flags, here the default).
    expect(nodeMaxHeaderSize(["--max-http-header-size=32768"], undefined)).toBe(http.maxHeaderSize);
    expect(nodeMaxHeaderSize([], "--max-http-header-size 32768")).toBe(http.maxHeaderSize);
    expect(nodeMaxHeaderSize(["--max_http_header_size=32768"], undefined)).toBe(http.maxHeaderSize);
  });
});
