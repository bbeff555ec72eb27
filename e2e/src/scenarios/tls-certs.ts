/**
 * Test certificates made with the machine's openssl, fresh per run: a CA and one server
 * certificate per TLS backend (CN = the backend's name, SAN = the name clients verify plus the
 * backend's own), for the broker scenario and its local test. Keys are P-256.
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export class CertError extends Error {
  readonly code = "TETHER_ERR_E2E_CERTS";
  constructor(message: string) {
    super(`TETHER_ERR_E2E_CERTS: ${message}`);
    this.name = "CertError";
  }
}

export interface ServerCert {
  readonly name: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** SHA-256 fingerprint as Node's TLS reports a peer's (AA:BB:…). */
  readonly fingerprint256: string;
}

export interface TestCerts {
  readonly dir: string;
  readonly caPem: string;
  /** Path of the CA certificate in `dir`. */
  readonly caFile: string;
  readonly servers: readonly ServerCert[];
  /** Removes `dir`. */
  remove(): Promise<void>;
}

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  try {
    await execFileAsync("openssl", args, { cwd, timeout: 30_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new CertError(`openssl ${args.join(" ")}: ${stderr.trim() || String(error)}`);
  }
}

// Our own config, so the machine's openssl.cnf (and its default extensions) plays no part.
const CA_CONFIG = `[req]
distinguished_name = dn
prompt = no
x509_extensions = ca_ext
[dn]
CN = tether-e2e-ca
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

const REQ_CONFIG = (cn: string): string => `[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${cn}
`;

const SERVER_EXTENSIONS = (san: string): string => `[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${san}
`;

/**
 * A CA and one server certificate per name in `servers`, each valid for `verifyName` (what clients
 * pass as SNI and check) and its own name.
 */
export async function makeTestCerts(verifyName: string, servers: readonly string[]): Promise<TestCerts> {
  if (!/^[A-Za-z0-9.-]+$/.test(verifyName))
    throw new CertError(`verifyName: expected a DNS name, got ${verifyName}`);
  const dir = await mkdtemp(join(tmpdir(), "tether-e2e-certs-"));
  try {
    await writeFile(join(dir, "ca.cnf"), CA_CONFIG);
    const key = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"];
    await openssl([...key, "ca.key"], dir);
    await openssl(
      ["req", "-x509", "-new", "-config", "ca.cnf", "-key", "ca.key", "-days", "2", "-out", "ca.crt"],
      dir,
    );
    const made: ServerCert[] = [];
    for (const name of servers) {
      if (!/^[A-Za-z0-9.-]+$/.test(name))
        throw new CertError(`server name: expected a DNS name, got ${name}`);
      await writeFile(join(dir, `${name}.req.cnf`), REQ_CONFIG(name));
      await writeFile(join(dir, `${name}.ext.cnf`), SERVER_EXTENSIONS(`DNS:${verifyName}, DNS:${name}`));
      await openssl([...key, `${name}.key`], dir);
      await openssl(
        ["req", "-new", "-config", `${name}.req.cnf`, "-key", `${name}.key`, "-out", `${name}.csr`],
        dir,
      );
      await openssl(
        ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"].concat(
          ["-days", "2", "-extfile", `${name}.ext.cnf`, "-extensions", "server_ext", "-out", `${name}.crt`],
        ),
        dir,
      );
      const certPem = await readFile(join(dir, `${name}.crt`), "utf8");
      made.push({
        name,
        certPem,
        keyPem: await readFile(join(dir, `${name}.key`), "utf8"),
        fingerprint256: new X509Certificate(certPem).fingerprint256,
      });
    }
    return {
      dir,
      caPem: await readFile(join(dir, "ca.crt"), "utf8"),
      caFile: join(dir, "ca.crt"),
      servers: made,
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
