// Hot reload is all or nothing: a listener that cannot bind, an empty or truncated file leave the
// running config serving, counted as a failed reload; a later reload brings everything up.
import { spawn } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
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

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, "../bin/tether-sidecar.js");

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An HTTP listener named `name` on `address`:`port` routing everything to `cluster`, stats under `name`. */
function httpListener(name: string, port: number, cluster: string, address = "127.0.0.1"): string {
  return httpListenerYaml(port, [routeYaml({ cluster })], name)
    .replace("stat_prefix: ingress_http", `stat_prefix: ${name}`)
    .replace(`address: 127.0.0.1, port_value: ${port}`, `address: ${address}, port_value: ${port}`);
}

/** Which upstream answered a GET on `port` (a fresh connection each time). */
async function who(port: number): Promise<string> {
  const res = await request(`http://127.0.0.1:${port}/`, { reset: true });
  return (await res.body.text()).split(" ")[0] ?? "";
}

/** Resolves true when nothing accepts connections on 127.0.0.1:`port`. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => {
      c.destroy();
      resolve(false);
    });
    c.once("error", () => {
      resolve(true);
    });
  });
}

/** Closes `server` (resolves even if it was closed already). */
function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

async function reloads(s: Sidecar, result: "success" | "failure"): Promise<number> {
  return (await s.metrics()).get(`tether_config_reload_total{result="${result}"}`) ?? NaN;
}

/** tether_config_last_reload_successful: 0 while a rejected config leaves the old one running. */
async function lastReloadOk(s: Sidecar): Promise<number> {
  return (await s.metrics()).get("tether_config_last_reload_successful") ?? NaN;
}

async function upstreams(): Promise<{ a: Upstream; b: Upstream }> {
  const [pa, pb] = await Promise.all([freePort(), freePort()]);
  const a = await new Upstream(pa, "a").start();
  cleanups.push(() => a.kill());
  const b = await new Upstream(pb, "b").start();
  cleanups.push(() => b.kill());
  return { a, b };
}

async function sidecar(admin: number, yaml: string): Promise<{ s: Sidecar; file: string }> {
  const file = Sidecar.writeConfig(yaml);
  const s = new Sidecar(admin, file);
  cleanups.push(() => s.stop());
  await s.start();
  return { s, file };
}

describe("a reload whose listener cannot bind", () => {
  it("keeps the old listeners and clusters serving, then applies in full once the port is free", async () => {
    const { a, b } = await upstreams();
    const [main, tcp, blockedPort, extra, admin] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const config = (backend: number, added: string): string =>
      bootstrapYaml(
        admin,
        httpListener("main", main, "backend") + "\n" + tcpListenerYaml(tcp) + added,
        clusterYaml({ endpoints: [{ port: backend }] }),
      );
    const { s, file } = await sidecar(admin, config(a.port, ""));
    expect(await who(main)).toBe("a");

    // Another process holds the port the new listener wants (the agent's own 8080, say).
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(blockedPort, "127.0.0.1", resolve));
    cleanups.push(() => closeServer(blocker));

    // The changed cluster comes first, the listener after the failing one last.
    const next = config(
      b.port,
      "\n" + httpListener("blocked", blockedPort, "backend") + "\n" + httpListener("extra", extra, "backend"),
    );
    expect(await lastReloadOk(s)).toBe(1);
    writeFileSync(file, next);
    await waitFor("reload failure counted", async () => (await reloads(s, "failure")) === 1);
    expect(await reloads(s, "success")).toBe(0);
    expect(await lastReloadOk(s)).toBe(0);
    // The old config serves, cluster included: the changed cluster was not swapped in.
    expect(await who(main)).toBe("a");
    expect(await who(tcp)).toBe("a");
    // The listener after the failing one is neither bound nor reported.
    expect(await refused(extra)).toBe(true);
    const m = await s.metrics();
    expect(m.has('envoy_http_downstream_cx_total{envoy_http_conn_manager_prefix="extra"}')).toBe(false);
    expect(m.has('envoy_http_downstream_cx_total{envoy_http_conn_manager_prefix="blocked"}')).toBe(false);
    expect(m.has('envoy_http_downstream_cx_total{envoy_http_conn_manager_prefix="main"}')).toBe(true);
    const failure = s.logs.split("\n").find((l) => l.includes("config reload failed")) ?? "";
    expect(failure).toContain('"listener":"blocked"');
    expect(failure).toContain(`"address":"127.0.0.1:${blockedPort}"`);
    expect(failure).toContain("EADDRINUSE");

    await closeServer(blocker);
    appendFileSync(file, "# again\n");
    await waitFor("reload applied", async () => (await reloads(s, "success")) === 1);
    expect(await lastReloadOk(s)).toBe(1);
    expect(await who(main)).toBe("b");
    expect(await who(tcp)).toBe("b");
    expect(await who(blockedPort)).toBe("b");
    expect(await who(extra)).toBe("b");
  });

  it("hands an address from a removed listener to its replacement, and takes it back if that fails", async () => {
    const { a, b } = await upstreams();
    const [shared, admin] = await Promise.all([freePort(), freePort()]);
    const clusters =
      clusterYaml({ name: "a", endpoints: [{ port: a.port }] }) +
      clusterYaml({ name: "b", endpoints: [{ port: b.port }] });
    // tcp_proxy "tcp" to a, to be replaced on the same port by the http listener "web" routing to b.
    const { s, file } = await sidecar(
      admin,
      bootstrapYaml(admin, tcpListenerYaml(shared, "", "a"), clusters),
    );
    expect(await who(shared)).toBe("a");

    // The replacement cannot bind (no such local address): the old listener binds the port again.
    writeFileSync(file, bootstrapYaml(admin, httpListener("web", shared, "b", "192.0.2.1"), clusters));
    await waitFor("reload failure counted", async () => (await reloads(s, "failure")) === 1);
    expect(await who(shared)).toBe("a");
    expect(s.logs).toContain(`"address":"192.0.2.1:${shared}"`);

    // Renamed and kind changed, same address: the old one lets go, the new one binds.
    writeFileSync(file, bootstrapYaml(admin, httpListener("web", shared, "b"), clusters));
    await waitFor("reload applied", async () => (await reloads(s, "success")) === 1);
    expect(await who(shared)).toBe("b");
  });
});

describe("a reload that replaces a cluster", () => {
  it("applies at once while a request is in flight on the retired cluster, which still completes", async () => {
    const { a, b } = await upstreams();
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const config = (port: number): string =>
      bootstrapYaml(admin, httpListener("main", listen, "backend"), clusterYaml({ endpoints: [{ port }] }));
    const { s, file } = await sidecar(admin, config(a.port));
    const slow = request(`http://127.0.0.1:${listen}/slow?ms=3000`).then(async (res) => ({
      status: res.statusCode,
      body: await res.body.text(),
      at: performance.now(),
    }));
    await waitFor("the slow request at the upstream", async () => (await a.stats()).paths["GET /slow"] === 1);
    writeFileSync(file, config(b.port));
    // Not held until the retired cluster's request is done (3 s): the next reload, xDS updates and
    // shutdown would wait behind it too.
    await waitFor("the reload applied", async () => (await reloads(s, "success")) === 1, 2000);
    const applied = performance.now();
    expect(await who(listen)).toBe("b");
    const done = await slow;
    expect(done).toMatchObject({ status: 200, body: "a GET /slow 0" });
    expect(done.at).toBeGreaterThan(applied);
  });
});

describe("a reload refused because its listener cannot bind", () => {
  it("leaves the running listener on the same port alone: listening, its keep-alive connections open", async () => {
    const { a } = await upstreams();
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const config = (address: string): string =>
      bootstrapYaml(
        admin,
        httpListener("main", listen, "backend", address),
        clusterYaml({ endpoints: [{ port: a.port }] }),
      );
    const { s, file } = await sidecar(admin, config("127.0.0.1"));
    const client = net.connect(listen, "127.0.0.1");
    let received = "";
    let closed = false;
    client.on("data", (c: Buffer) => (received += c.toString()));
    client.on("error", () => undefined);
    client.on("close", () => (closed = true));
    cleanups.push(() => {
      client.destroy();
    });
    const get = async (n: number): Promise<void> => {
      client.write(`GET /k${n} HTTP/1.1\r\nHost: test\r\n\r\n`);
      await waitFor(`response ${n}`, () => (received.split("HTTP/1.1 200").length > n ? true : undefined));
    };
    await get(1);
    // The same port on an address this host does not have (TEST-NET-1): the bind fails, and as
    // the two addresses never contend for the port the running listener is not asked to let go.
    writeFileSync(file, config("192.0.2.1"));
    await waitFor("the reload refused", async () => (await reloads(s, "failure")) === 1);
    expect(s.logs).toMatch(/cannot bind 192\.0\.2\.1:\d+: EADDRNOTAVAIL/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(closed).toBe(false);
    await get(2);
    expect(await who(listen)).toBe("a");
  });
});

describe("a reload that moves a listener to the same address spelled another way", () => {
  it("takes the port over from the old listener once its own bind finds it in use", async () => {
    const { a, b } = await upstreams();
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const config = (name: string, address: string, cluster: string): string =>
      bootstrapYaml(
        admin,
        httpListener(name, listen, cluster, address),
        clusterYaml({ endpoints: [{ port: a.port }] }) +
          clusterYaml({ name: "other", endpoints: [{ port: b.port }] }),
      );
    const { s, file } = await sidecar(admin, config("v4", "127.0.0.1", "backend"));
    expect(await who(listen)).toBe("a");
    // 127.0.0.1 as an IPv4-mapped IPv6 address: one address to the kernel, two strings to us.
    writeFileSync(file, config("mapped", "::ffff:127.0.0.1", "other"));
    await waitFor("the reload applied", async () => (await reloads(s, "success")) === 1);
    expect(await who(listen)).toBe("b");
  });
});

describe("a retry on a cluster a reload retired", () => {
  it("closes the connection it opened once the response is done", async () => {
    // The first request on the first connection is cut after 800 ms (a reset): its retry goes out
    // after the reload below retired the cluster, on a new connection.
    let connections = 0;
    const open = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      const n = ++connections;
      open.add(socket);
      socket.on("close", () => open.delete(socket));
      socket.on("error", () => undefined);
      socket.once("data", () => {
        if (n === 1) setTimeout(() => socket.resetAndDestroy(), 800);
        else socket.write("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nretry");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => closeServer(server));
    const port = (server.address() as net.AddressInfo).port;
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const config = (timeout: string): string =>
      bootstrapYaml(
        admin,
        httpListenerYaml(listen, [routeYaml({ retryOn: "reset", numRetries: 1 })]),
        clusterYaml({ endpoints: [{ port }] }).replace(
          "connect_timeout: 0.25s",
          `connect_timeout: ${timeout}`,
        ),
      );
    const { s, file } = await sidecar(admin, config("0.25s"));
    const answer = request(`http://127.0.0.1:${listen}/once`).then(async (res) => await res.body.text());
    await waitFor("the first connection", () => connections === 1);
    writeFileSync(file, config("0.5s")); // the cluster changes: the running one is retired
    await waitFor("the reload applied", async () => (await reloads(s, "success")) === 1);
    expect(await answer).toBe("retry");
    expect(connections).toBe(2);
    await waitFor("the retry's connection closed", () => open.size === 0);
  });
});

describe("an empty or truncated config file", () => {
  it("is refused while serving, and a valid change after it is applied", async () => {
    const { a, b } = await upstreams();
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const config = (port: number): string =>
      bootstrapYaml(admin, httpListener("main", listen, "backend"), clusterYaml({ endpoints: [{ port }] }));
    const { s, file } = await sidecar(admin, config(a.port));

    writeFileSync(file, "");
    await waitFor("empty file refused", async () => (await reloads(s, "failure")) === 1);
    expect(await who(listen)).toBe("a");
    expect(s.logs).toContain("TETHER_ERR_CONFIG_EMPTY");

    const valid = config(b.port);
    writeFileSync(file, valid.slice(0, Math.floor(valid.length / 2)));
    await waitFor("truncated file refused", async () => (await reloads(s, "failure")) === 2);
    expect(await who(listen)).toBe("a");

    writeFileSync(file, valid);
    await waitFor("valid change applied", async () => (await reloads(s, "success")) === 1);
    expect(await who(listen)).toBe("b");
  });

  it("stops the sidecar from starting, naming the file", async () => {
    for (const text of ["", "  \n\t\n"]) {
      const file = Sidecar.writeConfig(text);
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [BIN, "--config", file], { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        p.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
        p.on("exit", (code) => {
          resolve({ code, stderr });
        });
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`TETHER_ERR_CONFIG_EMPTY: ${file} is empty`);
    }
  });
});
