// TCP mode of the demo policy server: the line protocol of line-protocol.ts, server side.
import net from "node:net";
import { decide, isDecisionError } from "./decision.ts";
import {
  ERR_BAD_HANDSHAKE,
  ERR_BAD_REQUEST,
  ERR_HANDSHAKE_TIMEOUT,
  ERR_LINE_TOO_LONG,
  ERR_NO_CLIENT_HELLO,
  LineSplitter,
  PROTOCOL_VERSION,
  parseFields,
} from "./line-protocol.ts";
import type { ServerCounters, ServerIdentity } from "./server-common.ts";

export interface TcpServerOptions {
  /** A client that has not said HELLO within this time is told so and disconnected. */
  readonly handshakeTimeoutMs: number;
}

/** Creates (does not start) a TCP policy server. */
export function createTcpPolicyServer(
  identity: ServerIdentity,
  counters: ServerCounters,
  options: TcpServerOptions,
): net.Server {
  return net.createServer((socket) => {
    counters.connections++;
    serveConnection(socket, identity, counters, options);
  });
}

function serveConnection(
  socket: net.Socket,
  identity: ServerIdentity,
  counters: ServerCounters,
  options: TcpServerOptions,
): void {
  let handshaken = false;
  socket.setNoDelay(true);
  socket.setEncoding("utf8");
  // Errors on one connection (a client vanishing, a reset) concern that connection alone.
  socket.on("error", () => {
    socket.destroy();
  });
  const refuse = (code: string, message: string): void => {
    counters.handshakeFailures++;
    socket.end(`ERR ${code} ${message}\n`);
  };
  const handshakeTimer = setTimeout(() => {
    refuse(ERR_HANDSHAKE_TIMEOUT, `no client hello within ${options.handshakeTimeoutMs} ms`);
  }, options.handshakeTimeoutMs);
  socket.on("close", () => {
    clearTimeout(handshakeTimer);
  });

  const onLine = (line: string): void => {
    if (socket.writableEnded) return;
    if (!handshaken) {
      clearTimeout(handshakeTimer);
      const failure = checkClientHello(line, identity);
      if (failure) {
        refuse(failure.code, failure.message);
        return;
      }
      handshaken = true;
      socket.write("READY\n");
      return;
    }
    counters.requests++;
    socket.write(answer(line, identity));
    if (line === "QUIT") socket.end();
  };
  const splitter = new LineSplitter(onLine, () => {
    socket.end(`ERR ${ERR_LINE_TOO_LONG} line longer than the limit\n`);
  });
  socket.on("data", (chunk: string) => {
    splitter.push(chunk);
  });
  socket.write(`HELLO ${PROTOCOL_VERSION} server=${identity.name} instance=${identity.instance}\n`);
}

/** Checks the client's hello; returns why it is refused, or null when it is good. */
function checkClientHello(line: string, identity: ServerIdentity): { code: string; message: string } | null {
  const words = line.split(" ");
  if (words[0] !== "HELLO") {
    return {
      code: ERR_NO_CLIENT_HELLO,
      message: `bad security handshake: failed to receive client hello (got ${JSON.stringify(line.slice(0, 80))})`,
    };
  }
  const instance = parseFields(words.slice(1)).get("instance");
  if (instance !== identity.instance) {
    return {
      code: ERR_BAD_HANDSHAKE,
      message: `bad security handshake: client hello names instance ${instance ?? "(none)"}, this server is ${identity.instance}`,
    };
  }
  return null;
}

function answer(line: string, identity: ServerIdentity): string {
  const words = line.split(" ");
  const ok = (body: Record<string, unknown>): string =>
    `OK ${JSON.stringify({ ...body, server: identity.name, instance: identity.instance })}\n`;
  switch (words[0]) {
    case "AUTHZ": {
      const decision = decide(words[2] ?? null, words[3] ?? null);
      if (isDecisionError(decision)) return `ERR ${decision.code} ${decision.message}\n`;
      return ok({ id: words[1] ?? "", allow: decision.allow, reason: decision.reason });
    }
    case "PING":
      return ok({ id: words[1] ?? "", pong: true });
    case "QUIT":
      return "BYE\n";
    default:
      return `ERR ${ERR_BAD_REQUEST} unknown command ${JSON.stringify((words[0] ?? "").slice(0, 40))}\n`;
  }
}
