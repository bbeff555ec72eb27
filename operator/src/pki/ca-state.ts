/**
 * The CA's life as a pure function of what the Secret holds and the time: create when missing,
 * publish a successor at 2/3 of the signer's life, let it sign once the bundle holding it has had
 * time to reach every pod, and drop each CA from the bundle when it expires.
 */
import { X509Certificate } from "node:crypto";
import { createCa, splitPem, type CertifiedKey } from "./x509.ts";

const DAY = 86_400_000;

export interface CaPolicy {
  /** Lifetime of each CA certificate. Default 365 days. */
  readonly caLifetimeMs: number;
  /** The successor is published when this fraction of the signer's life has passed. Default 2/3. */
  readonly rotateAt: number;
  /**
   * How long the successor sits in the bundle before it signs: longer than the kubelet takes to
   * refresh a mounted ConfigMap (about a minute) plus one reconcile. Default 1 day.
   */
  readonly promoteAfterMs: number;
  /** notBefore is set this far in the past, for clocks slightly behind ours. Default 5 minutes. */
  readonly backdateMs: number;
  /** The CA's subject common name. */
  readonly commonName: string;
}

export const DEFAULT_CA_POLICY: CaPolicy = {
  caLifetimeMs: 365 * DAY,
  rotateAt: 2 / 3,
  promoteAfterMs: DAY,
  backdateMs: 5 * 60_000,
  commonName: "tether-operator CA",
};

/** What the CA Secret holds, parsed. */
export interface CaState {
  /** The CA that signs serving certificates now. */
  readonly signer: CertifiedKey;
  /** A published successor that does not sign yet. */
  readonly next?: CertifiedKey | undefined;
  /** Every CA clients should trust (PEM, concatenated): the signer, the successor, older unexpired ones. */
  readonly bundle: string;
}

export interface CaPlan {
  readonly state: CaState;
  /** Why the Secret must be written; undefined when it is already right. */
  readonly change: string | undefined;
}

function validity(cert: CertifiedKey): { from: number; to: number } {
  const x = new X509Certificate(cert.certPem);
  return { from: new Date(x.validFrom).getTime(), to: new Date(x.validTo).getTime() };
}

function mint(policy: CaPolicy, now: number): CertifiedKey {
  return createCa(policy.commonName, {
    notBefore: new Date(now - policy.backdateMs),
    notAfter: new Date(now + policy.caLifetimeMs),
  });
}

/** The bundle: newest first, each certificate once, expired ones left out. */
function bundleOf(certs: readonly X509Certificate[], now: number): string {
  const live = new Map<string, X509Certificate>();
  for (const c of certs) if (new Date(c.validTo).getTime() > now) live.set(c.fingerprint256, c);
  return [...live.values()]
    .sort((a, b) => new Date(b.validFrom).getTime() - new Date(a.validFrom).getTime())
    .map((c) => c.toString())
    .join("");
}

/** The state the Secret should hold at `now`, from what it holds (undefined: no Secret yet). */
export function planCa(current: CaState | undefined, now: number, policy: CaPolicy): CaPlan {
  if (current === undefined) {
    const signer = mint(policy, now);
    return { state: { signer, bundle: signer.certPem }, change: "created the CA" };
  }
  let { signer, next } = current;
  const trusted = [...splitPem(current.bundle), new X509Certificate(signer.certPem)];
  if (next !== undefined) trusted.push(new X509Certificate(next.certPem));
  const changes: string[] = [];
  const life = validity(signer);
  if (life.to <= now) {
    // Nobody renewed it in time (the operator was down): start over at once.
    signer = next !== undefined && validity(next).to > now ? next : mint(policy, now);
    next = undefined;
    trusted.push(new X509Certificate(signer.certPem));
    changes.push("replaced the expired CA");
  } else if (next === undefined && now >= life.from + policy.rotateAt * (life.to - life.from)) {
    next = mint(policy, now);
    trusted.push(new X509Certificate(next.certPem));
    changes.push("published the next CA");
  } else if (next !== undefined && now >= validity(next).from + policy.backdateMs + policy.promoteAfterMs) {
    signer = next;
    next = undefined;
    changes.push("the next CA signs from now on");
  }
  const bundle = bundleOf(trusted, now);
  if (bundle !== current.bundle) changes.push("updated the bundle");
  return {
    state: { signer, next, bundle },
    change: changes.length === 0 ? undefined : changes.join("; "),
  };
}
