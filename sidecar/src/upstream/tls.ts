// UpstreamTlsContext → node:tls options, with Envoy's semantics: no validation context means no
// certificate verification; a trusted_ca turns chain verification on; the server name is checked
// only against match_typed_subject_alt_names; SNI is sent only when `sni` is set.
import { readFileSync } from "node:fs";
import type { ConnectionOptions, PeerCertificate } from "node:tls";
import {
  PROXY_PROTOCOL_UPSTREAM_TYPE,
  UPSTREAM_TLS_TYPE,
  type DataSourceConfig,
  type StringMatcherConfig,
  type TransportSocketConfig,
  type UpstreamTlsContextConfig,
} from "../config/schema.ts";
import { PLAIN_TRANSPORT, type Transport } from "./connect.ts";
import { TetherError } from "../errors.ts";
import { Re2Regex } from "../config/regex.ts";

function read(source: DataSourceConfig, path: string): string {
  if (source.inline_string !== undefined) return source.inline_string;
  const file = source.filename ?? "";
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const message = `${path}.filename: cannot read ${file}: ${(err as Error).message}`;
    throw new TetherError("TETHER_ERR_CONFIG_INVALID", message, [message]);
  }
}

function matches(m: StringMatcherConfig, regex: Re2Regex | undefined, value: string): boolean {
  const v = m.ignore_case ? value.toLowerCase() : value;
  const f = (s: string): string => (m.ignore_case ? s.toLowerCase() : s);
  if (m.exact !== undefined) return v === f(m.exact);
  if (m.prefix !== undefined) return v.startsWith(f(m.prefix));
  if (m.suffix !== undefined) return v.endsWith(f(m.suffix));
  if (m.contains !== undefined) return v.includes(f(m.contains));
  // RE2 FullMatch; ignore_case has no effect on safe_regex, as in Envoy.
  if (regex !== undefined) return regex.fullMatch(value);
  return false;
}

const SAN_PREFIX = { DNS: "DNS:", URI: "URI:", IP_ADDRESS: "IP Address:" } as const;

const VERSIONS = { TLSv1_2: "TLSv1.2", TLSv1_3: "TLSv1.3" } as const;

/** `path` names the transport_socket in error messages (e.g. static_resources.clusters[2].transport_socket). */
export function tlsConnectOptions(ctx: UpstreamTlsContextConfig, path: string): ConnectionOptions {
  const common = ctx.common_tls_context;
  const options: ConnectionOptions = { rejectUnauthorized: false };
  if (ctx.sni !== undefined) options.servername = ctx.sni;
  const cert = common.tls_certificates[0];
  if (cert !== undefined) {
    const p = `${path}.typed_config.common_tls_context.tls_certificates[0]`;
    options.cert = read(cert.certificate_chain, `${p}.certificate_chain`);
    options.key = read(cert.private_key, `${p}.private_key`);
  }
  const validation = common.validation_context;
  if (validation?.trusted_ca !== undefined) {
    options.ca = read(
      validation.trusted_ca,
      `${path}.typed_config.common_tls_context.validation_context.trusted_ca`,
    );
    options.rejectUnauthorized = true;
  }
  const sans = (validation?.match_typed_subject_alt_names ?? []).map((san) => ({
    prefix: SAN_PREFIX[san.san_type],
    matcher: san.matcher,
    regex: san.matcher.safe_regex === undefined ? undefined : new Re2Regex(san.matcher.safe_regex.regex),
  }));
  options.checkServerIdentity = (_host: string, peer: PeerCertificate): Error | undefined => {
    if (sans.length === 0) return undefined;
    const names = (peer.subjectaltname ?? "").split(", ");
    const ok = sans.some((san) =>
      names.some(
        (n) => n.startsWith(san.prefix) && matches(san.matcher, san.regex, n.slice(san.prefix.length)),
      ),
    );
    return ok
      ? undefined
      : new Error(`certificate subject alt names ${peer.subjectaltname ?? "(none)"} do not match`);
  };
  if (common.alpn_protocols.length > 0) options.ALPNProtocols = common.alpn_protocols;
  const params = common.tls_params;
  if (params !== undefined) {
    if (params.tls_minimum_protocol_version !== "TLS_AUTO")
      options.minVersion = VERSIONS[params.tls_minimum_protocol_version];
    if (params.tls_maximum_protocol_version !== "TLS_AUTO")
      options.maxVersion = VERSIONS[params.tls_maximum_protocol_version];
  }
  return options;
}

/** The cluster's transport_socket → how to dial: PROXY header version and TLS options. */
export function resolveTransport(ts: TransportSocketConfig | undefined, path: string): Transport {
  if (ts === undefined) return PLAIN_TRANSPORT;
  const tc = ts.typed_config;
  if (tc["@type"] === UPSTREAM_TLS_TYPE)
    return { tls: tlsConnectOptions(tc, path), proxyProtocol: undefined };
  if (tc["@type"] === PROXY_PROTOCOL_UPSTREAM_TYPE) {
    const inner = tc.transport_socket.typed_config;
    const innerPath = `${path}.typed_config.transport_socket`;
    return {
      tls: inner["@type"] === UPSTREAM_TLS_TYPE ? tlsConnectOptions(inner, innerPath) : undefined,
      proxyProtocol: tc.config.version,
    };
  }
  return PLAIN_TRANSPORT;
}
