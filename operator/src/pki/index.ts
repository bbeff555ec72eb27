/**
 * The operator's PKI: its own CA in a Secret (authority.ts, ca-state.ts) and serving certificates it
 * issues in memory (serving.ts), as ECDSA P-256 X.509 (x509.ts, der.ts). docs/xds-security.md
 * describes the lifecycle. Use:
 *
 *   const ca = new CertificateAuthority({ client, namespace, secretName, logger });
 *   await ca.start();                                   // read, create or rotate; re-checks every 10 min
 *   const serving = new ServingCertificate({ authority: ca, dnsNames, logger });
 *   const first = serving.start();                      // { certPem, keyPem, caBundlePem, ... }
 *   serving.onRotate((next) => server.setSecureContext(next));
 *   ca.onChange((state) => publish(state.bundle));      // the bundle clients should trust
 *
 * Or, with --xds-tls-secret, a certificate issued elsewhere (cert-manager) read from a Secret
 * (tls-secret.ts): `new TlsSecretCertificate({ client, namespace, secretName, verifyName, logger })`.
 */
export { CA_SECRET_KEYS, CertificateAuthority, type CertificateAuthorityOptions } from "./authority.ts";
export { DEFAULT_CA_POLICY, planCa, type CaPlan, type CaPolicy, type CaState } from "./ca-state.ts";
export {
  ServingCertificate,
  serviceDnsNames,
  type ServingCertificateOptions,
  type ServingIdentity,
  type SigningAuthority,
} from "./serving.ts";
export {
  parseTlsSecret,
  TLS_SECRET_KEYS,
  TlsSecretCertificate,
  type TlsSecretCertificateOptions,
  type TlsSecretResult,
} from "./tls-secret.ts";
export { createCa, issueServing, splitPem, type CertifiedKey, type Validity } from "./x509.ts";
