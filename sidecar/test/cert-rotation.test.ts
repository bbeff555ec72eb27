// TLS material rotated live, as cert-manager and the kubelet do it: the Secret volume's files are
// symlinks through `..data`, and an update swaps `..data` to a new timestamped directory. Under
// steady traffic (each request a new upstream connection, so a new handshake) the sidecar must fail
// no request, new handshakes must present the new client certificate at once, a connection opened
// before the rotation keeps its material, a bad new key is refused naming the file (the previous
// material stays), and a new trusted CA takes effect for new handshakes.
import { execSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent, Pool, request } from "undici";
import {
  freePort,
  oneRouteYaml,
  protocolOptionsYaml,
  Sidecar,
  Upstream,
  waitFor,
} from "./support/harness.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Pki {
  dir: string;
  file: (name: string) => string;
}

/** Two CAs; a server certificate from the first; a client certificate from each. EC keys: quick to make. */
function makePki(): Pki {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tether-rotate-"));
  const openssl = (args: string): void => {
    execSync(`openssl ${args}`, { cwd: dir, stdio: "ignore" });
  };
  const ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  openssl(`req -x509 ${ec} -days 2 -subj /CN=ca-one -keyout ca1.key -out ca1.pem`);
  openssl(`req -x509 ${ec} -days 2 -subj /CN=ca-two -keyout ca2.key -out ca2.pem`);
  writeFileSync(path.join(dir, "san.ext"), "subjectAltName=DNS:policy.test\n");
  openssl(`req ${ec} -subj /CN=policy.test -keyout server.key -out server.csr`);
  openssl(
    `x509 -req -in server.csr -CA ca1.pem -CAkey ca1.key -CAcreateserial -days 2 -extfile san.ext -out server.pem`,
  );
  for (const [n, ca] of [
    ["one", "ca1"],
    ["two", "ca2"],
  ] as const) {
    openssl(`req ${ec} -subj /CN=agent-${n} -keyout client-${n}.key -out client-${n}.csr`);
    openssl(
      `x509 -req -in client-${n}.csr -CA ${ca}.pem -CAkey ${ca}.key -CAcreateserial -days 2 -out client-${n}.pem`,
    );
  }
  const read = (n: string): string => readFileSync(path.join(dir, n), "utf8");
  writeFileSync(path.join(dir, "both-cas.pem"), read("ca1.pem") + read("ca2.pem"));
  return { dir, file: (n) => path.join(dir, n) };
}

/** A Secret volume: ca.crt, tls.crt, tls.key → ..data/… → ..<version>/… */
class SecretVolume {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), "tether-secret-"));
  private version = 0;

  constructor(files: Record<string, string>) {
    this.write(files);
    for (const name of Object.keys(files)) symlinkSync(`..data/${name}`, path.join(this.dir, name));
  }

  /** The kubelet's atomic update: a new version directory, then ..data swapped to it by rename. */
  write(files: Record<string, string>): void {
    const v = `..v${++this.version}`;
    mkdirSync(path.join(this.dir, v));
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(this.dir, v, name), text);
    symlinkSync(v, path.join(this.dir, "..data_tmp"));
    renameSync(path.join(this.dir, "..data_tmp"), path.join(this.dir, "..data"));
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }
}

/** Requests through the sidecar from `workers` loops until stopped; every status and error kept. */
function steadyTraffic(
  port: number,
  workers = 4,
): { stop: () => Promise<{ ok: number; failures: string[] }> } {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: workers });
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loop = async (): Promise<void> => {
    while (running) {
      try {
        const res = await pool.request({ path: "/rotate", method: "GET" });
        const text = await res.body.text();
        if (res.statusCode === 200) ok++;
        else failures.push(`${res.statusCode} ${text.slice(0, 120)}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const loops = Array.from({ length: workers }, loop);
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      await pool.close();
      return { ok, failures };
    },
  };
}

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

describe("TLS material rotation (Secret ..data swap)", () => {
  it("rotates under traffic with no failure; new handshakes use the new material, a bad key is refused", async () => {
    const text = (n: string): string => readFileSync(pki.file(n), "utf8");
    const secret = new SecretVolume({
      "ca.crt": text("ca1.pem"),
      "tls.crt": text("client-one.pem"),
      "tls.key": text("client-one.key"),
    });
    const [pu, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    // The server accepts client certificates from either CA (the overlap a CA rotation needs).
    const u = await new Upstream(
      pu,
      "secure",
      "http",
      { cert: pki.file("server.pem"), key: pki.file("server.key") },
      ["--tls-client-ca", pki.file("both-cas.pem")],
    ).start();
    cleanups.push(() => u.kill());
    const tls = `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: policy.test
          common_tls_context:
            tls_certificates:
              - certificate_chain: { filename: ${secret.path("tls.crt")} }
                private_key: { filename: ${secret.path("tls.key")} }
            validation_context:
              trusted_ca: { filename: ${secret.path("ca.crt")} }
`;
    const s = new Sidecar(
      admin,
      Sidecar.writeConfig(
        // One request per upstream connection: every request is a new handshake.
        oneRouteYaml(admin, listen, {
          endpoints: [{ port: pu }],
          extra: protocolOptionsYaml("30s", 1) + tls,
        }),
      ),
    );
    cleanups.push(() => s.stop());
    await s.start();
    const mtls = new Agent({
      connect: { rejectUnauthorized: false, cert: text("client-one.pem"), key: text("client-one.key") },
    });
    cleanups.push(() => mtls.close());
    const lastClient = async (): Promise<string | undefined> =>
      (
        (await (await request(`https://127.0.0.1:${pu}/__stats`, { dispatcher: mtls })).body.json()) as {
          lastClientCn?: string;
        }
      ).lastClientCn;

    const traffic = steadyTraffic(listen);
    await waitFor(
      "traffic with the first client certificate",
      async () => (await lastClient()) === "agent-one",
    );
    // Opened before the rotation, answered after it: this connection keeps the material it has.
    const longRequest = request(`http://127.0.0.1:${listen}/slow?ms=1500`);

    // 1. cert-manager renews: a new client certificate from the new CA, and the CA bundle with both.
    secret.write({
      "ca.crt": text("both-cas.pem"),
      "tls.crt": text("client-two.pem"),
      "tls.key": text("client-two.key"),
    });
    await waitFor(
      "new handshakes present the new certificate",
      async () => (await lastClient()) === "agent-two",
    );
    await waitFor("rotation logged", () => s.logs.includes("TLS material rotated"));

    // 2. A bad key (not the certificate's): refused, naming the file; the previous material stays.
    secret.write({
      "ca.crt": text("both-cas.pem"),
      "tls.crt": text("client-two.pem"),
      "tls.key": text("client-one.key"),
    });
    await waitFor("bad key refused", () => s.logs.includes("new TLS material refused"));
    expect(s.logs).toContain("TETHER_ERR_TLS_MATERIAL");
    expect(s.logs).toContain(
      `static_resources.clusters[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key.filename (${secret.path("tls.key")}): the key does not match`,
    );
    const afterBad = await traffic.stop();
    expect(afterBad.failures).toEqual([]);
    expect(afterBad.ok).toBeGreaterThan(20);
    expect(await lastClient()).toBe("agent-two");
    const long = await longRequest;
    expect(long.statusCode).toBe(200);
    await long.body.text();

    // 3. A trusted CA that no longer includes the server's: new handshakes fail (the CA in use is the new one).
    secret.write({
      "ca.crt": text("ca2.pem"),
      "tls.crt": text("client-two.pem"),
      "tls.key": text("client-two.key"),
    });
    await waitFor("the new CA refuses the server's certificate", async () => {
      const res = await request(`http://127.0.0.1:${listen}/after-ca-change`);
      await res.body.text();
      return res.statusCode === 503;
    });
  });
});
