// match_typed_subject_alt_names with Envoy's semantics: the server's certificate passes when one of
// its subject alt names of a matcher's san_type satisfies that matcher (any matcher, any name). A DNS
// matcher with `exact` follows DNS rules (case-insensitive; a certificate's `*.example.com` covers
// `a.example.com`, one label only); the other matchers compare the name as written in the certificate.
// IP addresses are compared in their canonical text (`10.0.0.1`, `2001:db8::1`), as Envoy prints them.
// A certificate without subject alt names matches nothing.
import net from "node:net";
import type { PeerCertificate } from "node:tls";
import { Re2Regex, type StringMatcherConfig } from "@tether/envoy";

export type SanType = "DNS" | "URI" | "IP_ADDRESS" | "EMAIL";

export interface SubjectAltName {
  readonly type: SanType;
  readonly value: string;
}

export interface SanMatcherConfig {
  readonly san_type: SanType;
  readonly matcher: StringMatcherConfig;
}

/** How Node names each general name in PeerCertificate.subjectaltname. */
const NODE_LABELS: Readonly<Record<string, SanType>> = {
  DNS: "DNS",
  URI: "URI",
  "IP Address": "IP_ADDRESS",
  email: "EMAIL",
};

/** The certificate failed match_typed_subject_alt_names (Envoy counts it as ssl.fail_verify_san). */
export class SubjectAltNameMismatch extends Error {
  readonly code = "TETHER_ERR_TLS_SAN_MISMATCH";

  constructor(message: string) {
    super(message);
    this.name = "SubjectAltNameMismatch";
  }
}

/**
 * Node's subjectaltname text (`DNS:a.test, IP Address:0:0:0:0:0:0:0:1, …`) as typed names. Node
 * writes a value holding a separator as a JSON string (`DNS:"a\u002cb"`); other name types are left out.
 */
export function parseSubjectAltNames(text: string | undefined): SubjectAltName[] {
  if (text === undefined || text === "") return [];
  const names: SubjectAltName[] = [];
  for (const entry of text.split(", ")) {
    const colon = entry.indexOf(":");
    const type = colon === -1 ? undefined : NODE_LABELS[entry.slice(0, colon)];
    if (type === undefined) continue;
    const value = unquote(entry.slice(colon + 1));
    if (value === undefined) continue;
    names.push({ type, value: type === "IP_ADDRESS" ? canonicalIp(value) : value });
  }
  return names;
}

function unquote(raw: string): string | undefined {
  if (!raw.startsWith('"')) return raw;
  try {
    const value: unknown = JSON.parse(raw);
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Node writes IPv6 names uncompressed and in capitals; Envoy compares the compressed form. */
function canonicalIp(value: string): string {
  if (!value.includes(":")) return value;
  try {
    return new net.SocketAddress({ address: value, family: "ipv6" }).address;
  } catch {
    return value;
  }
}

/**
 * Envoy's DNS rule for an exact name against a certificate's DNS name: equal ignoring case, or the
 * certificate's left-most label holds the only `*` (not in an A-label `xn--…`) and covers exactly
 * one label of `name`, the rest being equal.
 */
export function dnsNameMatches(name: string, certName: string): boolean {
  const n = name.toLowerCase();
  const pattern = certName.toLowerCase();
  if (n === pattern) return true;
  const pDot = pattern.indexOf(".");
  const nDot = n.indexOf(".");
  if (pDot === -1 || nDot === -1) return false;
  const pLabel = pattern.slice(0, pDot);
  const pRest = pattern.slice(pDot + 1);
  if (!pLabel.includes("*") || pRest.includes("*") || pLabel.startsWith("xn--")) return false;
  if (n.slice(nDot + 1) !== pRest) return false;
  return labelWildcardMatches(n.slice(0, nDot), pLabel);
}

function labelWildcardMatches(label: string, pattern: string): boolean {
  if (pattern === "*") return true;
  const star = pattern.indexOf("*");
  if (star !== pattern.lastIndexOf("*")) return false;
  const before = pattern.slice(0, star);
  const after = pattern.slice(star + 1);
  return pattern.length <= label.length + 1 && label.startsWith(before) && label.endsWith(after);
}

/** Envoy's StringMatcher; ignore_case has no effect on safe_regex, as in Envoy. */
function stringMatches(m: StringMatcherConfig, regex: Re2Regex | undefined, value: string): boolean {
  if (regex !== undefined) return regex.fullMatch(value);
  const fold = (s: string): string => (m.ignore_case ? s.toLowerCase() : s);
  const v = fold(value);
  if (m.exact !== undefined) return v === fold(m.exact);
  if (m.prefix !== undefined) return v.startsWith(fold(m.prefix));
  if (m.suffix !== undefined) return v.endsWith(fold(m.suffix));
  if (m.contains !== undefined) return v.includes(fold(m.contains));
  return false;
}

function describeMatcher(c: SanMatcherConfig): string {
  const m = c.matcher;
  const [kind, value] =
    m.exact !== undefined
      ? ["exact", m.exact]
      : m.prefix !== undefined
        ? ["prefix", m.prefix]
        : m.suffix !== undefined
          ? ["suffix", m.suffix]
          : m.contains !== undefined
            ? ["contains", m.contains]
            : ["safe_regex", m.safe_regex?.regex ?? ""];
  return `${c.san_type} ${kind} ${JSON.stringify(value)}${m.ignore_case ? " ignore_case" : ""}`;
}

/** A compiled match_typed_subject_alt_names list (regexes compiled once, when the config loads). */
export class SubjectAltNameVerifier {
  private readonly matchers: readonly { config: SanMatcherConfig; regex: Re2Regex | undefined }[];

  constructor(configs: readonly SanMatcherConfig[]) {
    this.matchers = configs.map((config) => ({
      config,
      regex:
        config.matcher.safe_regex === undefined ? undefined : new Re2Regex(config.matcher.safe_regex.regex),
    }));
  }

  /** True when one of the names satisfies one of the matchers. */
  matches(names: readonly SubjectAltName[]): boolean {
    return this.matchers.some(({ config, regex }) =>
      names.some((n) => {
        if (n.type !== config.san_type) return false;
        const exact = config.matcher.exact;
        if (n.type === "DNS" && exact !== undefined) return dnsNameMatches(exact, n.value);
        return stringMatches(config.matcher, regex, n.value);
      }),
    );
  }

  /** Undefined when the server's certificate passes; otherwise why it does not, for the log. */
  verify(peer: PeerCertificate): SubjectAltNameMismatch | undefined {
    const names = parseSubjectAltNames(peer.subjectaltname);
    if (this.matchers.length === 0 || this.matches(names)) return undefined;
    const seen = names.map((n) => `${n.type}:${n.value}`).join(", ");
    const wanted = this.matchers.map((m) => describeMatcher(m.config)).join(", ");
    return new SubjectAltNameMismatch(
      `verify cert failed: SAN matcher, certificate SANs are [${seen}], match_typed_subject_alt_names want one of [${wanted}]`,
    );
  }
}
