import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { connect, createServer } from "node:tls";
import { describe, expect, it } from "vitest";
import { createCa, issueServing, splitPem } from "./x509.ts";

const DAY = 86_400_000;
const now = Date.UTC(2026, 11, 6, 12, 0, 0);

describe("x509", () => {
  const ca = createCa("tether-operator CA", {
    notBefore: new Date(now),
    notAfter: new Date(now + 365 * DAY),
  });
  const names = ["tether-xds", "tether-xds.tether-system", "tether-xds.tether-system.svc"];
  const leaf = issueServing(ca, names, { notBefore: new Date(now), notAfter: new Date(now + 30 * DAY) });

  it("makes a self-signed CA OpenSSL reads as a CA, with the validity asked for", () => {
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe("CN=tether-operator CA");
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(new Date(cert.validFrom).getTime()).toBe(now);
    expect(new Date(cert.validTo).getTime()).toBe(now + 365 * DAY);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  });

  it("issues a serving certificate for exactly the DNS names, signed by the CA", () => {
    const cert = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(false);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.subjectAltName).toBe(names.map((n) => `DNS:${n}`).join(", "));
    expect(cert.checkHost("tether-xds.tether-system.svc")).toBe("tether-xds.tether-system.svc");
    expect(cert.checkHost("other.tether-system.svc")).toBeUndefined();
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
  });

  it("is accepted by a real TLS handshake that trusts the CA, refused by one that does not", async () => {
    const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) => {
      socket.end("ok");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    const handshake = (caPem: string): Promise<string> =>
      new Promise((resolve) => {
        const socket = connect({ host: "127.0.0.1", port, servername: names[2], ca: caPem }, () => {
          resolve("trusted");
          socket.destroy();
        });
        socket.on("error", (err: NodeJS.ErrnoException) => {
          resolve(err.code ?? err.message);
        });
      });
    try {
      // The handshake runs at the clock of this machine: a CA valid from now on.
      const live = createCa("live", {
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + DAY),
      });
      const liveLeaf = issueServing(live, names, {
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + DAY),
      });
      server.setSecureContext({ cert: liveLeaf.certPem, key: liveLeaf.keyPem });
      expect(await handshake(live.certPem)).toBe("trusted");
      const stranger = createCa("stranger", {
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + DAY),
      });
      expect(await handshake(stranger.certPem)).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    } finally {
      server.close();
    }
  });

  it("splits a bundle into its certificates", () => {
    expect(splitPem(`${ca.certPem}junk\n${leaf.certPem}`).map((c) => c.subject)).toEqual([
      "CN=tether-operator CA",
      "CN=tether-xds",
    ]);
  });
});
