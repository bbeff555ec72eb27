import { X509Certificate } from "node:crypto";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { planCa, DEFAULT_CA_POLICY, type CaState } from "./ca-state.ts";
import { ServingCertificate, serviceDnsNames, type ServingIdentity } from "./serving.ts";

const log = pino({ level: "silent" });

/** A CA held in memory whose state the test changes, as a CertificateAuthority would. */
class FixedAuthority {
  current: CaState;
  private readonly listeners: ((s: CaState) => void)[] = [];
  constructor(state: CaState) {
    this.current = state;
  }
  onChange(listener: (s: CaState) => void): () => void {
    this.listeners.push(listener);
    return () => undefined;
  }
  set(state: CaState): void {
    this.current = state;
    for (const l of this.listeners) l(state);
  }
}

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

function newCa(now = Date.now()): CaState {
  return planCa(undefined, now, { ...DEFAULT_CA_POLICY, backdateMs: 0 }).state;
}

describe("ServingCertificate", () => {
  it("names the Service four ways", () => {
    expect(serviceDnsNames("tether-xds", "tether-system", "cluster.local")).toEqual([
      "tether-xds",
      "tether-xds.tether-system",
      "tether-xds.tether-system.svc",
      "tether-xds.tether-system.svc.cluster.local",
    ]);
  });

  it("reissues at 2/3 of its lifetime, from the current signer", async () => {
    const authority = new FixedAuthority(newCa());
    const serving = new ServingCertificate({
      authority,
      dnsNames: ["a.b.svc"],
      logger: log,
      lifetimeMs: 300,
      backdateMs: 0,
    });
    stops.push(() => {
      serving.stop();
    });
    const first = serving.start();
    const started = Date.now();
    const next = await new Promise<ServingIdentity>((resolve) => {
      serving.onRotate(resolve);
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150); // not before 2/3 of 300 ms (timer slack)
    expect(next.certPem).not.toBe(first.certPem);
    expect(next.keyPem).not.toBe(first.keyPem); // a fresh key each time
  });

  it("reissues at once when the signer changes; a bundle-only change keeps the certificate", () => {
    const ca = newCa();
    const authority = new FixedAuthority(ca);
    const serving = new ServingCertificate({ authority, dnsNames: ["a.b.svc"], logger: log });
    stops.push(() => {
      serving.stop();
    });
    const first = serving.start();
    const seen: ServingIdentity[] = [];
    serving.onRotate((i) => seen.push(i));
    const successor = newCa();
    authority.set({ ...ca, bundle: successor.signer.certPem + ca.bundle });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.certPem).toBe(first.certPem);
    expect(seen[0]?.caBundlePem).toBe(successor.signer.certPem + ca.bundle);
    authority.set({ signer: successor.signer, bundle: successor.signer.certPem + ca.bundle });
    expect(seen).toHaveLength(2);
    const issued = new X509Certificate(seen[1]?.certPem ?? "");
    expect(issued.checkIssued(new X509Certificate(successor.signer.certPem))).toBe(true);
  });

  it("never outlives its CA", () => {
    const now = Date.now();
    const ca = planCa(undefined, now, {
      ...DEFAULT_CA_POLICY,
      backdateMs: 0,
      caLifetimeMs: 10 * 86_400_000,
    }).state;
    const serving = new ServingCertificate({
      authority: new FixedAuthority(ca),
      dnsNames: ["a"],
      logger: log,
    });
    stops.push(() => {
      serving.stop();
    });
    const identity = serving.start();
    expect(identity.notAfter.getTime()).toBeLessThanOrEqual(now + 10 * 86_400_000);
  });
});
