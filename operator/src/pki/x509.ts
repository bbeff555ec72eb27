/**
 * ECDSA P-256 certificates signed with SHA-256: a self-signed CA and the serving certificates it
 * issues. Keys and signatures come from node:crypto; the TBSCertificate is encoded by der.ts.
 */
import {
  X509Certificate,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from "node:crypto";
import {
  bitString,
  boolean,
  explicit,
  implicitPrimitive,
  integer,
  integerBytes,
  namedBits,
  octetString,
  oid,
  sequence,
  set,
  time,
  utf8String,
} from "./der.ts";

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

/** KeyUsage bits (RFC 5280 4.2.1.3). */
const DIGITAL_SIGNATURE = 0;
const KEY_CERT_SIGN = 5;
const CRL_SIGN = 6;

/** A certificate with its private key, both PEM (the key PKCS#8). */
export interface CertifiedKey {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export function generateKey(): KeyObject {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey;
}

/** A DER element's header length and content bounds, for reading back our own certificates. */
function element(der: Buffer, offset: number): { start: number; end: number } {
  const first = der[offset + 1] ?? 0;
  let length = first;
  let header = 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[offset + 2 + i] ?? 0);
    header += count;
  }
  return { start: offset + header, end: offset + header + length };
}

/** The children of the SEQUENCE at `offset`, each as its whole encoding. */
function children(der: Buffer, offset: number): Buffer[] {
  const { start, end } = element(der, offset);
  const out: Buffer[] = [];
  for (let at = start; at < end;) {
    const next = element(der, at).end;
    out.push(der.subarray(at, next));
    at = next;
  }
  return out;
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: "spki", format: "der" });
  const bits = children(spki, 0)[1] ?? Buffer.alloc(0);
  const { start, end } = element(bits, 0);
  return createHash("sha1")
    .update(bits.subarray(start + 1, end))
    .digest();
}

/** The issuer's subject Name, byte for byte, from its certificate. */
function subjectName(cert: X509Certificate): Buffer {
  const tbs = children(cert.raw, 0)[0] ?? Buffer.alloc(0);
  // version [0], serialNumber, signature, issuer, validity, subject
  const subject = children(tbs, 0)[5];
  if (subject === undefined) throw new Error("certificate without a subject");
  return subject;
}

function name(commonName: string): Buffer {
  return sequence(set(sequence(oid(OID.commonName), utf8String(commonName))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

/** A random positive 128-bit serial (RFC 5280 allows up to 20 octets). */
function serial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return integerBytes(bytes);
}

function toPem(der: Buffer): string {
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN CERTIFICATE-----\n${b64.endsWith("\n") ? b64 : `${b64}\n`}-----END CERTIFICATE-----\n`;
}

interface TbsInput {
  readonly subject: Buffer;
  readonly issuer: Buffer;
  readonly validity: Validity;
  readonly publicKey: KeyObject;
  readonly extensions: Buffer[];
}

function signCertificate(input: TbsInput, signingKey: KeyObject): string {
  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const tbs = sequence(
    explicit(0, integer(2)), // v3
    serial(),
    algorithm,
    input.issuer,
    sequence(time(input.validity.notBefore), time(input.validity.notAfter)),
    input.subject,
    input.publicKey.export({ type: "spki", format: "der" }),
    explicit(3, sequence(...input.extensions)),
  );
  const signature = sign("sha256", tbs, signingKey); // DER ECDSA-Sig-Value
  return toPem(sequence(tbs, algorithm, bitString(signature)));
}

/** A self-signed CA that may sign end-entity certificates only (pathLenConstraint 0). */
export function createCa(commonName: string, validity: Validity): CertifiedKey {
  const key = generateKey();
  const publicKey = createPublicKey(key);
  const ski = keyIdentifier(publicKey);
  const certPem = signCertificate(
    {
      subject: name(commonName),
      issuer: name(commonName),
      validity,
      publicKey,
      extensions: [
        extension(OID.basicConstraints, true, sequence(boolean(true), integer(0))),
        extension(OID.keyUsage, true, namedBits([DIGITAL_SIGNATURE, KEY_CERT_SIGN, CRL_SIGN])),
        extension(OID.subjectKeyIdentifier, false, octetString(ski)),
      ],
    },
    key,
  );
  return { certPem, keyPem: key.export({ type: "pkcs8", format: "pem" }).toString() };
}

/** A TLS server certificate for `dnsNames` (the first is also the subject's CN), signed by `ca`. */
export function issueServing(
  ca: CertifiedKey,
  dnsNames: readonly string[],
  validity: Validity,
): CertifiedKey {
  if (dnsNames.length === 0) throw new Error("a serving certificate needs at least one DNS name");
  const caCert = new X509Certificate(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem);
  const key = generateKey();
  const publicKey = createPublicKey(key);
  const sans = sequence(...dnsNames.map((n) => implicitPrimitive(2, Buffer.from(n, "ascii"))));
  const certPem = signCertificate(
    {
      subject: name(dnsNames[0] ?? ""),
      issuer: subjectName(caCert),
      validity,
      publicKey,
      extensions: [
        extension(OID.basicConstraints, true, sequence()),
        extension(OID.keyUsage, true, namedBits([DIGITAL_SIGNATURE])),
        extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, sans),
        extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(publicKey))),
        extension(
          OID.authorityKeyIdentifier,
          false,
          sequence(implicitPrimitive(0, keyIdentifier(caCert.publicKey))),
        ),
      ],
    },
    caKey,
  );
  return { certPem, keyPem: key.export({ type: "pkcs8", format: "pem" }).toString() };
}

/** Every certificate in a PEM bundle, in order; text outside the blocks is ignored. */
export function splitPem(bundle: string): X509Certificate[] {
  const blocks = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}
