/**
 * The operator's PKI: its own CA in a Secret (authority.ts, ca-state.ts) and serving certificates it
 * issues in memory (serving.ts), as ECDSA P-256 X.509 (x509.ts, der.ts). docs/xds-security.md
 * describes the lifecycle.
 */
export { CA_SECRET_KEYS, CertificateAuthority, type CertificateAuthorityOptions } from "./authority.ts";
export { DEFAULT_CA_POLICY, planCa, type CaPlan, type CaPolicy, type CaState } from "./ca-state.ts";
export {
  ServingCertificate,
  serviceDnsNames,
  type ServingCertificateOptions,
  type ServingIdentity,
} from "./serving.ts";
export { createCa, issueServing, splitPem, type CertifiedKey, type Validity } from "./x509.ts";
