// The demo policy server over HTTPS, its certificate rotated as Kubernetes rotates a mounted Secret:
// the volume's files are symlinks through `..data`, and an update writes a new hidden directory and
// swaps `..data` to it by rename. The image's entry point runs as a real child process; real TLS
// clients verify it. New handshakes must present the new certificate once the server reports the
// rotation, a connection opened before keeps its certificate, and a key that does not match its
// certificate is refused (reported on stderr, naming the flag) while the previous pair stays.
import { X509Certificate } from "node:crypto";
import https from "node:https";
import { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChildHandle } from "../src/demo/processes.ts";
import { jsonLines } from "../src/scenarios/client.ts";
import { makeTestCerts, type TestCerts } from "../src/scenarios/tls-certs.ts";
import { ENTRY } from "./support/image-commands.ts";
import { SecretVolume } from "./support/secret-volume.ts";

const VERIFY_NAME = "ps.tether.test";

interface Answer {
  readonly status: number;
  readonly body: { certSerial?: string; server?: string; tlsHandshakes?: Record<string, number> };
  /** The serial of the certificate the server presented on this connection. */
  readonly peerSerial: string;
  readonly reusedSocket: boolean;
}

/** One verified HTTPS GET to 127.0.0.1:`port` (a new connection unless `agent` has one). */
async function get(port: number, path: string, ca: string, agent?: https.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      { host: "127.0.0.1", port, path, ca, servername: VERIFY_NAME, agent: agent ?? false, timeout: 10_000 },
      (response) => {
        const socket = response.socket;
        if (!(socket instanceof TLSSocket)) {
          reject(new Error("not a TLS connection"));
          return;
        }
        const peerSerial = socket.getPeerCertificate().serialNumber.toUpperCase();
        const chunks: Buffer[] = [];
        response.on("data", (c: Buffer) => chunks.push(c));
        response.on("end", () => {
          resolve({
            status: response.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Answer["body"],
            peerSerial,
            reusedSocket: request.reusedSocket,
          });
        });
        response.on("error", reject);
      },
    );
    request.on("timeout", () => request.destroy(new Error("no answer within 10 s")));
    request.on("error", reject);
  });
}

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber.toUpperCase();

/** Waits for the server's JSON event line `event` matching `match`. */
async function event(
  child: ChildHandle,
  name: string,
  match: (e: Record<string, unknown>) => boolean = () => true,
): Promise<Record<string, unknown>> {
  return child.waitForLine((line) => {
    const parsed = jsonLines(line)[0];
    return parsed?.["event"] === name && match(parsed) ? parsed : undefined;
  }, 15_000);
}

describe("demo policy server over HTTPS: the certificate rotates with its Secret", () => {
  let first: TestCerts;
  let second: TestCerts;
  let volume: SecretVolume;
  let server: ChildHandle;
  let port = 0;
  const pair = (certs: TestCerts): Record<string, string> => ({
    "tls.crt": certs.servers[0]!.certPem,
    "tls.key": certs.servers[0]!.keyPem,
  });

  beforeAll(async () => {
    // Two CAs, as in a CA rotation: the server's first certificate from one, its next from the other.
    first = await makeTestCerts(VERIFY_NAME, ["ps-0"]);
    second = await makeTestCerts(VERIFY_NAME, ["ps-0"]);
    volume = new SecretVolume(pair(first));
    server = new ChildHandle({
      name: "policy-server tls",
      command: process.execPath,
      args: [ENTRY, "policy-server", "--port", "0", "--host", "127.0.0.1", "--name", "ps-0"].concat([
        "--tls-cert",
        volume.path("tls.crt"),
        "--tls-key",
        volume.path("tls.key"),
      ]),
    });
    const listening = await event(server, "listening");
    expect(listening).toMatchObject({ tls: true, certSerial: serialOf(first.servers[0]!.certPem) });
    port = Number(listening["port"]);
  });

  afterAll(async () => {
    await server.kill();
    volume.remove();
    await first.remove();
    await second.remove();
  });

  it("new handshakes get the new certificate after the ..data swap; an open connection keeps its own; a mismatched key is refused", async () => {
    const firstSerial = serialOf(first.servers[0]!.certPem);
    const secondSerial = serialOf(second.servers[0]!.certPem);
    const bundle = first.caPem + second.caPem;
    const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await get(port, "/authorize?resource=/app", bundle, keepAlive);
      expect(before).toMatchObject({
        status: 200,
        peerSerial: firstSerial,
        body: { certSerial: firstSerial },
      });

      volume.update(pair(second));
      expect(await event(server, "tls-rotated")).toMatchObject({
        serial: secondSerial,
        previousSerial: firstSerial,
      });
      // A new connection, verified against the new CA alone: the new certificate, and it says so.
      const fresh = await get(port, "/authorize?resource=/app", second.caPem);
      expect(fresh).toMatchObject({
        status: 200,
        peerSerial: secondSerial,
        body: { certSerial: secondSerial },
      });
      // The connection opened before the swap is still served, with the certificate it was given.
      const kept = await get(port, "/authorize?resource=/app", bundle, keepAlive);
      expect(kept).toMatchObject({ status: 200, reusedSocket: true, body: { certSerial: firstSerial } });

      // A bad pair (the first certificate with the second key): refused, the second pair stays.
      volume.update({ "tls.crt": first.servers[0]!.certPem, "tls.key": second.servers[0]!.keyPem });
      const refused = await event(server, "tls-refused");
      expect(String(refused["error"])).toMatch(
        /^TETHER_ERR_DEMO_TLS: --tls-key: the key in .* does not match/,
      );
      const still = await get(port, "/authorize?resource=/app", second.caPem);
      expect(still).toMatchObject({
        status: 200,
        peerSerial: secondSerial,
        body: { certSerial: secondSerial },
      });

      const stats = await get(port, "/stats", bundle);
      expect(stats.body.tlsHandshakes?.[firstSerial]).toBe(1);
      expect(stats.body.tlsHandshakes?.[secondSerial]).toBe(3);
    } finally {
      keepAlive.destroy();
    }
  });

  it("--tls-cert without --tls-key, or with --protocol tcp, exits 2 naming the flag", async () => {
    const run = async (args: string[]): Promise<{ code: number | null; output: string }> => {
      const child = new ChildHandle({
        name: "policy-server bad flags",
        command: process.execPath,
        args: [ENTRY, "policy-server", "--port", "0", "--name", "ps-x", ...args],
      });
      const status = await child.exited;
      return { code: status.code, output: child.output() };
    };
    const noKey = await run(["--tls-cert", volume.path("tls.crt")]);
    expect(noKey.code).toBe(2);
    expect(noKey.output).toContain("--tls-key: required with --tls-cert");
    const tcp = await run(["--protocol", "tcp", "--tls-cert", "a", "--tls-key", "b"]);
    expect(tcp.code).toBe(2);
    expect(tcp.output).toContain("--tls-cert: TLS is served in http mode only");
  });
});
