// The config edge through the built sidecar: durations longer than Node's timers can hold are refused
// at start and ignored on reload (the old config stays), and safe_regex runs on RE2 so a path built to
// make a backtracking engine run for ages is answered while other requests flow.
import { writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import {
  bootstrapYaml,
  clusterYaml,
  exited,
  freePort,
  healthCheckYaml,
  httpListenerYaml,
  routeYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `promise`, or a rejection naming `what` after `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what}: nothing within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const R =
  "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0]";

async function upstream(name: string): Promise<Upstream> {
  const u = await new Upstream(await freePort(), name).start();
  cleanups.push(() => u.kill());
  return u;
}

describe("durations past Node's timer range", () => {
  it("are refused at start with the field path", async () => {
    const u = await upstream("a");
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, [routeYaml({ cluster: "a", timeout: "2147484s" })]),
      clusterYaml({
        name: "a",
        endpoints: [{ port: u.port }],
        healthCheck: healthCheckYaml("tcp", 2147483.648),
      }),
    );
    const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
    cleanups.push(() => s.stop());
    await s.start(false);
    const code = await within(10_000, "sidecar to refuse the config and exit", exited(s.proc!));
    expect(code).toBe(1);
    expect(s.logs).toContain("TETHER_ERR_CONFIG_INVALID");
    expect(s.logs).toContain(`${R}.route.timeout: 2147484s is too long: at most 2147483.647s`);
    expect(s.logs).toContain(
      "static_resources.clusters[0].health_checks[0].interval: 2147483.648s is too long",
    );
  });

  it("are ignored on reload: the running config stays", async () => {
    const a = await upstream("a");
    const b = await upstream("b");
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const make = (target: string, outlier = ""): string =>
      bootstrapYaml(
        admin,
        httpListenerYaml(listen, [routeYaml({ cluster: target })]),
        clusterYaml({ name: "a", endpoints: [{ port: a.port }] }) +
          clusterYaml({ name: "b", endpoints: [{ port: b.port }], extra: outlier }),
      );
    const file = Sidecar.writeConfig(make("a"));
    const s = new Sidecar(admin, file);
    cleanups.push(() => s.stop());
    await s.start();
    const who = async (): Promise<string> =>
      (await (await request(`http://127.0.0.1:${listen}/`)).body.text()).split(" ")[0] ?? "";
    expect(await who()).toBe("a");

    writeFileSync(file, make("b", "      outlier_detection: { base_ejection_time: 2147483.648s }\n"));
    await waitFor(
      "reload rejected",
      async () => (await s.metrics()).get('tether_config_reload_total{result="failure"}') === 1,
    );
    expect(s.logs).toContain(
      "static_resources.clusters[1].outlier_detection.base_ejection_time: 2147483.648s is too long",
    );
    expect(await who()).toBe("a");
    expect(s.proc?.exitCode).toBe(null);
  });
});

describe("safe_regex on RE2", () => {
  it("answers a path that would backtrack for ages, and does not hold up other requests", async () => {
    const jsp = await upstream("jsp");
    const other = await upstream("other");
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const routes = [
      `                      - match: { safe_regex: { regex: '/jsp/(\\w+/?)+\\.jsp' } }
                        route: { cluster: jsp, timeout: 5s }`,
      routeYaml({ cluster: "other" }),
    ];
    const yaml = bootstrapYaml(
      admin,
      httpListenerYaml(listen, routes),
      clusterYaml({ name: "jsp", endpoints: [{ port: jsp.port }] }) +
        clusterYaml({ name: "other", endpoints: [{ port: other.port }] }),
    );
    const s = new Sidecar(admin, Sidecar.writeConfig(yaml));
    cleanups.push(() => s.stop());
    await s.start();
    const get = async (path: string): Promise<string> => {
      const res = await request(`http://127.0.0.1:${listen}${path}`);
      const body = await res.body.text();
      return `${res.statusCode} ${body.split(" ").slice(0, 3).join(" ")}`;
    };

    expect(await get("/jsp/a/b/c.jsp")).toBe("200 jsp GET /jsp/a/b/c.jsp");
    // A backtracking engine tries every way to split the a's between the groups: 2^47 for this path.
    const evil = `/jsp/${"a".repeat(48)}!`;
    const [slow, fast] = await within(
      20_000,
      "both requests to be answered",
      Promise.all([get(evil), get("/other")]),
    );
    expect(slow).toBe(`200 other GET ${evil}`);
    expect(fast).toBe("200 other GET /other");
  });

  it("refuses patterns RE2 refuses, at start, with the path", async () => {
    const u = await upstream("a");
    const [listen, admin] = await Promise.all([freePort(), freePort()]);
    const routes = [
      `                      - match: { safe_regex: { regex: '(a)\\1' } }
                        route: { cluster: a }`,
      `                      - match: { safe_regex: { regex: '(?=x)/' } }
                        route: { cluster: a }`,
    ];
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        bootstrapYaml(
          admin,
          httpListenerYaml(listen, routes),
          clusterYaml({ name: "a", endpoints: [{ port: u.port }] }),
        ),
      ),
    );
    cleanups.push(() => s.stop());
    await s.start(false);
    expect(await within(10_000, "sidecar to refuse the config and exit", exited(s.proc!))).toBe(1);
    expect(s.logs).toContain(
      `${R}.match.safe_regex.regex: invalid regex (RE2): error parsing regexp: invalid escape`,
    );
    const second = R.replace(/routes\[0\]$/, "routes[1]");
    expect(s.logs).toContain(
      `${second}.match.safe_regex.regex: invalid regex (RE2): error parsing regexp: invalid or unsupported Perl syntax: \`(?=\``,
    );
  });
});
