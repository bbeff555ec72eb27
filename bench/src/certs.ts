// A throwaway CA and one server certificate, made with the openssl CLI, for the benches that need
// TLS (to an upstream, to the control plane).
import { execSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Certificates {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** A CA (ca.pem) and a certificate for `serverName` (its SAN) signed by it, written into `dir`. */
export function makeCertificates(dir: string, serverName: string): Certificates {
  const openssl = (args: string): void => {
    execSync(`openssl ${args}`, { cwd: dir, stdio: "ignore" });
  };
  openssl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.pem");
  openssl(`req -newkey rsa:2048 -nodes -subj /CN=${serverName} -keyout server.key -out server.csr`);
  writeFileSync(join(dir, "san.ext"), `subjectAltName=DNS:${serverName}\n`);
  openssl(
    "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem",
  );
  return { ca: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server.key") };
}
