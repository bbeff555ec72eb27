import { describe, expect, it } from "vitest";
import { stringMatcherSchema } from "@tether/envoy";
import { dnsNameMatches, parseSubjectAltNames, SubjectAltNameVerifier, type SanType } from "./san.ts";

function verifier(type: SanType, matcher: object): SubjectAltNameVerifier {
  return new SubjectAltNameVerifier([{ san_type: type, matcher: stringMatcherSchema.parse(matcher) }]);
}

describe("parseSubjectAltNames", () => {
  it("reads Node's text: quoted values, canonical IPv6, email; other name types left out", () => {
    const text =
      'DNS:*.ns.svc, DNS:"a\\u002cb.test", IP Address:127.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1, ' +
      "URI:spiffe://td/ns/x, email:me@x.test, othername:1.2.3;x";
    expect(parseSubjectAltNames(text)).toEqual([
      { type: "DNS", value: "*.ns.svc" },
      { type: "DNS", value: "a,b.test" },
      { type: "IP_ADDRESS", value: "127.0.0.1" },
      { type: "IP_ADDRESS", value: "2001:db8::1" },
      { type: "URI", value: "spiffe://td/ns/x" },
      { type: "EMAIL", value: "me@x.test" },
    ]);
    expect(parseSubjectAltNames(undefined)).toEqual([]);
  });
});

describe("dnsNameMatches (Envoy's DNS rule for exact matchers)", () => {
  it.each([
    ["policy.test", "policy.test", true],
    ["Policy.TEST", "policy.test", true],
    ["a.svc.test", "*.svc.test", true],
    ["a.b.svc.test", "*.svc.test", false], // one label only
    ["svc.test", "*.svc.test", false],
    ["api-1.svc.test", "api-*.svc.test", true],
    ["api.svc.test", "api-*.svc.test", false],
    ["a.svc.test", "*.*.test", false], // the wildcard only in the left-most label
    ["xn--a.svc.test", "xn--*.svc.test", false], // never in an A-label
    ["test", "*", false], // at least two labels
  ])("%s against the certificate's %s → %s", (name, certName, expected) => {
    expect(dnsNameMatches(name, certName)).toBe(expected);
  });
});

describe("SubjectAltNameVerifier", () => {
  const peer = (subjectaltname: string): Parameters<SubjectAltNameVerifier["verify"]>[0] =>
    ({ subjectaltname }) as Parameters<SubjectAltNameVerifier["verify"]>[0];

  it("matches only names of the matcher's san_type", () => {
    const v = verifier("DNS", { exact: "127.0.0.1" });
    expect(v.verify(peer("IP Address:127.0.0.1"))).toBeDefined();
    expect(
      verifier("IP_ADDRESS", { exact: "::1" }).verify(peer("IP Address:0:0:0:0:0:0:0:1")),
    ).toBeUndefined();
  });

  it("prefix and suffix compare the name as written (a wildcard is not expanded)", () => {
    expect(verifier("DNS", { suffix: ".svc.test" }).verify(peer("DNS:*.svc.test"))).toBeUndefined();
    expect(verifier("DNS", { prefix: "ps-" }).verify(peer("DNS:*.svc.test"))).toBeDefined();
    expect(
      verifier("DNS", { prefix: "PS-", ignore_case: true }).verify(peer("DNS:ps-0.test")),
    ).toBeUndefined();
  });

  it("URI and EMAIL, and a certificate without names fails with the names it wanted", () => {
    expect(verifier("URI", { prefix: "spiffe://td/" }).verify(peer("URI:spiffe://td/ns/x"))).toBeUndefined();
    expect(verifier("EMAIL", { exact: "me@x.test" }).verify(peer("email:me@x.test"))).toBeUndefined();
    const err = verifier("DNS", { exact: "policy.test" }).verify(
      {} as Parameters<SubjectAltNameVerifier["verify"]>[0],
    );
    expect(err?.code).toBe("TETHER_ERR_TLS_SAN_MISMATCH");
    expect(err?.message).toBe(
      'verify cert failed: SAN matcher, certificate SANs are [], match_typed_subject_alt_names want one of [DNS exact "policy.test"]',
    );
  });
});
