/**
 * xDS serving certificate from a `kubernetes.io/tls` Secret someone else issues (cert-manager's
 * Certificate, with `--xds-tls-secret`): `tls.crt`/`tls.key` are served, `ca.crt` is the bundle the
 * sidecars trust. The Secret is watched by name; a renewal is swapped in like a reissue of the
 * operator's own certificate. A Secret that is missing or unusable is logged with its name and the
 * reason, and the certificate served so far is kept.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { Logger } from "pino";
import type { KubeTransport } from "../kube/client.ts";
import { Informer } from "../kube/informer.ts";
import type { KubeObject } from "../kube/resources.ts";
import type { ServingIdentity } from "./serving.ts";
import { splitPem } from "./x509.ts";

const SECRETS = { group: "", version: "v1", plural: "secrets", kind: "Secret" } as const;

/** The keys cert-manager writes (ca.crt only for CA and self-signed issuers). */
export const TLS_SECRET_KEYS = { cert: "tls.crt", key: "tls.key", ca: "ca.crt" } as const;

export interface TlsSecretCertificateOptions {
  readonly client: KubeTransport;
  /** The operator's own namespace. */
  readonly namespace: string;
  readonly secretName: string;
  /** The name sidecars verify (the Service's full DNS name): tls.crt must carry it. */
  readonly verifyName: string;
  readonly logger: Logger;
  readonly watchTimeoutSeconds?: number;
  readonly now?: () => number;
}

/** A usable identity, or why the Secret is not one (the message names the key at fault). */
export type TlsSecretResult =
  { readonly ok: true; readonly identity: ServingIdentity } | { readonly ok: false; readonly error: string };

/** Checks what a Secret holds: a certificate for `verifyName`, its own key, a CA bundle; pure. */
export function parseTlsSecret(
  secret: { readonly data?: Readonly<Record<string, string>> } | undefined,
  verifyName: string,
  now: number,
): TlsSecretResult {
  const field = (key: string): string | undefined => {
    const b64 = secret?.data?.[key];
    return b64 === undefined || b64 === "" ? undefined : Buffer.from(b64, "base64").toString("utf8");
  };
  const certPem = field(TLS_SECRET_KEYS.cert);
  const keyPem = field(TLS_SECRET_KEYS.key);
  const caPem = field(TLS_SECRET_KEYS.ca);
  for (const [key, value] of [
    [TLS_SECRET_KEYS.cert, certPem],
    [TLS_SECRET_KEYS.key, keyPem],
    [TLS_SECRET_KEYS.ca, caPem],
  ] as const) {
    if (value === undefined) {
      const hint =
        key === TLS_SECRET_KEYS.ca ? " (cert-manager writes it for CA and self-signed issuers)" : "";
      return { ok: false, error: `has no ${key}${hint}` };
    }
  }
  let leaf: X509Certificate;
  let cas: X509Certificate[];
  try {
    leaf = new X509Certificate(certPem ?? "");
  } catch {
    return { ok: false, error: `${TLS_SECRET_KEYS.cert} is not a PEM certificate` };
  }
  try {
    cas = splitPem(caPem ?? "");
  } catch {
    return { ok: false, error: `${TLS_SECRET_KEYS.ca} is not PEM certificates` };
  }
  if (cas.length === 0) return { ok: false, error: `${TLS_SECRET_KEYS.ca} holds no certificate` };
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(keyPem ?? ""));
  } catch {
    return { ok: false, error: `${TLS_SECRET_KEYS.key} is not a PEM private key` };
  }
  if (!matches) return { ok: false, error: `${TLS_SECRET_KEYS.key} does not match ${TLS_SECRET_KEYS.cert}` };
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now)
    return { ok: false, error: `${TLS_SECRET_KEYS.cert} expired at ${notAfter.toISOString()}` };
  if (leaf.checkHost(verifyName, { subject: "never" }) === undefined) {
    return {
      ok: false,
      error: `${TLS_SECRET_KEYS.cert} does not name ${verifyName} (${leaf.subjectAltName ?? "no subjectAltName"})`,
    };
  }
  return {
    ok: true,
    identity: {
      certPem: certPem ?? "",
      keyPem: keyPem ?? "",
      caBundlePem: cas.map((c) => c.toString()).join(""),
      notBefore,
      notAfter,
    },
  };
}

export class TlsSecretCertificate {
  private readonly options: TlsSecretCertificateOptions;
  private readonly now: () => number;
  private readonly informer: Informer;
  private readonly rotateListeners: ((identity: ServingIdentity) => void)[] = [];
  private readonly bundleListeners: ((bundle: string) => void)[] = [];
  private identity: ServingIdentity | undefined;
  private firstIdentity: ((identity: ServingIdentity) => void) | undefined;
  /** The last problem logged, so a Secret re-sent unchanged is not logged again. */
  private lastError: string | undefined;

  constructor(options: TlsSecretCertificateOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.informer = new Informer({
      resource: SECRETS,
      namespace: options.namespace,
      // By name: the Role grants get/list/watch on this one Secret only (resourceNames).
      fieldSelector: `metadata.name=${options.secretName}`,
      client: options.client,
      logger: options.logger,
      ...(options.watchTimeoutSeconds === undefined
        ? {}
        : { watchTimeoutSeconds: options.watchTimeoutSeconds }),
    });
    this.informer.on((type, object) => {
      if (type === "DELETED") this.refuse("was deleted");
      else this.load(object);
    });
  }

  /** `namespace/name`, for logs and errors. */
  get secretRef(): string {
    return `${this.options.namespace}/${this.options.secretName}`;
  }

  /** Starts the watch; resolves with the first usable certificate (logging each reason it is not yet). */
  async start(): Promise<ServingIdentity> {
    const first = new Promise<ServingIdentity>((resolve) => {
      this.firstIdentity = resolve;
    });
    this.informer.start();
    await this.informer.synced;
    if (this.informer.get(this.options.namespace, this.options.secretName) === undefined)
      this.refuse("does not exist (yet: has cert-manager issued the Certificate?)");
    return this.identity ?? first;
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  get current(): ServingIdentity {
    if (this.identity === undefined) throw new Error(`no certificate from Secret ${this.secretRef} yet`);
    return this.identity;
  }

  /** The CA bundle sidecars should trust (the Secret's ca.crt). */
  bundle(): string {
    return this.current.caBundlePem;
  }

  /** Called with each new certificate after the first (a renewal). */
  onRotate(listener: (identity: ServingIdentity) => void): void {
    this.rotateListeners.push(listener);
  }

  /** Called when ca.crt changes. */
  onBundleChange(listener: (bundle: string) => void): void {
    this.bundleListeners.push(listener);
  }

  private load(secret: KubeObject): void {
    const result = parseTlsSecret(
      secret as { data?: Record<string, string> },
      this.options.verifyName,
      this.now(),
    );
    if (!result.ok) {
      this.refuse(result.error);
      return;
    }
    this.lastError = undefined;
    const previous = this.identity;
    const next = result.identity;
    if (
      previous?.certPem === next.certPem &&
      previous.keyPem === next.keyPem &&
      previous.caBundlePem === next.caBundlePem
    )
      return;
    this.identity = next;
    this.options.logger.info(
      { secret: this.secretRef, notAfter: next.notAfter.toISOString() },
      "serving certificate loaded from Secret",
    );
    if (previous === undefined) {
      this.firstIdentity?.(next);
      return;
    }
    this.notify(this.rotateListeners, next);
    if (previous.caBundlePem !== next.caBundlePem) this.notify(this.bundleListeners, next.caBundlePem);
  }

  private refuse(reason: string): void {
    if (reason === this.lastError) return;
    this.lastError = reason;
    const kept = this.identity === undefined ? "xDS waits for it" : "keeping the current certificate";
    this.options.logger.error(
      { secret: this.secretRef, reason },
      `xDS TLS Secret ${this.secretRef} ${reason}; ${kept}`,
    );
  }

  private notify<T>(listeners: readonly ((value: T) => void)[], value: T): void {
    for (const listener of listeners) {
      try {
        listener(value);
      } catch (err) {
        this.options.logger.error({ err }, "TLS Secret listener threw");
      }
    }
  }
}
