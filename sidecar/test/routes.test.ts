// A route table shaped as the operator writes ProxyRoutes, through the built sidecar: exact
// paths first, then longer prefixes, then extension (MIME type) regexes; PathTrim / PathPrepend
// rewrites with and without a trailing slash; method filters; 404 when no route matches; 503 when no
// server answers (refused at once, or nothing within connect_timeout).
import { spawn } from "node:child_process";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  exited,
  freePort,
  httpListenerYaml,
  Sidecar,
  Upstream,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** One route in the virtual host's list, indented as httpListenerYaml expects. */
function route(match: string, cluster: string, extra = ""): string {
  const lines = [
    `                      - match: ${match}`,
    `                        route:`,
    `                          cluster: ${cluster}`,
    `                          timeout: 5s`,
  ];
  if (extra !== "") lines.push(`                          ${extra}`);
  return lines.join("\n");
}

/** A route answered by the sidecar itself (direct_response), indented as httpListenerYaml expects. */
function direct(match: string, status: number, body?: string): string {
  const lines = [
    `                      - match: ${match}`,
    `                        direct_response:`,
    `                          status: ${status}`,
  ];
  if (body !== undefined)
    lines.push(`                          body: { inline_string: ${JSON.stringify(body)} }`);
  return lines.join("\n");
}

const get = (m: string): string => `[{ name: ":method", string_match: { exact: ${m} } }]`;

let listen = 0;
let blackholeHeld = 0;

beforeAll(async () => {
  const names = ["exact", "admin", "app", "trim", "nslash", "prepend", "jsp"];
  const ports = new Map<string, number>();
  for (const n of names) {
    const u = await new Upstream(await freePort(), n).start();
    cleanups.push(() => u.kill());
    ports.set(n, u.port);
  }
  // A server that never completes a TCP handshake: stopped, accept queue (backlog 1) full.
  const holePort = await freePort();
  const script = `require("net").createServer().listen({ port: ${holePort}, host: "127.0.0.1", backlog: 1 }, () => {
    process.stdout.write("up\\n"); process.kill(process.pid, "SIGSTOP"); });`;
  const hole = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  cleanups.push(async () => {
    hole.kill("SIGKILL");
    await exited(hole);
  });
  await new Promise((r) => hole.stdout.once("data", r));
  for (let i = 0; i < 2; i++) {
    const f = net.connect(holePort, "127.0.0.1");
    f.on("error", () => undefined);
    cleanups.push(() => {
      f.destroy();
    });
    await new Promise((r) => f.once("connect", r));
    blackholeHeld++;
  }
  const deadPort = await freePort();

  const retry = `retry_policy: { retry_on: connect-failure, num_retries: 1, retry_back_off: { base_interval: 0.02s } }`;
  const routes = [
    // Exact paths first (the operator's order), even where a prefix route would also match.
    route(`{ path: /app/login }`, "exact", `prefix_rewrite: /auth/login`),
    // Longer prefixes before shorter ones.
    route(`{ prefix: /app/admin/ }`, "admin"),
    // A route whose backend does not exist (as the operator writes it): answered here, never by /app/.
    direct(`{ prefix: /app/gone/ }`, 503, "ProxyRoute gone: backend Service gone does not exist\n"),
    direct(`{ path: /app/empty, headers: ${get("GET")} }`, 503),
    // A method filter: only GET and HEAD go to /app/.
    route(`{ prefix: /app/, headers: ${get("GET")} }`, "app"),
    route(`{ prefix: /app/, headers: ${get("HEAD")} }`, "app"),
    // PathTrim /weblogic/ on a prefix with a trailing slash → "/".
    route(`{ prefix: /weblogic/ }`, "trim", `prefix_rewrite: /`),
    // PathTrim /wls with PathPrepend /console on a prefix without a trailing slash.
    route(`{ prefix: /wls }`, "nslash", `prefix_rewrite: /console`),
    // PathPrepend only: /shop → /ctx/shop.
    route(`{ prefix: /shop }`, "prepend", `prefix_rewrite: /ctx/shop`),
    // No server answers: refused at once, and a black hole past connect_timeout.
    route(`{ prefix: /down/refused }`, "refused", retry),
    route(`{ prefix: /down/hole }`, "hole", retry),
    // Extensions last, with PathPrepend as the operator writes it for them.
    route(
      `{ safe_regex: { regex: '.*\\.(jsp|jspx)' } }`,
      "jsp",
      `regex_rewrite: { pattern: { regex: "^(.*)$" }, substitution: '/jspfiles\\1' }`,
    ),
  ];
  const clusters = [
    ...names.map((n) => clusterYaml({ name: n, endpoints: [{ port: ports.get(n)! }] })),
    clusterYaml({ name: "refused", endpoints: [{ port: deadPort }] }),
    clusterYaml({ name: "hole", endpoints: [{ port: holePort }] }),
  ].join("");
  const [l, admin] = await Promise.all([freePort(), freePort()]);
  listen = l;
  const s = new Sidecar(
    admin,
    Sidecar.writeConfig(bootstrapYaml(admin, httpListenerYaml(l, routes), clusters)),
  );
  cleanups.push(() => s.stop());
  await s.start();
});

async function call(path: string, method = "GET"): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${listen}${path}`, { method });
  return { status: res.statusCode, body: await res.body.text() };
}

/** "name METHOD path" as the upstream saw it. */
async function seenBy(path: string, method = "GET"): Promise<string> {
  const r = await call(path, method);
  expect(r.status).toBe(200);
  return r.body.split(" ").slice(0, 3).join(" ");
}

describe("route precedence (as the operator orders ProxyRoutes)", () => {
  it("tries the exact path, then the longest prefix, then extensions", async () => {
    expect(await seenBy("/app/login?next=/")).toBe("exact GET /auth/login");
    expect(await seenBy("/app/login/more")).toBe("app GET /app/login/more");
    expect(await seenBy("/app/admin/users")).toBe("admin GET /app/admin/users");
    expect(await seenBy("/app/admin/page.jsp")).toBe("admin GET /app/admin/page.jsp");
    expect(await seenBy("/app/page.jsp")).toBe("app GET /app/page.jsp");
    expect(await seenBy("/elsewhere/page.jsp")).toBe("jsp GET /jspfiles/elsewhere/page.jsp");
    expect(await seenBy("/elsewhere/page.jspx?a=1")).toBe("jsp GET /jspfiles/elsewhere/page.jspx");
  });

  it("filters by method: a method no route lists gets 404", async () => {
    const head = await request(`http://127.0.0.1:${listen}/app/x`, { method: "HEAD" });
    await head.body.text();
    expect(head.statusCode).toBe(200);
    expect(head.headers["x-upstream"]).toBe("app");
    expect(await call("/app/x", "POST")).toEqual({ status: 404, body: "no route matched" });
    // The admin prefix has no method filter.
    expect(await seenBy("/app/admin/x", "POST")).toBe("admin POST /app/admin/x");
  });

  it("answers 404 with a clear body when no route matches", async () => {
    expect(await call("/nothing/here")).toEqual({ status: 404, body: "no route matched" });
    expect(await call("/page.html")).toEqual({ status: 404, body: "no route matched" });
  });
});

describe("direct_response", () => {
  it("answers with the route's status and body instead of falling through to a later route", async () => {
    const res = await request(`http://127.0.0.1:${listen}/app/gone/orders?id=1`);
    expect(res.statusCode).toBe(503);
    expect(res.headers["content-type"]).toBe("text/plain");
    expect(res.headers["x-upstream"]).toBeUndefined();
    expect(await res.body.text()).toBe("ProxyRoute gone: backend Service gone does not exist\n");
    // A request body is read and dropped; the connection stays usable for the next request.
    expect(await call("/app/gone/", "POST")).toEqual({
      status: 503,
      body: "ProxyRoute gone: backend Service gone does not exist\n",
    });
    expect(await seenBy("/app/other")).toBe("app GET /app/other");
  });

  it("sends no body for HEAD or when none is configured, and still matches headers", async () => {
    const head = await request(`http://127.0.0.1:${listen}/app/gone/x`, { method: "HEAD" });
    expect(head.statusCode).toBe(503);
    expect(await head.body.text()).toBe("");
    const empty = await request(`http://127.0.0.1:${listen}/app/empty`);
    expect(empty.statusCode).toBe(503);
    expect(empty.headers["content-length"]).toBe("0");
    expect(empty.headers["content-type"]).toBeUndefined();
    expect(await empty.body.text()).toBe("");
    // Its method filter: a POST to /app/empty is not this route's (and /app/ takes only GET and HEAD).
    expect((await call("/app/empty", "POST")).status).toBe(404);
  });
});

describe("rewrites", () => {
  it("PathTrim on a prefix with a trailing slash", async () => {
    expect(await seenBy("/weblogic/console/index")).toBe("trim GET /console/index");
    expect(await seenBy("/weblogic/")).toBe("trim GET /");
    // Without the slash the prefix /weblogic/ does not match at all.
    expect((await call("/weblogic")).status).toBe(404);
  });

  it("PathTrim + PathPrepend on a prefix without a trailing slash replace exactly the matched text", async () => {
    // Envoy semantics: the matched prefix "/wls" is replaced by "/console", whatever follows.
    expect(await seenBy("/wls/app")).toBe("nslash GET /console/app");
    expect(await seenBy("/wls")).toBe("nslash GET /console");
    expect(await seenBy("/wlsx")).toBe("nslash GET /consolex");
  });

  it("PathPrepend keeps the rest of the path and the query", async () => {
    const res = await request(`http://127.0.0.1:${listen}/shop/cart?id=7`);
    expect(res.headers["x-upstream"]).toBe("prepend");
    expect(await res.body.text()).toMatch(/^prepend GET \/ctx\/shop\/cart /);
    expect(await seenBy("/shop")).toBe("prepend GET /ctx/shop");
  });
});

describe("no server answers", () => {
  it("503 at once when every connect is refused (after the retry)", async () => {
    const t0 = performance.now();
    const r = await call("/down/refused/x");
    expect(r.status).toBe(503);
    expect(r.body).toContain("connection failure");
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("503 when nothing answers within connect_timeout (0.25 s per attempt, one retry)", async () => {
    expect(blackholeHeld).toBe(2);
    const t0 = performance.now();
    const r = await call("/down/hole/x");
    const ms = performance.now() - t0;
    expect(r.status).toBe(503);
    expect(r.body).toContain("connection failure");
    expect(ms).toBeGreaterThanOrEqual(450); // two attempts of 0.25 s each
    expect(ms).toBeLessThan(5000); // well before the 5 s route timeout
  });
});
