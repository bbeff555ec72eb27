import { describe, expect, it } from "vitest";
import { parseRequestArgs } from "./request.ts";
import { parseTlsBackendArgs } from "./tls-backend.ts";

const read = (path: string): string => `PEM of ${path}`;

describe("request flags", () => {
  it("GET by default, POST with --data, headers lower-cased, tls with a CA", () => {
    const get = parseRequestArgs(["--url", "http://web.ns.svc:8000/app/orders"], read);
    expect(get).toMatchObject({ method: "GET", data: null, timeoutMs: 30_000, ca: null, servername: null });
    const post = parseRequestArgs(
      ["--url", "http://10.0.0.7:9901/notifications", "--data", "{}", "--header", "X-A: b"],
      read,
    );
    expect(post).toMatchObject({ method: "POST", data: "{}", headers: { "x-a": "b" } });
    expect(parseRequestArgs(["--url", "tls://b.ns.svc:20001", "--ca", "/ca"], read)).toMatchObject({
      ca: "PEM of /ca",
      servername: "b.ns.svc",
    });
  });

  it.each([
    [["--url", "ftp://x/"], "--url"],
    [["--url", "http://x/", "--timeout-ms", "0"], "--timeout-ms"],
    [["--url", "http://x/", "--header", ":x"], "--header"],
    [["--url", "tls://x:1"], "--ca"],
    [["--url", "http://x/", "--servername", "a"], "--ca/--servername"],
    [["--url", "http://x/", "--method", "G E T"], "--method"],
  ])("rejects %j naming %s", (argv, flag) => {
    expect(() => parseRequestArgs(argv, read)).toThrow(flag);
  });
});

describe("tls-backend flags", () => {
  it("reads the PEM files and names itself after the pod unless --name is given", () => {
    const o = parseTlsBackendArgs(
      ["--port", "50001", "--cert", "/t/tls.crt", "--key", "/t/tls.key"],
      "appserver-0",
      read,
    );
    expect(o).toEqual({
      name: "appserver-0",
      host: "0.0.0.0",
      port: 50001,
      cert: "PEM of /t/tls.crt",
      key: "PEM of /t/tls.key",
    });
    expect(
      parseTlsBackendArgs(["--port", "1", "--cert", "c", "--key", "k", "--name", "x"], "pod", read).name,
    ).toBe("x");
  });

  it.each([
    [["--port", "70000", "--cert", "c", "--key", "k"], "--port"],
    [["--port", "1", "--key", "k"], "--cert"],
    [["--port", "1", "--cert", "c"], "--key"],
    [["--port", "1", "--cert", "c", "--key", "k", "--name", "a b"], "--name"],
  ])("rejects %j naming %s", (argv, flag) => {
    expect(() => parseTlsBackendArgs(argv, "pod", read)).toThrow(flag);
  });

  it("names an unreadable file", () => {
    expect(() =>
      parseTlsBackendArgs(["--port", "1", "--cert", "/nope", "--key", "k"], "pod", () => {
        throw new Error("ENOENT");
      }),
    ).toThrow(/--cert: cannot read \/nope/);
  });
});
