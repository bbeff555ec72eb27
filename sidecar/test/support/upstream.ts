// A small upstream for integration tests, run as a child process (so tests can SIGKILL it):
//   node upstream.ts --port N --name NAME [--mode http|tcp]
// http: GET /healthz → 200; GET /slow?ms=N → waits; /reset → counts, then destroys the socket
// without answering; /flaky → resets every odd request, answers even ones; /host → the Host header it
// got; /__stats → JSON counts.
// tcp: echoes bytes; a line "whoami\n" answers with the name.
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { parseArgs } from "node:util";
import { parseProxyHeaderV2 } from "../../src/upstream/proxy-protocol.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    name: { type: "string", default: "upstream" },
    mode: { type: "string", default: "http" },
    "keep-alive-ms": { type: "string", default: "60000" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    "expect-proxy": { type: "boolean", default: false },
    "tls-client-ca": { type: "string" },
  },
});
const port = Number(values.port);
const name = values.name;
let connections = 0;
let openConnections = 0;
const paths = new Map<string, number>();
let flaky = 0;
let lastServername: string | false | undefined;
let lastClientCn: string | undefined;
const servedOnSocket = new WeakMap<object, number>();

function count(path: string): void {
  paths.set(path, (paths.get(path) ?? 0) + 1);
}

function ready(): void {
  process.stdout.write(JSON.stringify({ listening: port, pid: process.pid }) + "\n");
}

if (values.mode === "tcp") {
  const server = net.createServer((socket) => {
    connections++;
    openConnections++;
    socket.on("close", () => openConnections--);
    socket.on("error", () => undefined);
    // With --expect-proxy every connection starts with a PROXY v2 header naming the real client.
    let pending: Buffer | undefined = values["expect-proxy"] ? Buffer.alloc(0) : undefined;
    let client = "direct";
    socket.on("data", (data: Buffer) => {
      let chunk = data;
      if (pending !== undefined) {
        pending = Buffer.concat([pending, chunk]);
        const header = parseProxyHeaderV2(pending);
        if (header === undefined) {
          if (pending.length > 64) socket.destroy();
          return;
        }
        client = header.addresses
          ? `${header.addresses.sourceAddress}:${header.addresses.sourcePort}`
          : "local";
        chunk = pending.subarray(header.length);
        pending = undefined;
        if (chunk.length === 0) return;
      }
      const text = chunk.toString();
      // Lets an http_health_check probe this TCP server too.
      if (text.startsWith("GET /healthz")) socket.end("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
      else if (text.includes("whoami"))
        socket.write(values["expect-proxy"] ? `${name} ${client}\n` : `${name}\n`);
      else socket.write(chunk);
    });
  });
  server.listen(port, "127.0.0.1", ready);
} else {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname;
    if (path === "/__stats") {
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          name,
          connections,
          openConnections,
          lastServername,
          lastClientCn,
          paths: Object.fromEntries(paths),
        }),
      );
      return;
    }
    count(`${req.method} ${path}`);
    const servername = (req.socket as { servername?: string | false }).servername;
    if (servername !== undefined) lastServername = servername;
    const peer = (
      req.socket as { getPeerCertificate?: () => { subject?: { CN?: string } } }
    ).getPeerCertificate?.();
    if (peer?.subject?.CN !== undefined) lastClientCn = peer.subject.CN;
    const body: Buffer[] = [];
    req.on("data", (c: Buffer) => body.push(c));
    req.on("end", () => {
      if (path === "/reset") {
        req.socket.destroy();
        return;
      }
      if (path === "/stale") {
        // Each connection answers once; a second request on it meets a closed connection, as when
        // a server drops an idle keep-alive connection just as the proxy reuses it.
        const served = servedOnSocket.get(req.socket) ?? 0;
        servedOnSocket.set(req.socket, served + 1);
        if (served >= 1) {
          req.socket.destroy();
          return;
        }
      }
      if (path === "/flaky") {
        flaky++;
        if (flaky % 2 === 1) {
          req.socket.destroy();
          return;
        }
      }
      if (path === "/fail-on") {
        res.statusCode = url.searchParams.get("name") === name ? 503 : 200;
        res.end(name);
        return;
      }
      if (path === "/host") {
        res.end(req.headers.host ?? "");
        return;
      }
      if (path === "/status") {
        res.statusCode = Number(url.searchParams.get("code") ?? "200");
        res.end(name);
        return;
      }
      const ms = Number(url.searchParams.get("ms") ?? "0");
      const answer = (): void => {
        res.setHeader("x-upstream", name);
        res.end(`${name} ${req.method} ${path} ${Buffer.concat(body).length}`);
      };
      if (path === "/slow" && ms > 0) setTimeout(answer, ms);
      else answer();
    });
  };
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  const server: http.Server =
    cert !== undefined && key !== undefined
      ? https.createServer(
          {
            cert: readFileSync(cert),
            key: readFileSync(key),
            // With --tls-client-ca the server demands a client certificate signed by that CA.
            ...(values["tls-client-ca"] === undefined
              ? {}
              : { ca: readFileSync(values["tls-client-ca"]), requestCert: true, rejectUnauthorized: true }),
          },
          handler,
        )
      : http.createServer(handler);
  server.keepAliveTimeout = Number(values["keep-alive-ms"]);
  server.on("connection", (socket) => {
    connections++;
    openConnections++;
    socket.on("close", () => openConnections--);
  });
  server.listen(port, "127.0.0.1", ready);
}
