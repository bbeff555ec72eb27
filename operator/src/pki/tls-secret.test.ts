// parseTlsSecret, the check every Secret passes before its certificate is served: each way a Secret
// can be unusable gets a message naming the key at fault. Served and watched for real in
// test/xds-tls-secret.test.ts.
import { describe, expect, it } from "vitest";
import { parseTlsSecret } from "./tls-secret.ts";
import { createCa, issueServing } from "./x509.ts";

const DAY = 86_400_000;
const NOW = Date.now();
const NAME = "tether-xds.tether-system.svc.cluster.local";
const valid = { notBefore: new Date(NOW - DAY), notAfter: new Date(NOW + DAY) };
const ca = createCa("test CA", valid);
const leaf = issueServing(ca, ["tether-xds", NAME], valid);
const b64 = (s: string): string => Buffer.from(s).toString("base64");
const secret = (data: Record<string, string>): { data: Record<string, string> } => ({
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});
const good = { "tls.crt": leaf.certPem, "tls.key": leaf.keyPem, "ca.crt": ca.certPem };

describe("parseTlsSecret", () => {
  it("accepts cert-manager's shape: the certificate, its key and the CA bundle", () => {
    const result = parseTlsSecret(secret(good), NAME, NOW);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.identity.certPem).toBe(leaf.certPem);
    expect(result.identity.caBundlePem).toBe(ca.certPem);
    expect(result.identity.notAfter.getTime()).toBeGreaterThan(NOW);
  });

  it.each([
    ["no Secret", undefined, /has no tls\.crt/],
    [
      "no ca.crt (an ACME issuer)",
      secret({ ...good, "ca.crt": "" }),
      /has no ca\.crt \(cert-manager writes it/,
    ],
    ["a bad certificate", secret({ ...good, "tls.crt": "junk" }), /tls\.crt is not a PEM certificate/],
    ["a bad key", secret({ ...good, "tls.key": "junk" }), /tls\.key is not a PEM private key/],
    ["an empty bundle", secret({ ...good, "ca.crt": "junk" }), /ca\.crt holds no certificate/],
    [
      "another certificate's key",
      secret({ ...good, "tls.key": issueServing(ca, [NAME], valid).keyPem }),
      /tls\.key does not match tls\.crt/,
    ],
    [
      "a certificate for other names",
      secret({ ...good, ...pair(issueServing(ca, ["elsewhere.example"], valid)) }),
      /tls\.crt does not name tether-xds\.tether-system\.svc\.cluster\.local \(DNS:elsewhere\.example\)/,
    ],
  ])("refuses %s", (_label, input, message) => {
    const result = parseTlsSecret(input, NAME, NOW);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(message);
  });

  it("refuses an expired certificate", () => {
    const result = parseTlsSecret(secret(good), NAME, NOW + 2 * DAY);
    expect(result).toMatchObject({
      ok: false,
      error: expect.stringMatching(/tls\.crt expired at/) as unknown,
    });
  });
});

function pair(c: { certPem: string; keyPem: string }): Record<string, string> {
  return { "tls.crt": c.certPem, "tls.key": c.keyPem };
}
