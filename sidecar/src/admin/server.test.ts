import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { DELAYED_CLOSE_MS } from "../listeners/http/server/session.ts";
import { AdminServer, type AdminView } from "./server.ts";

// The admin's own connection handling, on real sockets; the view is a sidecar with nothing configured.
const EMPTY: AdminView = {
  clusters: () => [],
  listeners: () => [],
  reloads: () => ({ success: 0, failure: 0, lastSuccessful: true }),
  state: () => "LIVE",
  configDump: () => ({}),
};

const open: (() => void)[] = [];
afterEach(() => {
  for (const f of open.splice(0)) f();
});

/** A client that never closes its side: only the server can end the connection. */
function halfOpenClient(port: number, text: string): Promise<{ reply: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    let reply = "";
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => socket.write(text));
    open.push(() => socket.destroy());
    socket.on("data", (d: Buffer) => (reply += d.toString()));
    socket.on("end", () => {
      resolve({ reply, socket });
    });
    socket.on("error", reject);
  });
}

describe("AdminServer", () => {
  it("closes a connection it refused even when the client keeps its side open, so close() ends", async () => {
    const admin = new AdminServer(EMPTY);
    const port = await admin.listen("127.0.0.1", 0);
    const { reply } = await halfOpenClient(port, "GET /ready HTTP/1.1\r\nno colon here\r\n\r\n");
    expect(reply).toBe("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    const connect = await halfOpenClient(port, "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n");
    expect(connect.reply).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    const started = performance.now();
    await admin.close();
    expect(performance.now() - started).toBeLessThan(DELAYED_CLOSE_MS + 1000);
  });
});
