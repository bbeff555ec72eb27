// TLS to the control plane from the ADS cluster's transport_socket (an UpstreamTlsContext), for the
// ADS client: the trusted_ca file (re-read at every reconnect, so a rotated bundle applies), `sni`,
// and the one DNS name an exact SAN matcher names. The subset the ADS client speaks is small; any
// other shape is a config error rather than a silently weaker connection.
import { UPSTREAM_TLS_TYPE, type ClusterConfig } from "@tether/envoy";
import type { AdsClientTls } from "@tether/xds/client";
import { TetherError } from "../errors.ts";

/** undefined: plaintext (the cluster has no transport_socket). */
export function adsTls(cluster: ClusterConfig | undefined): AdsClientTls | undefined {
  const socket = cluster?.transport_socket;
  if (cluster === undefined || socket === undefined) return undefined;
  const path = `static_resources.clusters[${cluster.name}].transport_socket`;
  const fail = (problem: string): never => {
    const message = `${path}: ${problem} (the ADS cluster)`;
    throw new TetherError("TETHER_ERR_CONFIG_INVALID", message, [message]);
  };
  const ctx = socket.typed_config;
  if (ctx["@type"] !== UPSTREAM_TLS_TYPE) return fail("only an UpstreamTlsContext is supported");
  const common = ctx.common_tls_context;
  if (common.tls_certificates.length > 0) fail("client certificates are not supported");
  const caFile = common.validation_context?.trusted_ca?.filename;
  if (caFile === undefined) fail("validation_context.trusted_ca.filename is required");
  const sans = common.validation_context?.match_typed_subject_alt_names ?? [];
  const exactDns = sans.filter((s) => s.san_type === "DNS" && s.matcher.exact !== undefined);
  if (sans.length > 1 || exactDns.length !== sans.length)
    fail("validation_context.match_typed_subject_alt_names: at most one DNS matcher with exact");
  return { caFile: caFile ?? "", sni: ctx.sni, verifyName: exactDns[0]?.matcher.exact };
}
