// The bench's Node reference: what plain Node costs per proxied request when it does nothing but
// move bytes — each downstream connection gets its own upstream connection (to the upstreams in
// turn), and whatever arrives on one side is written to the other through node:net streams. No HTTP
// parsing, no routing, no pooling, no metrics. The sidecar's distance from this row is about what
// its HTTP work costs; this row's distance from HAProxy is about what the runtime costs.
//
//   node bench/src/node-relay.ts --port 8080 --upstreams 127.0.0.1:9001,127.0.0.1:9002
import net from "node:net";
import { parseArgs } from "node:util";

function endpoint(text: string): { host: string; port: number } {
  const at = text.lastIndexOf(":");
  const port = Number(text.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`--upstreams: "${text}" is not host:port`);
  }
  return { host: text.slice(0, at), port };
}

const { values } = parseArgs({
  options: { port: { type: "string" }, upstreams: { type: "string" } },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error("--port: a port number is required");
const upstreams = (values.upstreams ?? "").split(",").filter(Boolean).map(endpoint);
if (upstreams.length === 0) throw new Error("--upstreams: at least one host:port is required");

let next = 0;
const server = net.createServer({ noDelay: true }, (down) => {
  const target = upstreams[next++ % upstreams.length] ?? upstreams[0];
  const up = net.connect({ host: target?.host, port: target?.port ?? 0, noDelay: true });
  const close = (): void => {
    down.destroy();
    up.destroy();
  };
  down.on("data", (chunk: Buffer) => up.write(chunk));
  up.on("data", (chunk: Buffer) => down.write(chunk));
  down.on("error", close).on("close", close);
  up.on("error", close).on("close", close);
});
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`node-relay listening on 127.0.0.1:${port}\n`);
});
