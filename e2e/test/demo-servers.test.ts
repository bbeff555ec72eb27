// The demo policy servers as child processes: HTTP answers, the TCP handshake, and the way a
// restart makes a stale connection detectable (the legacy agent's "bad security handshake").
import { afterAll, describe, expect, it } from "vitest";
import net from "node:net";
import { request } from "undici";
import {
  LineClient,
  ERR_BAD_HANDSHAKE,
  ERR_NO_CLIENT_HELLO,
  LineProtocolError,
} from "../src/demo/line-protocol.ts";
import { PolicyServerProcess } from "../src/demo/processes.ts";

const started: PolicyServerProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((server) => server.kill()));
});

async function start(name: string, protocol: "http" | "tcp"): Promise<PolicyServerProcess> {
  const server = new PolicyServerProcess({ name, port: 0, protocol });
  started.push(server);
  await server.start();
  return server;
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await request(url, { headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
}

describe("demo policy server, HTTP", () => {
  it("answers decisions, health, echo and stats, naming itself", async () => {
    const ps = await start("ps-http", "http");
    const base = `http://127.0.0.1:${ps.listening.port}`;
    const allowed = await getJson(`${base}/authorize?resource=/app/a&action=get`);
    expect(allowed).toMatchObject({ status: 200, body: { allow: true, server: "ps-http", action: "GET" } });
    expect(allowed.body.instance).toBe(ps.listening.instance);
    const denied = await getJson(`${base}/authorize?resource=/private/x&action=GET`);
    expect(denied.body).toMatchObject({ allow: false });
    const bad = await getJson(`${base}/authorize?action=GET`);
    expect(bad).toMatchObject({
      status: 400,
      body: { error: { code: "TETHER_ERR_DEMO_BAD_REQUEST", message: "resource: required" } },
    });
    expect((await getJson(`${base}/healthz`)).body).toMatchObject({ status: "ok" });
    const echo = await request(`${base}/orders`, { method: "POST", body: "hello" });
    expect(await echo.body.json()).toMatchObject({
      method: "POST",
      path: "/orders",
      bytes: 5,
      body: "hello",
    });
    expect((await getJson(`${base}/stats`)).body).toMatchObject({ posts: 1 });
  });

  it("comes back on the same port with a new instance after SIGKILL", async () => {
    const ps = await start("ps-restart", "http");
    const before = ps.listening;
    await ps.kill();
    await expect(request(`http://127.0.0.1:${before.port}/healthz`)).rejects.toThrow();
    const after = await ps.restart();
    expect(after.port).toBe(before.port);
    expect(after.instance).not.toBe(before.instance);
    expect((await getJson(`http://127.0.0.1:${after.port}/healthz`)).body.instance).toBe(after.instance);
  });

  it("reports a bad flag by name and exits non-zero", async () => {
    const ps = new PolicyServerProcess({
      name: "bad",
      port: 0,
      protocol: "http",
      extraArgs: ["--protocol", "udp"],
    });
    await expect(ps.start()).rejects.toThrow(/--protocol: expected http or tcp, got udp/);
  });
});

describe("demo policy server, TCP line protocol", () => {
  it("greets with its instance, requires the client hello, then answers", async () => {
    const ps = await start("ps-tcp", "tcp");
    const client = await LineClient.connect({ host: "127.0.0.1", port: ps.listening.port });
    expect(client.greeting).toEqual({ server: "ps-tcp", instance: ps.listening.instance });
    expect(await client.authorize("/app", "GET")).toMatchObject({ allow: true, server: "ps-tcp" });
    expect(await client.authorize("/deny/me", "POST")).toMatchObject({ allow: false });
    expect(await client.ping()).toMatchObject({ pong: true });
    await expect(client.sendRaw("FROB")).resolves.toMatch(/^ERR TETHER_ERR_DEMO_BAD_REQUEST/);
    client.close();
  });

  it("refuses a hello naming another instance: a stale client is detected", async () => {
    const ps = await start("ps-stale", "tcp");
    const error = await LineClient.connect({
      host: "127.0.0.1",
      port: ps.listening.port,
      staleInstance: "gone-1234",
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LineProtocolError);
    expect((error as LineProtocolError).code).toBe(ERR_BAD_HANDSHAKE);
  });

  it("after a restart, the old connection is closed and a request without hello is refused", async () => {
    const ps = await start("ps-tcp-restart", "tcp");
    const client = await LineClient.connect({ host: "127.0.0.1", port: ps.listening.port });
    await ps.kill();
    expect(await client.waitClosed(5000)).toBe(true);
    await expect(client.ping()).rejects.toThrow();
    await ps.restart();
    // A client that skips the handshake (as if its connection had been spliced onto a new one).
    const socket = net.connect({ host: "127.0.0.1", port: ps.listening.port });
    socket.setEncoding("utf8");
    let received = "";
    socket.on("data", (chunk: string) => (received += chunk));
    socket.write("AUTHZ 1 /app GET\n");
    await new Promise<void>((resolve) =>
      socket.once("close", () => {
        resolve();
      }),
    );
    expect(received).toContain(`instance=${ps.listening.instance}`);
    expect(received).toContain(
      `ERR ${ERR_NO_CLIENT_HELLO} bad security handshake: failed to receive client hello`,
    );
  });
});
