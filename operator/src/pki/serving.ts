/**
 * A serving certificate issued in memory by this replica (its key never leaves the process): for
 * the DNS names given, valid 30 days, reissued at 2/3 of its life or as soon as the CA's signer
 * changes; listeners hear of each new one (to swap a TLS server's context).
 */
import { X509Certificate } from "node:crypto";
import type { Logger } from "pino";
import type { CertificateAuthority } from "./authority.ts";
import type { CaState } from "./ca-state.ts";
import { issueServing } from "./x509.ts";

const DAY = 86_400_000;
/** setTimeout's limit (about 24.8 days); a longer wait is taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ServingIdentity {
  /** The serving certificate (PEM). */
  readonly certPem: string;
  /** Its private key (PKCS#8 PEM), only ever in this process. */
  readonly keyPem: string;
  /** Every CA a client should trust now (PEM). */
  readonly caBundlePem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface ServingCertificateOptions {
  readonly authority: CertificateAuthority;
  readonly dnsNames: readonly string[];
  readonly logger: Logger;
  /** Default 30 days (never past the signing CA's own expiry). */
  readonly lifetimeMs?: number;
  /** Reissue when this fraction of the lifetime has passed. Default 2/3. */
  readonly renewAt?: number;
  /** notBefore is set this far back, for clients whose clocks lag. Default 5 minutes. */
  readonly backdateMs?: number;
  readonly now?: () => number;
}

/** The names a Service answers to in cluster DNS, shortest first. */
export function serviceDnsNames(service: string, namespace: string, clusterDomain: string): string[] {
  return [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.${clusterDomain}`,
  ];
}

export class ServingCertificate {
  private readonly options: ServingCertificateOptions;
  private readonly now: () => number;
  private readonly listeners: ((identity: ServingIdentity) => void)[] = [];
  private identity: ServingIdentity | undefined;
  private signer: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(options: ServingCertificateOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Issues the first certificate from the loaded CA and follows the CA from then on. */
  start(): ServingIdentity {
    const identity = this.issue(this.options.authority.current);
    this.unsubscribe = this.options.authority.onChange((state) => {
      // A new bundle alone (a successor published, an old CA dropped) is news for clients too.
      if (state.signer.certPem !== this.signer) this.issue(state);
      else this.replaceBundle(state.bundle);
    });
    return identity;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
  }

  get current(): ServingIdentity {
    if (this.identity === undefined) throw new Error("no serving certificate yet (call start)");
    return this.identity;
  }

  /** Called with every reissued certificate (not the first, which start() returns). */
  onRotate(listener: (identity: ServingIdentity) => void): void {
    this.listeners.push(listener);
  }

  /** Issues a new certificate now from the current signer (also what the renewal timer does). */
  reissue(): ServingIdentity {
    return this.issue(this.options.authority.current);
  }

  private issue(ca: CaState): ServingIdentity {
    const now = this.now();
    const caNotAfter = new Date(new X509Certificate(ca.signer.certPem).validTo).getTime();
    const notBefore = new Date(now - (this.options.backdateMs ?? 5 * 60_000));
    const notAfter = new Date(Math.min(now + (this.options.lifetimeMs ?? 30 * DAY), caNotAfter));
    const issued = issueServing(ca.signer, this.options.dnsNames, { notBefore, notAfter });
    this.signer = ca.signer.certPem;
    this.publish({ ...issued, caBundlePem: ca.bundle, notBefore, notAfter });
    this.options.logger.info(
      { dnsNames: this.options.dnsNames, notAfter: notAfter.toISOString() },
      "serving certificate issued",
    );
    this.scheduleRenewal();
    return this.current;
  }

  private replaceBundle(bundle: string): void {
    if (this.identity === undefined || this.identity.caBundlePem === bundle) return;
    this.publish({ ...this.identity, caBundlePem: bundle });
  }

  private publish(identity: ServingIdentity): void {
    const first = this.identity === undefined;
    this.identity = identity;
    if (first) return;
    for (const listener of this.listeners) {
      try {
        listener(identity);
      } catch (err) {
        this.options.logger.error({ err }, "serving certificate listener threw");
      }
    }
  }

  private scheduleRenewal(): void {
    clearTimeout(this.timer);
    const { notBefore, notAfter } = this.current;
    const renewAt =
      notBefore.getTime() + (this.options.renewAt ?? 2 / 3) * (notAfter.getTime() - notBefore.getTime());
    const wait = Math.max(0, renewAt - this.now());
    this.timer = setTimeout(
      () => {
        if (this.now() >= renewAt) this.issue(this.options.authority.current);
        else this.scheduleRenewal();
      },
      Math.min(wait, MAX_TIMER_MS),
    );
    this.timer.unref();
  }
}
