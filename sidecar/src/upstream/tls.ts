// UpstreamTlsContext → node:tls options, with Envoy's semantics: no validation context means no
// certificate verification; a trusted_ca turns chain verification on; the server's name is checked
// only against match_typed_subject_alt_names — with or without a trusted_ca, as in Envoy (dial checks
// them after the handshake; Node's own hostname check is off); SNI is sent only when `sni` is set.
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import {
  PROXY_PROTOCOL_UPSTREAM_TYPE,
  UPSTREAM_TLS_TYPE,
  type DataSourceConfig,
  type TransportSocketConfig,
  type UpstreamTlsContextConfig,
} from "../config/schema.ts";
import { PLAIN_TRANSPORT, type Transport } from "./connect.ts";
import { TetherError } from "../errors.ts";
import { SubjectAltNameVerifier } from "./san.ts";

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

/** Envoy never checks the server's name against SNI or the address; only SAN matchers do. */
const NO_HOSTNAME_CHECK = (): undefined => undefined;

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
  options.checkServerIdentity = NO_HOSTNAME_CHECK;
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
  if (tc["@type"] === UPSTREAM_TLS_TYPE) return { ...tlsTransport(tc, path), proxyProtocol: undefined };
  if (tc["@type"] === PROXY_PROTOCOL_UPSTREAM_TYPE) {
    const inner = tc.transport_socket.typed_config;
    const innerPath = `${path}.typed_config.transport_socket`;
    return {
      ...(inner["@type"] === UPSTREAM_TLS_TYPE ? tlsTransport(inner, innerPath) : { tls: undefined }),
      proxyProtocol: tc.config.version,
    };
  }
  return PLAIN_TRANSPORT;
}

function tlsTransport(
  ctx: UpstreamTlsContextConfig,
  path: string,
): Pick<Transport, "tls" | "subjectAltNames"> {
  const sans = ctx.common_tls_context.validation_context?.match_typed_subject_alt_names ?? [];
  return {
    tls: tlsConnectOptions(ctx, path),
    ...(sans.length === 0 ? {} : { subjectAltNames: new SubjectAltNameVerifier(sans) }),
  };
}
