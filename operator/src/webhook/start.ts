/**
 * The admission webhook as the operator runs it: the serving certificate issued by the operator's
 * CA (reissued on rotation and swapped into the server), the HTTPS server answering from the
 * controller caches, and the caBundle kept current in the MutatingWebhookConfiguration.
 */
import type { Logger } from "pino";
import type { WebhookConfig } from "../config.ts";
import type { InjectionResolution } from "../controllers/injection.ts";
import type { KubeTransport } from "../kube/client.ts";
import { CertificateAuthority, ServingCertificate, serviceDnsNames } from "../pki/index.ts";
import { CaBundlePublisher } from "./ca-bundle.ts";
import { WebhookServer, type WebhookServerOptions } from "./server.ts";

export interface WebhookRuntimeOptions {
  readonly config: WebhookConfig;
  readonly clusterDomain: string;
  /** The operator's CA Secret and namespace (used when `authority` is not given). */
  readonly caSecret: string;
  readonly operatorNamespace: string;
  readonly client: KubeTransport;
  readonly logger: Logger;
  readonly synced: () => boolean;
  readonly resolve: (namespace: string, agent: string) => InjectionResolution;
  readonly onReview?: WebhookServerOptions["onReview"];
  /** The operator's CA, when something else already runs it; otherwise one is started here. */
  readonly authority?: CertificateAuthority;
}

export interface WebhookRuntime {
  readonly port: number;
  /** host:port it listens on. */
  readonly address: string;
  readonly dnsNames: readonly string[];
  /** Checks the configuration's caBundle now (leadership gained: the new leader writes). */
  publishCaBundle(): void;
  stop(): Promise<void>;
}

export function webhookDnsNames(config: WebhookConfig, clusterDomain: string): string[] {
  const service =
    config.service === undefined
      ? []
      : serviceDnsNames(config.service.name, config.service.namespace, clusterDomain);
  return [...new Set([...service, ...config.extraDnsNames])];
}

export async function startWebhook(options: WebhookRuntimeOptions): Promise<WebhookRuntime> {
  const { config, logger } = options;
  const log = logger.child({ part: "webhook" });
  const ownAuthority = options.authority === undefined;
  const authority =
    options.authority ??
    new CertificateAuthority({
      client: options.client,
      namespace: options.operatorNamespace,
      secretName: options.caSecret,
      logger: log,
    });
  if (ownAuthority) await authority.start();
  const dnsNames = webhookDnsNames(config, options.clusterDomain);
  const serving = new ServingCertificate({ authority, dnsNames, logger: log });
  const identity = serving.start();
  const server = new WebhookServer({
    host: config.host,
    port: config.port,
    certificate: { cert: identity.certPem, key: identity.keyPem },
    logger: log,
    synced: options.synced,
    resolve: options.resolve,
    ...(options.onReview === undefined ? {} : { onReview: options.onReview }),
  });
  const port = await server.start();
  const publisher =
    config.configurationName === undefined
      ? undefined
      : new CaBundlePublisher({
          client: options.client,
          name: config.configurationName,
          bundle: () => serving.current.caBundlePem,
          logger: log,
        });
  serving.onRotate((next) => {
    server.setCertificate({ cert: next.certPem, key: next.keyPem });
    void publisher?.publish();
  });
  publisher?.start();
  return {
    port,
    address: `${config.host}:${port}`,
    dnsNames,
    publishCaBundle(): void {
      void publisher?.publish();
    },
    async stop(): Promise<void> {
      publisher?.stop();
      serving.stop();
      if (ownAuthority) authority.stop();
      await server.stop();
    },
  };
}
