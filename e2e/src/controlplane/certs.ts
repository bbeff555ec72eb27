import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { ControlPlaneError } from "./errors.ts";

const execFileAsync = promisify(execFile);

/** Paths of the PEM files one control plane uses; all generated fresh per run. */
export interface ControlPlaneCerts {
  readonly caCert: string;
  readonly caKey: string;
  readonly apiserverCert: string;
  readonly apiserverKey: string;
  /** Client certificate of the admin user: CN=tether-admin, O=system:masters. */
  readonly adminCert: string;
  readonly adminKey: string;
  /**
   * Client certificate of kube-controller-manager: CN=system:kube-controller-manager, O=system:masters.
   * With --use-service-account-credentials=false every controller acts as this one user, and the
   * bootstrap role of that user lacks what the controllers need (their rights are bound to the
   * per-controller service accounts), so it is a cluster admin.
   */
  readonly controllerManagerCert: string;
  readonly controllerManagerKey: string;
  /** Service-account token signing key pair. */
  readonly serviceAccountKey: string;
  readonly serviceAccountPublicKey: string;
}

const VALID_DAYS = 30;

// Our own config, so the machine's openssl.cnf (and its default extensions) plays no part.
function opensslConfig(serviceIp: string): string {
  return `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, IP:${serviceIp}, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await execFileAsync("openssl", args, { timeout: 30_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new ControlPlaneError(
      "TETHER_ERR_CONTROL_PLANE_CERTS",
      `openssl ${args.join(" ")} failed: ${stderr.trim() || String(error)}`,
      { cause: error },
    );
  }
}

// P-256 keys: generated in milliseconds, accepted by Go's TLS stack and as service-account (ES256) keys.
async function generateKey(path: string): Promise<void> {
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path]);
}

async function signedCert(
  dir: string,
  config: string,
  name: string,
  subject: string,
  extensions: string,
): Promise<void> {
  const csr = join(dir, `${name}.csr`);
  await openssl([
    "req",
    "-new",
    "-config",
    config,
    "-key",
    join(dir, `${name}.key`),
    "-subj",
    subject,
    "-out",
    csr,
  ]);
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    join(dir, "ca.crt"),
    "-CAkey",
    join(dir, "ca.key"),
    "-set_serial",
    `0x${randomBytes(16).toString("hex")}`,
    "-days",
    String(VALID_DAYS),
    "-extfile",
    config,
    "-extensions",
    extensions,
    "-out",
    join(dir, `${name}.crt`),
  ]);
}

/**
 * Generates a CA, the kube-apiserver serving certificate (SANs 127.0.0.1, the first service IP,
 * localhost and kubernetes.default.svc[.cluster.local]), client certificates for the admin
 * (O=system:masters) and for kube-controller-manager, and the service-account signing key pair.
 */
export async function generateCerts(dir: string, serviceIp: string): Promise<ControlPlaneCerts> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const config = join(dir, "openssl.cnf");
  await writeFile(config, opensslConfig(serviceIp));
  const path = (file: string): string => join(dir, file);
  await Promise.all(
    ["ca", "apiserver", "admin", "controller-manager", "service-account"].map((name) =>
      generateKey(path(`${name}.key`)),
    ),
  );
  await openssl([
    "req",
    "-x509",
    "-new",
    "-config",
    config,
    "-extensions",
    "ca_ext",
    "-key",
    path("ca.key"),
    "-subj",
    "/CN=tether-control-plane-ca",
    "-days",
    String(VALID_DAYS),
    "-out",
    path("ca.crt"),
  ]);
  await Promise.all([
    signedCert(dir, config, "apiserver", "/CN=kube-apiserver", "server_ext"),
    signedCert(dir, config, "admin", "/O=system:masters/CN=tether-admin", "client_ext"),
    signedCert(
      dir,
      config,
      "controller-manager",
      "/O=system:masters/CN=system:kube-controller-manager",
      "client_ext",
    ),
    openssl(["pkey", "-in", path("service-account.key"), "-pubout", "-out", path("service-account.pub")]),
  ]);
  return {
    caCert: path("ca.crt"),
    caKey: path("ca.key"),
    apiserverCert: path("apiserver.crt"),
    apiserverKey: path("apiserver.key"),
    adminCert: path("admin.crt"),
    adminKey: path("admin.key"),
    controllerManagerCert: path("controller-manager.crt"),
    controllerManagerKey: path("controller-manager.key"),
    serviceAccountKey: path("service-account.key"),
    serviceAccountPublicKey: path("service-account.pub"),
  };
}
