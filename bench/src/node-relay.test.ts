// The bench's Node reference, as the bench runs it: a child process between a client and two real
// upstream servers on loopback.
import { spawn, type ChildProcess, type ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "./proc.ts";

const RELAY = fileURLToPath(new URL("./node-relay.ts", import.meta.url));
const children: ChildProcess[] = [];
const servers: net.Server[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  for (const server of servers.splice(0)) server.close();
});

async function listening(server: net.Server): Promise<number> {
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as net.AddressInfo).port;
}

function relay(args: string[]): {
  child: ChildProcessByStdio<null, Readable, Readable>;
  output: Promise<{ code: number | null; text: string }>;
} {
  const child = spawn(process.execPath, [RELAY, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let text = "";
  child.stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (text += chunk.toString()));
  const output = once(child, "exit").then(([code]) => ({ code: code as number | null, text }));
  return { child, output };
}

function get(port: number, agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => {
          resolve(body);
        });
      })
      .on("error", reject);
  });
}

describe("bench node-relay", () => {
  it("copies requests and answers both ways, one upstream per downstream connection, upstreams in turn", async () => {
    const named = (name: string): http.Server => http.createServer((_req, res) => res.end(name));
    const [a, b] = [await listening(named("a")), await listening(named("b"))];
    const port = await freePort();
    const { child } = relay(["--port", String(port), "--upstreams", `127.0.0.1:${a},127.0.0.1:${b}`]);
    await once(child.stdout, "data");
    // Two keep-alive requests on one connection reach one upstream; a second connection the other.
    const first = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const second = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const answers = [await get(port, first), await get(port, first), await get(port, second)];
    first.destroy();
    second.destroy();
    expect(answers).toEqual(["a", "a", "b"]);
  });

  it("refuses an upstream that is not host:port, naming the argument", async () => {
    const { output } = relay(["--port", "1", "--upstreams", "127.0.0.1"]);
    const { code, text } = await output;
    expect(code).not.toBe(0);
    expect(text).toContain('--upstreams: "127.0.0.1" is not host:port');
  });
});
