// Access logs through the built sidecar: the HCM's and tcp_proxy's access_log (file with json_format,
// stdout with the default text format) write one entry per request or connection with Envoy's
// operators — method, path, protocol, status, flags, body bytes, upstream host, connection id.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Client } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  freePort,
  httpListenerYaml,
  routeYaml,
  Sidecar,
  tcpListenerYaml,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const JSON_FORMAT = `
                    json_format:
                      start: "%START_TIME%"
                      method: "%REQ(:METHOD)%"
                      path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"
                      protocol: "%PROTOCOL%"
                      status: "%RESPONSE_CODE%"
                      flags: "%RESPONSE_FLAGS%"
                      received: "%BYTES_RECEIVED%"
                      sent: "%BYTES_SENT%"
                      duration: "%DURATION%"
                      upstream: "%UPSTREAM_HOST%"
                      cluster: "%UPSTREAM_CLUSTER%"
                      connection: "%CONNECTION_ID%"
                      agent: "%REQ(USER-AGENT)%"
                      answeredBy: "%RESP(X-UPSTREAM)%"
                      answerLength: "%RESP(CONTENT-LENGTH)%"
                      absent: "%RESP(X-NOT-SENT)%"`;

function accessLogYaml(file: string, indent: string): string {
  return `
${indent}access_log:
${indent}  - name: envoy.access_loggers.file
${indent}    typed_config:
${indent}      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
${indent}      path: ${file}
${indent}      log_format:${JSON_FORMAT.replaceAll("\n                    ", `\n${indent}        `)}
${indent}  - name: envoy.access_loggers.stdout
${indent}    typed_config:
${indent}      "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog`;
}

function entries(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("access_log", () => {
  it("logs each HTTP request and each TCP connection with Envoy's operators", async () => {
    const [pa, dead, listen, deadListen, tcpPort, admin] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const a = await new Upstream(pa, "a").start();
    const t = await new Upstream(await freePort(), "t", "tcp").start();
    cleanups.push(
      () => a.kill(),
      () => t.kill(),
    );
    const dir = mkdtempSync(path.join(os.tmpdir(), "tether-access-"));
    const httpLog = path.join(dir, "http.log");
    const tcpLog = path.join(dir, "tcp.log");
    const hcmIndent = "                ";
    const withLog = (listener: string, file: string): string =>
      listener.replace(
        "                stat_prefix:",
        `${accessLogYaml(file, hcmIndent).slice(1)}\n                stat_prefix:`,
      );
    const listeners = [
      withLog(httpListenerYaml(listen, [routeYaml({})]), httpLog),
      withLog(httpListenerYaml(deadListen, [routeYaml({ cluster: "dead" })], "dead"), httpLog),
      tcpListenerYaml(tcpPort, accessLogYaml(tcpLog, hcmIndent), "tcp-backend"),
    ].join("\n");
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        bootstrapYaml(
          admin,
          listeners,
          clusterYaml({ endpoints: [{ port: pa }] }) +
            clusterYaml({ name: "dead", endpoints: [{ port: dead }] }) +
            clusterYaml({ name: "tcp-backend", endpoints: [{ port: t.port }] }),
        ),
      ),
    );
    cleanups.push(() => s.stop());
    await s.start();

    const client = new Client(`http://127.0.0.1:${listen}`);
    cleanups.push(() => client.close());
    const body = "hello world"; // 11 bytes
    const res = await client.request({
      path: "/echo?x=1",
      method: "POST",
      body,
      headers: { "user-agent": "tether-test", "content-length": String(body.length) },
    });
    const answer = await res.body.text();
    expect(res.statusCode).toBe(200);
    const deadClient = new Client(`http://127.0.0.1:${deadListen}`);
    cleanups.push(() => deadClient.close());
    const failed = await (await deadClient.request({ path: "/x", method: "GET" })).body.text();
    expect(failed).toContain("connection failure");

    const [ok, uf] = await waitFor("two HTTP entries", () => {
      const e = entries(httpLog);
      return e.length >= 2 ? e : undefined;
    });
    expect(ok).toMatchObject({
      method: "POST",
      path: "/echo?x=1",
      protocol: "HTTP/1.1",
      status: 200,
      flags: "-",
      received: 11,
      sent: Buffer.byteLength(answer),
      upstream: `127.0.0.1:${pa}`,
      cluster: "backend",
      agent: "tether-test",
      // Response headers as relayed from the upstream's bytes.
      answeredBy: "a",
      answerLength: String(Buffer.byteLength(answer)),
      absent: null,
    });
    expect(typeof ok!["connection"]).toBe("string");
    expect(Number(ok!["connection"])).toBeGreaterThan(0);
    expect(ok!["duration"]).toBeGreaterThanOrEqual(0);
    expect(Math.abs(Date.parse(ok!["start"] as string) - Date.now())).toBeLessThan(60_000);
    expect(uf).toMatchObject({
      status: 503,
      flags: "UF",
      upstream: `127.0.0.1:${dead}`,
      cluster: "dead",
      received: 0,
    });
    // The stdout logger: Envoy's default text format.
    await waitFor("default-format line on stdout", () =>
      s.logs.includes(`"POST /echo?x=1 HTTP/1.1" 200 - 11 ${Buffer.byteLength(answer)} `),
    );

    const sock = net.connect(tcpPort, "127.0.0.1");
    await new Promise((r) => sock.once("connect", r));
    sock.write("whoami\n");
    const line = await new Promise<string>((resolve) =>
      sock.once("data", (c: Buffer) => {
        resolve(c.toString());
      }),
    );
    sock.end();
    const [tcpEntry] = await waitFor("a TCP entry", () => {
      const e = entries(tcpLog);
      return e.length >= 1 ? e : undefined;
    });
    expect(tcpEntry).toMatchObject({
      method: null,
      protocol: "-",
      status: null,
      flags: "-",
      received: 7,
      sent: Buffer.byteLength(line),
      upstream: `127.0.0.1:${t.port}`,
      cluster: "tcp-backend",
    });
  });

  it("refuses an unknown operator, naming the field", async () => {
    const admin = await freePort();
    const listener = httpListenerYaml(await freePort(), [routeYaml({})]).replace(
      "                stat_prefix:",
      `                access_log:
                  - name: envoy.access_loggers.stdout
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
                      log_format: { text_format_source: { inline_string: "%NOPE%" } }
                stat_prefix:`,
    );
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(bootstrapYaml(admin, listener, clusterYaml({ endpoints: [{ port: 1 }] }))),
    );
    cleanups.push(() => s.stop());
    await s.start(false);
    await waitFor("exit", () => s.proc?.exitCode !== null);
    expect(s.proc?.exitCode).toBe(1);
    expect(s.logs).toContain(
      "access_log[0].typed_config.log_format.text_format_source.inline_string: unsupported command operator %NOPE%",
    );
  });
});

/** A bootstrap with one HTTP listener on `listen`, logging to `log`, in front of the upstream on `upstream`. */
function loggedBootstrap(admin: number, listen: number, upstream: number, log: string): string {
  const listener = httpListenerYaml(listen, [routeYaml({})]).replace(
    "                stat_prefix:",
    `${accessLogYaml(log, "                ").slice(1)}\n                stat_prefix:`,
  );
  return bootstrapYaml(admin, listener, clusterYaml({ endpoints: [{ port: upstream }] }));
}

/** An upstream and a started sidecar logging to `log`. */
async function loggedSidecar(log: string): Promise<{ s: Sidecar; listen: number }> {
  const [pa, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  const a = await new Upstream(pa, "a").start();
  cleanups.push(() => a.kill());
  const s = new Sidecar(admin, Sidecar.writeConfig(loggedBootstrap(admin, listen, pa, log)));
  cleanups.push(() => s.stop());
  await s.start();
  return { s, listen };
}

describe("access_log of pipelined requests", () => {
  it("counts the body a request sent while it waited behind another", async () => {
    const log = path.join(mkdtempSync(path.join(os.tmpdir(), "tether-access-")), "http.log");
    const { listen } = await loggedSidecar(log);
    const c = net.connect(listen, "127.0.0.1");
    cleanups.push(() => {
      c.destroy();
    });
    c.write(
      "GET /slow?ms=300 HTTP/1.1\r\nHost: test\r\n\r\n" +
        "POST /behind HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nhello world",
    );
    const behind = await waitFor("the second request logged", () =>
      entries(log).find((e) => e["path"] === "/behind"),
    );
    expect(behind).toMatchObject({ method: "POST", status: 200, received: 11 });
  });
});

describe("an access log file that cannot be opened", () => {
  const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bin/tether-sidecar.js");

  it("stops the sidecar from starting and is refused on reload, naming the listener and the path", async () => {
    const [pa, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const a = await new Upstream(pa, "a").start();
    cleanups.push(() => a.kill());
    const dir = mkdtempSync(path.join(os.tmpdir(), "tether-access-"));
    const bad = path.join(dir, "missing-dir", "http.log");
    const config = (log: string): string => loggedBootstrap(admin, listen, pa, log);
    // Logged as JSON: the listener's name is in escaped quotes.
    const refused = `listener \\"http\\": access log ${bad} cannot be opened for writing: ENOENT`;

    const file = Sidecar.writeConfig(config(bad));
    const started = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const p = spawn(process.execPath, [BIN, "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      p.stdout.on("data", (c: Buffer) => (output += c.toString()));
      p.stderr.on("data", (c: Buffer) => (output += c.toString()));
      p.on("exit", (code) => {
        resolve({ code, output });
      });
    });
    expect(started.code).toBe(1);
    expect(started.output).toContain(refused);
    expect(started.output).toContain('"code":"TETHER_ERR_ACCESS_LOG","msg":"cannot start"');

    const good = path.join(dir, "http.log");
    const s = new Sidecar(admin, Sidecar.writeConfig(config(good)));
    cleanups.push(() => s.stop());
    await s.start();
    writeFileSync(s.configFile, config(bad));
    await waitFor("the reload refused", () => (s.logs.includes(refused) ? true : undefined));
    const res = await new Client(`http://127.0.0.1:${listen}`).request({ path: "/after", method: "GET" });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    await waitFor("the request logged by the running config", () =>
      entries(good).some((e) => e["path"] === "/after") ? true : undefined,
    );
  });

  it("starts with a named pipe nobody reads yet as its log (opened later, without blocking)", async () => {
    const fifo = path.join(mkdtempSync(path.join(os.tmpdir(), "tether-access-")), "shipper.pipe");
    execFileSync("mkfifo", [fifo]);
    const { listen } = await loggedSidecar(fifo);
    const res = await new Client(`http://127.0.0.1:${listen}`).request({ path: "/through", method: "GET" });
    expect(res.statusCode).toBe(200);
    await res.body.text();
  });
});
