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
} from "@tether/envoy";
import { PLAIN_TRANSPORT, type Transport } from "./connect.ts";
import { TetherError } from "../errors.ts";
import { SubjectAltNameVerifier } from "./san.ts";
import { TlsMaterial, type TlsFile } from "./tls-material.ts";

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

/** The context's material, read now; `files` are the ones to follow (inline strings never change). */
function readMaterial(
  ctx: UpstreamTlsContextConfig,
  path: string,
): { files: TlsFile[]; texts: Partial<Record<TlsFile["role"], string>> } {
  const files: TlsFile[] = [];
  const texts: Partial<Record<TlsFile["role"], string>> = {};
  const add = (role: TlsFile["role"], source: DataSourceConfig, configPath: string): void => {
    texts[role] = read(source, configPath);
    if (source.filename !== undefined)
      files.push({ role, file: source.filename, configPath: `${configPath}.filename` });
  };
  const common = ctx.common_tls_context;
  const cert = common.tls_certificates[0];
  if (cert !== undefined) {
    const p = `${path}.typed_config.common_tls_context.tls_certificates[0]`;
    add("certificate_chain", cert.certificate_chain, `${p}.certificate_chain`);
    add("private_key", cert.private_key, `${p}.private_key`);
  }
  const ca = common.validation_context?.trusted_ca;
  if (ca !== undefined)
    add("trusted_ca", ca, `${path}.typed_config.common_tls_context.validation_context.trusted_ca`);
  return { files, texts };
}

/** Envoy never checks the server's name against SNI or the address; only SAN matchers do. */
const NO_HOSTNAME_CHECK = (): undefined => undefined;

const VERSIONS = { TLSv1_2: "TLSv1.2", TLSv1_3: "TLSv1.3" } as const;

/** The options that do not come from files: verification, SNI, ALPN, protocol versions. */
function baseOptions(ctx: UpstreamTlsContextConfig): ConnectionOptions {
  const common = ctx.common_tls_context;
  const options: ConnectionOptions = {
    rejectUnauthorized: common.validation_context?.trusted_ca !== undefined,
  };
  if (ctx.sni !== undefined) options.servername = ctx.sni;
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

/**
 * The context's TLS material, read and checked now (a bad file fails the config, naming it) and
 * followed while it rotates once watched. `path` names the transport_socket in error messages.
 */
export function tlsMaterial(ctx: UpstreamTlsContextConfig, path: string): TlsMaterial {
  const { files, texts } = readMaterial(ctx, path);
  return new TlsMaterial(baseOptions(ctx), files, texts);
}

/** The options a connection made now would use. */
export function tlsConnectOptions(ctx: UpstreamTlsContextConfig, path: string): ConnectionOptions {
  return tlsMaterial(ctx, path).options;
}

/** A transport whose TLS options follow its material: read at each dial, so a rotation applies at once. */
class TlsTransport implements Transport {
  readonly proxyProtocol: "V1" | "V2" | undefined;
  readonly subjectAltNames: SubjectAltNameVerifier | undefined;
  readonly material: TlsMaterial;

  constructor(
    material: TlsMaterial,
    sans: SubjectAltNameVerifier | undefined,
    proxyProtocol: "V1" | "V2" | undefined,
  ) {
    this.material = material;
    this.subjectAltNames = sans;
    this.proxyProtocol = proxyProtocol;
  }

  get tls(): ConnectionOptions {
    return this.material.options;
  }
}

/** The cluster's transport_socket → how to dial: PROXY header version and TLS options. */
export function resolveTransport(ts: TransportSocketConfig | undefined, path: string): Transport {
  if (ts === undefined) return PLAIN_TRANSPORT;
  const tc = ts.typed_config;
  if (tc["@type"] === UPSTREAM_TLS_TYPE) return tlsTransport(tc, path, undefined);
  if (tc["@type"] === PROXY_PROTOCOL_UPSTREAM_TYPE) {
    const inner = tc.transport_socket.typed_config;
    const innerPath = `${path}.typed_config.transport_socket`;
    if (inner["@type"] === UPSTREAM_TLS_TYPE) return tlsTransport(inner, innerPath, tc.config.version);
    return { tls: undefined, proxyProtocol: tc.config.version };
  }
  return PLAIN_TRANSPORT;
}

function tlsTransport(
  ctx: UpstreamTlsContextConfig,
  path: string,
  proxyProtocol: "V1" | "V2" | undefined,
): Transport {
  const sans = ctx.common_tls_context.validation_context?.match_typed_subject_alt_names ?? [];
  return new TlsTransport(
    tlsMaterial(ctx, path),
    sans.length === 0 ? undefined : new SubjectAltNameVerifier(sans),
    proxyProtocol,
  );
}
