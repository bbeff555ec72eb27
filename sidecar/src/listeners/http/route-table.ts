// Virtual host and route matching as Envoy does it: host by exact domain, then longest "*.suffix",
// then longest "prefix.*", then "*"; routes in order, first match wins (prefix / path + headers).
import {
  Re2Regex,
  Rewrite,
  type DirectResponseConfig,
  type HashPolicyConfig,
  type HeaderMatcherConfig,
  type RouteConfig,
  type StringMatcherConfig,
  type VirtualHostConfig,
} from "@tether/envoy";
import type { IncomingHttpHeaders } from "node:http";
import { compileRetryPolicy, type CompiledRetryPolicy } from "./retry.ts";

/** A route's direct_response: the listener answers with this, no cluster involved. */
export interface CompiledDirectResponse {
  readonly status: number;
  readonly body: Buffer;
}

export interface CompiledRoute {
  readonly name: string | undefined;
  /** Set for a direct_response route; the route-action fields below are then unused ("" / 0 / none). */
  readonly directResponse: CompiledDirectResponse | undefined;
  readonly cluster: string;
  readonly timeoutMs: number;
  readonly retry: CompiledRetryPolicy | undefined;
  readonly prefix: string | undefined;
  readonly path: string | undefined;
  /** safe_regex: it must match the whole path (query string excluded), as RE2 FullMatch. */
  readonly regex: Re2Regex | undefined;
  readonly caseSensitive: boolean;
  readonly headers: readonly CompiledHeaderMatcher[];
  /** The upstream :path for a request URL, when the route rewrites it. */
  readonly rewrite: ((url: string) => string) | undefined;
  readonly hashPolicy: readonly HashPolicyConfig[];
}

/** A header matcher with its safe_regex compiled once, when the route table is built. */
interface CompiledHeaderMatcher {
  readonly config: HeaderMatcherConfig;
  readonly regex: Re2Regex | undefined;
}

function compileHeaderMatcher(h: HeaderMatcherConfig): CompiledHeaderMatcher {
  const pattern = h.string_match?.safe_regex?.regex;
  return { config: h, regex: pattern === undefined ? undefined : new Re2Regex(pattern) };
}

function splitQuery(url: string): [path: string, query: string] {
  const q = url.indexOf("?");
  return q === -1 ? [url, ""] : [url.slice(0, q), url.slice(q)];
}

function compileRewrite(r: RouteConfig): ((url: string) => string) | undefined {
  if (r.route === undefined) return undefined;
  const prefixRewrite = r.route.prefix_rewrite;
  if (prefixRewrite !== undefined) {
    // The matched prefix (or the whole path for a path match) is swapped for the rewrite.
    const matched = r.match.prefix ?? r.match.path ?? "";
    const sensitive = r.match.case_sensitive;
    return (url) => {
      const [path, query] = splitQuery(url);
      const head = path.slice(0, matched.length);
      const same = sensitive ? head === matched : head.toLowerCase() === matched.toLowerCase();
      return same ? prefixRewrite + path.slice(matched.length) + query : url;
    };
  }
  const rr = r.route.regex_rewrite;
  if (rr !== undefined) {
    // Every match in the path is replaced (RE2::GlobalReplace); \1 in the substitution is group 1.
    const re = new Re2Regex(rr.pattern.regex);
    const substitution = new Rewrite(rr.substitution);
    return (url) => {
      const [path, query] = splitQuery(url);
      return re.replaceAll(path, substitution) + query;
    };
  }
  return undefined;
}

interface CompiledVirtualHost {
  readonly name: string;
  readonly routes: readonly CompiledRoute[];
}

function compileRoute(r: RouteConfig, vh: VirtualHostConfig): CompiledRoute {
  const sensitive = r.match.case_sensitive;
  const fold = (s: string | undefined): string | undefined =>
    s === undefined || sensitive ? s : s.toLowerCase();
  return {
    name: r.name,
    directResponse: compileDirectResponse(r.direct_response),
    cluster: r.route?.cluster ?? "",
    timeoutMs: r.route?.timeout ?? 0,
    // A route's retry_policy replaces the virtual host's entirely, as in Envoy.
    retry: r.route === undefined ? undefined : compileRetryPolicy(r.route.retry_policy ?? vh.retry_policy),
    prefix: fold(r.match.prefix),
    path: fold(r.match.path),
    // case_sensitive does not apply to safe_regex, as in Envoy: use (?i) in the pattern.
    regex: r.match.safe_regex === undefined ? undefined : new Re2Regex(r.match.safe_regex.regex),
    caseSensitive: sensitive,
    headers: r.match.headers.map(compileHeaderMatcher),
    rewrite: compileRewrite(r),
    hashPolicy: r.route?.hash_policy ?? [],
  };
}

function compileDirectResponse(d: DirectResponseConfig | undefined): CompiledDirectResponse | undefined {
  if (d === undefined) return undefined;
  return { status: d.status, body: Buffer.from(d.body?.inline_string ?? "") };
}

function matchString(m: StringMatcherConfig, regex: Re2Regex | undefined, value: string): boolean {
  const v = m.ignore_case ? value.toLowerCase() : value;
  const f = (s: string): string => (m.ignore_case ? s.toLowerCase() : s);
  if (m.exact !== undefined) return v === f(m.exact);
  if (m.prefix !== undefined) return v.startsWith(f(m.prefix));
  if (m.suffix !== undefined) return v.endsWith(f(m.suffix));
  if (m.contains !== undefined) return v.includes(f(m.contains));
  // ignore_case has no effect on safe_regex, as in Envoy (use (?i) in the pattern).
  if (regex !== undefined) return regex.fullMatch(value);
  return false;
}

export interface RequestFacts {
  readonly method: string;
  readonly url: string;
  readonly authority: string;
  readonly headers: IncomingHttpHeaders;
}

function headerValue(name: string, req: RequestFacts): string | undefined {
  if (name === ":method") return req.method;
  if (name === ":path") return req.url;
  if (name === ":authority") return req.authority;
  const v = req.headers[name.toLowerCase()];
  if (Array.isArray(v)) return v.join(",");
  return v;
}

function matchHeader(compiled: CompiledHeaderMatcher, req: RequestFacts): boolean {
  const h = compiled.config;
  const value = headerValue(h.name, req);
  let ok: boolean;
  if (h.present_match !== undefined) ok = (value !== undefined) === h.present_match;
  else if (h.string_match !== undefined)
    ok = value !== undefined && matchString(h.string_match, compiled.regex, value);
  else ok = value !== undefined;
  return h.invert_match ? !ok : ok;
}

export function routeMatches(route: CompiledRoute, req: RequestFacts): boolean {
  if (route.regex !== undefined) {
    if (!route.regex.fullMatch(splitQuery(req.url)[0])) return false;
    for (const h of route.headers) if (!matchHeader(h, req)) return false;
    return true;
  }
  const url = route.caseSensitive ? req.url : req.url.toLowerCase();
  if (route.path !== undefined) {
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== route.path) return false;
  } else if (route.prefix !== undefined && !url.startsWith(route.prefix)) {
    return false;
  }
  for (const h of route.headers) if (!matchHeader(h, req)) return false;
  return true;
}

export class RouteTable {
  private readonly exact = new Map<string, CompiledVirtualHost>();
  private readonly suffixes: { suffix: string; vh: CompiledVirtualHost }[] = [];
  private readonly prefixes: { prefix: string; vh: CompiledVirtualHost }[] = [];
  private wildcard: CompiledVirtualHost | undefined;

  constructor(virtualHosts: readonly VirtualHostConfig[]) {
    for (const vhc of virtualHosts) {
      const vh: CompiledVirtualHost = { name: vhc.name, routes: vhc.routes.map((r) => compileRoute(r, vhc)) };
      for (const raw of vhc.domains) {
        const d = raw.toLowerCase();
        if (d === "*") this.wildcard ??= vh;
        else if (d.startsWith("*")) this.suffixes.push({ suffix: d.slice(1), vh });
        else if (d.endsWith("*")) this.prefixes.push({ prefix: d.slice(0, -1), vh });
        else if (!this.exact.has(d)) this.exact.set(d, vh);
      }
    }
    this.suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  private virtualHost(authority: string): CompiledVirtualHost | undefined {
    if (this.exact.size === 0 && this.suffixes.length === 0 && this.prefixes.length === 0)
      return this.wildcard;
    const host = authority.toLowerCase();
    const exact = this.exact.get(host);
    if (exact !== undefined) return exact;
    const colon = host.lastIndexOf(":");
    const bare = colon > 0 && !host.endsWith("]") ? host.slice(0, colon) : host;
    const bareExact = this.exact.get(bare);
    if (bareExact !== undefined) return bareExact;
    for (const s of this.suffixes) if (bare.endsWith(s.suffix)) return s.vh;
    for (const p of this.prefixes) if (bare.startsWith(p.prefix)) return p.vh;
    return this.wildcard;
  }

  match(req: RequestFacts): CompiledRoute | undefined {
    const vh = this.virtualHost(req.authority);
    if (vh === undefined) return undefined;
    for (const r of vh.routes) if (routeMatches(r, req)) return r;
    return undefined;
  }
}
