import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ListenerBindError, listenAt, listenOn } from "./bind.ts";

const servers: net.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

function server(): net.Server {
  const s = net.createServer((socket) => socket.end("hello"));
  servers.push(s);
  return s;
}

function fetchGreeting(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const c = net.connect(port, host);
    c.on("data", (d: Buffer) => (got += d.toString()));
    c.on("end", () => {
      resolve(got);
    });
    c.on("error", reject);
  });
}

describe("listenAt", () => {
  it("listens on an IP address (v4 and v6) and serves, as listen() does", async () => {
    const v4 = server();
    await listenAt(v4, 0, "127.0.0.1");
    expect(v4.listening).toBe(true);
    const a = v4.address() as net.AddressInfo;
    expect(a).toMatchObject({ address: "127.0.0.1", family: "IPv4" });
    expect(await fetchGreeting(a.port, "127.0.0.1")).toBe("hello");
    const v6 = server();
    await listenAt(v6, 0, "::1");
    const b = v6.address() as net.AddressInfo;
    expect(b).toMatchObject({ address: "::1", family: "IPv6" });
    expect(await fetchGreeting(b.port, "::1")).toBe("hello");
  });

  it("refuses what listen() refuses: a port out of range, a server already listening", async () => {
    const s = server();
    await expect(listenAt(s, 70000, "127.0.0.1")).rejects.toMatchObject({ code: "ERR_SOCKET_BAD_PORT" });
    await expect(listenAt(s, -1, "127.0.0.1")).rejects.toMatchObject({ code: "ERR_SOCKET_BAD_PORT" });
    await listenAt(s, 0, "127.0.0.1");
    await expect(listenAt(s, 0, "127.0.0.1")).rejects.toMatchObject({ code: "ERR_SERVER_ALREADY_LISTEN" });
    // A refusal leaves no listener of its own behind.
    expect(s.listenerCount("error")).toBe(0);
    expect(s.listenerCount("listening")).toBe(0);
  });

  it("resolves a name through listen()", async () => {
    const s = server();
    await listenAt(s, 0, "localhost");
    expect(s.listening).toBe(true);
  });

  it("rejects with the system's error for a port in use, and the server can listen again elsewhere", async () => {
    const first = server();
    await listenAt(first, 0, "127.0.0.1");
    const port = (first.address() as net.AddressInfo).port;
    const second = server();
    await expect(listenAt(second, port, "127.0.0.1")).rejects.toMatchObject({ code: "EADDRINUSE" });
    expect(second.listening).toBe(false);
    await expect(listenOn(second, { address: "127.0.0.1", port_value: port }, "l1")).rejects.toThrow(
      new ListenerBindError("l1", { address: "127.0.0.1", port_value: port }, { code: "EADDRINUSE" }),
    );
    await listenAt(second, 0, "127.0.0.1");
    expect(second.listening).toBe(true);
  });
});
