import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DEFAULT_CA_POLICY, planCa, type CaState } from "./ca-state.ts";
import { splitPem } from "./x509.ts";

const DAY = 86_400_000;
const t0 = Date.UTC(2026, 0, 1);
const policy = { ...DEFAULT_CA_POLICY, backdateMs: 0 };

function subjects(state: CaState): string[] {
  return splitPem(state.bundle).map((c) => c.serialNumber);
}
const serial = (pem: string): string => new X509Certificate(pem).serialNumber;

describe("planCa", () => {
  it("creates a one-year CA when there is none, and leaves it alone until 2/3 of its life", () => {
    const created = planCa(undefined, t0, policy);
    expect(created.change).toBe("created the CA");
    const cert = new X509Certificate(created.state.signer.certPem);
    expect(new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()).toBe(365 * DAY);
    expect(planCa(created.state, t0 + 243 * DAY, policy).change).toBeUndefined();
  });

  it("publishes a successor beside the signer, promotes it a day later, drops the old CA at expiry", () => {
    const first = planCa(undefined, t0, policy).state;
    const published = planCa(first, t0 + 244 * DAY, policy);
    expect(published.change).toContain("published the next CA");
    const next = published.state.next;
    expect(next).toBeDefined();
    // The old CA still signs; the bundle trusts both (newest first).
    expect(published.state.signer).toBe(first.signer);
    expect(subjects(published.state)).toEqual([serial(next?.certPem ?? ""), serial(first.signer.certPem)]);
    expect(planCa(published.state, t0 + 244.5 * DAY, policy).change).toBeUndefined();

    const promoted = planCa(published.state, t0 + 245 * DAY, policy);
    expect(promoted.change).toBe("the next CA signs from now on");
    expect(promoted.state.signer).toBe(next);
    expect(promoted.state.next).toBeUndefined();
    expect(promoted.state.bundle).toBe(published.state.bundle); // still both

    const expired = planCa(promoted.state, t0 + 365 * DAY, policy);
    expect(expired.change).toBe("updated the bundle");
    expect(subjects(expired.state)).toEqual([serial(next?.certPem ?? "")]);
  });

  it("replaces an expired signer at once (an operator that was away all year)", () => {
    const first = planCa(undefined, t0, policy).state;
    const late = planCa(first, t0 + 400 * DAY, policy);
    expect(late.change).toContain("replaced the expired CA");
    expect(serial(late.state.signer.certPem)).not.toBe(serial(first.signer.certPem));
    expect(subjects(late.state)).toEqual([serial(late.state.signer.certPem)]);
  });
});
