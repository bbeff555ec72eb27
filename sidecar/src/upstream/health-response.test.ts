import { describe, expect, it } from "vitest";
import { HealthCheckResponseReader, MAX_RESPONSE_HEAD_BYTES } from "./health-response.ts";

function read(...chunks: string[]): ReturnType<HealthCheckResponseReader["push"]> {
  const r = new HealthCheckResponseReader();
  let out;
  for (const c of chunks) out = r.push(Buffer.from(c, "latin1"));
  return out;
}

describe("HealthCheckResponseReader", () => {
  it("ends a Content-Length body at its length; reusable on HTTP/1.1", () => {
    expect(read("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nok", "")).toBeUndefined();
    expect(read("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nok", "ok")).toEqual({
      kind: "response",
      status: 200,
      reusable: true,
    });
  });

  it("reads a chunked body split anywhere, trailers included", () => {
    const whole =
      "HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\n";
    const bytes = Array.from({ length: whole.length }, (_, i) => whole.charAt(i));
    expect(read(...bytes)).toEqual({ kind: "response", status: 503, reusable: true });
  });

  it("does not reuse after connection: close, HTTP/1.0, a body until close, or extra bytes", () => {
    const close = read("HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n");
    expect(close).toEqual({ kind: "response", status: 200, reusable: false });
    expect(read("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n")).toMatchObject({ reusable: false });
    expect(read("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n")).toMatchObject({
      reusable: true,
    });
    expect(read("HTTP/1.1 200 OK\r\n\r\nstreaming")).toMatchObject({ status: 200, reusable: false });
    expect(read("HTTP/1.1 204 No Content\r\n\r\nX")).toMatchObject({ status: 204, reusable: false });
  });

  it("reports a bad status line or an oversized head", () => {
    expect(read("SSH-2.0-OpenSSH\r\n\r\n")).toMatchObject({ kind: "malformed" });
    expect(read("HTTP/1.1 200 OK\r\n" + "x".repeat(MAX_RESPONSE_HEAD_BYTES))).toMatchObject({
      kind: "malformed",
    });
  });
});
