/**
 * The operator's CA, kept in a Secret in its own namespace. Every replica runs one: it reads the
 * Secret, creates it when missing (two replicas racing: one create wins, the other re-reads on 409),
 * and writes the next state when planCa says so (an update with the read resourceVersion; on 409 it
 * re-reads and plans again). The CA's key leaves the Secret only into this process's memory.
 */
import type { Logger } from "pino";
import type { KubeTransport } from "../kube/client.ts";
import { isConflict, isNotFound } from "../kube/errors.ts";
import { resourcePath, type KubeObject } from "../kube/resources.ts";
import { DEFAULT_CA_POLICY, planCa, type CaPlan, type CaPolicy, type CaState } from "./ca-state.ts";

const SECRETS = { group: "", version: "v1", plural: "secrets", kind: "Secret" } as const;

/** The Secret's keys: kubernetes.io/tls's pair (the signing CA) and cert-manager's ca.crt bundle. */
export const CA_SECRET_KEYS = {
  cert: "tls.crt",
  key: "tls.key",
  bundle: "ca.crt",
  nextCert: "next.crt",
  nextKey: "next.key",
} as const;

export interface CertificateAuthorityOptions {
  readonly client: KubeTransport;
  /** The operator's own namespace. */
  readonly namespace: string;
  readonly secretName: string;
  readonly logger: Logger;
  readonly policy?: Partial<CaPolicy>;
  /** Milliseconds since the epoch; Date.now by default. */
  readonly now?: () => number;
  /** How often the Secret is read again (rotation, another replica's change). Default 10 minutes. */
  readonly checkIntervalMs?: number;
}

interface SecretObject extends KubeObject {
  type?: string;
  data?: Record<string, string>;
}

const MAX_ATTEMPTS = 5;

function decode(secret: SecretObject): CaState | undefined {
  const field = (key: string): string | undefined => {
    const b64 = secret.data?.[key];
    return b64 === undefined ? undefined : Buffer.from(b64, "base64").toString("utf8");
  };
  const cert = field(CA_SECRET_KEYS.cert);
  const key = field(CA_SECRET_KEYS.key);
  if (cert === undefined || key === undefined) return undefined;
  const nextCert = field(CA_SECRET_KEYS.nextCert);
  const nextKey = field(CA_SECRET_KEYS.nextKey);
  return {
    signer: { certPem: cert, keyPem: key },
    next:
      nextCert === undefined || nextKey === undefined ? undefined : { certPem: nextCert, keyPem: nextKey },
    bundle: field(CA_SECRET_KEYS.bundle) ?? cert,
  };
}

function encode(state: CaState): Record<string, string> {
  const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
  const data: Record<string, string> = {
    [CA_SECRET_KEYS.cert]: b64(state.signer.certPem),
    [CA_SECRET_KEYS.key]: b64(state.signer.keyPem),
    [CA_SECRET_KEYS.bundle]: b64(state.bundle),
  };
  if (state.next !== undefined) {
    data[CA_SECRET_KEYS.nextCert] = b64(state.next.certPem);
    data[CA_SECRET_KEYS.nextKey] = b64(state.next.keyPem);
  }
  return data;
}

function sameState(a: CaState | undefined, b: CaState): boolean {
  return a?.signer.certPem === b.signer.certPem && a.bundle === b.bundle;
}

export class CertificateAuthority {
  private readonly options: CertificateAuthorityOptions;
  private readonly policy: CaPolicy;
  private readonly now: () => number;
  private readonly listeners: ((state: CaState) => void)[] = [];
  private state: CaState | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<CaState> | undefined;

  constructor(options: CertificateAuthorityOptions) {
    this.options = options;
    this.policy = { ...DEFAULT_CA_POLICY, ...options.policy };
    this.now = options.now ?? Date.now;
  }

  /** The CA state last read or written; throws before the first ensure(). */
  get current(): CaState {
    if (this.state === undefined) throw new Error("the CA is not loaded yet (call ensure or start)");
    return this.state;
  }

  /** PEM of every CA a client should trust now. */
  bundle(): string {
    return this.current.bundle;
  }

  /** Called after the signer or the bundle changed (here or, seen at a re-read, in another replica). */
  onChange(listener: (state: CaState) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Loads the CA (creating or rotating it as due), then re-checks every checkIntervalMs. */
  async start(): Promise<CaState> {
    const state = await this.ensure();
    this.schedule();
    return state;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Reads the Secret and converges it; one run at a time. */
  ensure(): Promise<CaState> {
    this.running ??= this.converge().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.ensure()
        .catch((err: unknown) => {
          this.options.logger.warn({ err }, "could not check the CA Secret; will retry");
        })
        .finally(() => {
          if (this.timer !== undefined) this.schedule();
        });
    }, this.options.checkIntervalMs ?? 600_000);
    this.timer.unref();
  }

  private async converge(): Promise<CaState> {
    const { client, namespace, secretName, logger } = this.options;
    const path = resourcePath(SECRETS, namespace);
    for (let attempt = 1; ; attempt++) {
      const existing = await this.read();
      const current = existing === undefined ? undefined : decode(existing);
      const plan = this.plan(current);
      if (plan.change === undefined) return this.adopt(plan.state);
      const body: SecretObject = {
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name: secretName,
          namespace,
          labels: { "app.kubernetes.io/managed-by": "tether-operator", "app.kubernetes.io/component": "ca" },
          ...(existing?.metadata.resourceVersion === undefined
            ? {}
            : { resourceVersion: existing.metadata.resourceVersion }),
        },
        type: "kubernetes.io/tls",
        data: encode(plan.state),
      };
      try {
        // Every replica keeps its CA whether or not it leads, so these writes skip the leader gate.
        if (existing === undefined) await client.request("POST", path, { body }, true);
        else await client.request("PUT", `${path}/${encodeURIComponent(secretName)}`, { body }, true);
        logger.info({ secret: `${namespace}/${secretName}`, change: plan.change }, "CA Secret written");
        return this.adopt(plan.state);
      } catch (err) {
        // 409: another replica created or changed it first; read theirs and plan again.
        if (!isConflict(err) || attempt >= MAX_ATTEMPTS) throw err;
      }
    }
  }

  /** A Secret whose certificates do not parse is replaced by a new CA, loudly. */
  private plan(current: CaState | undefined): CaPlan {
    try {
      return planCa(current, this.now(), this.policy);
    } catch (err) {
      this.options.logger.warn(
        { err, secret: `${this.options.namespace}/${this.options.secretName}` },
        "the CA Secret does not hold a usable CA; replacing it",
      );
      return planCa(undefined, this.now(), this.policy);
    }
  }

  private async read(): Promise<SecretObject | undefined> {
    const { client, namespace, secretName } = this.options;
    try {
      return await client.request<SecretObject>("GET", resourcePath(SECRETS, namespace, secretName));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private adopt(state: CaState): CaState {
    const changed = !sameState(this.state, state);
    this.state = state;
    if (changed) {
      for (const listener of this.listeners) {
        try {
          listener(state);
        } catch (err) {
          this.options.logger.error({ err }, "CA change listener threw");
        }
      }
    }
    return state;
  }
}
