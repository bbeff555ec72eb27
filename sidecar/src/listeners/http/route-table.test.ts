import { describe, expect, it } from "vitest";
import { virtualHostSchema } from "@tether/envoy";
import { RouteTable } from "./route-table.ts";

function table(vhosts: unknown[]): RouteTable {
  return new RouteTable(vhosts.map((v) => virtualHostSchema.parse(v)));
}

const req = (url: string, method = "GET", authority = "sidecar", headers = {}) => ({
  url,
  method,
  authority,
  headers,
});

describe("route table", () => {
  const t = table([
    {
      name: "api",
      domains: ["api.example.com", "*.api.example.com"],
      routes: [{ match: { prefix: "/" }, route: { cluster: "api" } }],
    },
    {
      name: "all",
      domains: ["*"],
      routes: [
        { match: { path: "/exact" }, route: { cluster: "exact" } },
        {
          match: { prefix: "/", headers: [{ name: ":method", string_match: { exact: "GET" } }] },
          route: { cluster: "get" },
        },
        {
          match: { prefix: "/", headers: [{ name: "x-token", present_match: true }] },
          route: { cluster: "token" },
        },
        { match: { prefix: "/Case", case_sensitive: false }, route: { cluster: "nocase" } },
        { match: { prefix: "/" }, route: { cluster: "other" } },
      ],
    },
  ]);

  it("matches routes in order: first match wins", () => {
    expect(t.match(req("/exact"))?.cluster).toBe("exact");
    expect(t.match(req("/exact?x=1"))?.cluster).toBe("exact");
    expect(t.match(req("/exactly"))?.cluster).toBe("get");
    expect(t.match(req("/x", "POST"))?.cluster).toBe("other");
    expect(t.match(req("/x", "POST", "sidecar", { "x-token": "t" }))?.cluster).toBe("token");
    expect(t.match(req("/CASE/x", "POST"))?.cluster).toBe("nocase");
  });

  it("selects virtual hosts by exact domain, then suffix wildcard, then *", () => {
    expect(t.match(req("/", "POST", "api.example.com"))?.cluster).toBe("api");
    expect(t.match(req("/", "POST", "api.example.com:8080"))?.cluster).toBe("api");
    expect(t.match(req("/", "POST", "v1.api.example.com"))?.cluster).toBe("api");
    expect(t.match(req("/", "POST", "other.example.com"))?.cluster).toBe("other");
  });

  it("returns undefined when nothing matches", () => {
    const only = table([
      { name: "x", domains: ["x"], routes: [{ match: { prefix: "/a" }, route: { cluster: "a" } }] },
    ]);
    expect(only.match(req("/a", "GET", "y"))).toBeUndefined();
    expect(only.match(req("/b", "GET", "x"))).toBeUndefined();
  });

  it("supports invert_match and a route retry policy overriding the virtual host's", () => {
    const t2 = table([
      {
        name: "v",
        domains: ["*"],
        retry_policy: { retry_on: "5xx", num_retries: 7 },
        routes: [
          {
            match: {
              prefix: "/",
              headers: [{ name: ":method", string_match: { exact: "POST" }, invert_match: true }],
            },
            route: { cluster: "safe", retry_policy: { retry_on: "reset" } },
          },
          { match: { prefix: "/" }, route: { cluster: "unsafe" } },
        ],
      },
    ]);
    expect(t2.match(req("/", "GET"))?.retry?.numRetries).toBe(1);
    expect(t2.match(req("/", "POST"))?.cluster).toBe("unsafe");
    expect(t2.match(req("/", "POST"))?.retry?.numRetries).toBe(7);
  });
});

describe("route table: regex and rewrites", () => {
  const t = table([
    {
      name: "v",
      domains: ["*"],
      routes: [
        { match: { path: "/login" }, route: { cluster: "exact", prefix_rewrite: "/auth/login" } },
        { match: { prefix: "/weblogic/" }, route: { cluster: "trim", prefix_rewrite: "/" } },
        { match: { prefix: "/app" }, route: { cluster: "prepend", prefix_rewrite: "/ctx/app" } },
        {
          match: { safe_regex: { regex: ".*\\.jsp" } },
          route: {
            cluster: "jsp",
            regex_rewrite: { pattern: { regex: "^/(.*)$" }, substitution: "/jspfiles/\\1" },
          },
        },
        {
          match: {
            prefix: "/",
            headers: [{ name: "x-v", string_match: { safe_regex: { regex: "v[0-9]+" } } }],
          },
          route: { cluster: "versioned" },
        },
        { match: { prefix: "/" }, route: { cluster: "other" } },
      ],
    },
  ]);
  const rewrite = (url: string): [string | undefined, string] => {
    const r = t.match(req(url));
    return [r?.cluster, r?.rewrite ? r.rewrite(url) : url];
  };

  it("path match with prefix_rewrite swaps the whole path", () => {
    expect(rewrite("/login?next=/")).toEqual(["exact", "/auth/login?next=/"]);
  });

  it("prefix_rewrite trims (PathTrim) and prepends (PathPrepend), keeping the query", () => {
    expect(rewrite("/weblogic/console?x=1")).toEqual(["trim", "/console?x=1"]);
    expect(rewrite("/weblogic/")).toEqual(["trim", "/"]);
    expect(rewrite("/app/a.html")).toEqual(["prepend", "/ctx/app/a.html"]);
    expect(rewrite("/app")).toEqual(["prepend", "/ctx/app"]);
  });

  it("safe_regex must match the whole path (query excluded) and regex_rewrite uses \\1 groups", () => {
    expect(rewrite("/pages/index.jsp?a=b")).toEqual(["jsp", "/jspfiles/pages/index.jsp?a=b"]);
    expect(rewrite("/pages/index.jspx")[0]).toBe("other");
  });

  it("header string_match safe_regex is a full match", () => {
    expect(t.match(req("/x", "GET", "h", { "x-v": "v12" }))?.cluster).toBe("versioned");
    expect(t.match(req("/x", "GET", "h", { "x-v": "v12b" }))?.cluster).toBe("other");
  });
});
