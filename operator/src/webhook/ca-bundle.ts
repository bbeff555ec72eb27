/**
 * Keeps the caBundle of one named MutatingWebhookConfiguration (the chart's) equal to the
 * operator's CA bundle: at start, whenever the CA changes, and every minute (a re-installed chart
 * or a hand edit is repaired). Only the leader writes; a standby's write is refused by the client's
 * gate and skipped.
 */
import type { Logger } from "pino";
import type { KubeTransport } from "../kube/client.ts";
import { isConflict, isNotFound, KubeError } from "../kube/errors.ts";
import { resourcePath, type KubeObject } from "../kube/resources.ts";

const MUTATING_WEBHOOK_CONFIGURATIONS = {
  group: "admissionregistration.k8s.io",
  version: "v1",
  plural: "mutatingwebhookconfigurations",
  kind: "MutatingWebhookConfiguration",
} as const;

export interface CaBundlePublisherOptions {
  readonly client: KubeTransport;
  /** The MutatingWebhookConfiguration's name. */
  readonly name: string;
  /** PEM of every CA the API server should trust now; undefined: not known yet. */
  readonly bundle: () => string | undefined;
  readonly logger: Logger;
  /** Default 60 s. */
  readonly intervalMs?: number;
}

interface WebhookConfiguration extends KubeObject {
  webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
}

export class CaBundlePublisher {
  private readonly options: CaBundlePublisherOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private again = false;

  constructor(options: CaBundlePublisherOptions) {
    this.options = options;
  }

  start(): void {
    void this.publish();
    this.timer = setInterval(() => {
      void this.publish();
    }, this.options.intervalMs ?? 60_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Writes the bundle into every webhook of the configuration that lacks it. Resolves true when a
   * write was made; never rejects (logged, retried on the next tick).
   */
  publish(): Promise<boolean> {
    if (this.running !== undefined) {
      // A CA change during a run: run once more after it, with the new bundle.
      this.again = true;
      return this.running;
    }
    this.running = this.converge()
      .catch((error: unknown) => {
        if (error instanceof KubeError && error.code === "TETHER_ERR_NOT_LEADER") return false;
        // Someone else changed it between our read and write: read it again at once.
        if (isConflict(error)) {
          this.again = true;
          return false;
        }
        this.options.logger.warn(
          { err: error, configuration: this.options.name },
          "could not publish the CA bundle to the webhook configuration; retrying",
        );
        return false;
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          void this.publish();
        }
      });
    return this.running;
  }

  private async converge(): Promise<boolean> {
    const { client, name, logger } = this.options;
    const bundle = this.options.bundle();
    if (bundle === undefined) return false;
    const caBundle = Buffer.from(bundle, "utf8").toString("base64");
    const path = resourcePath(MUTATING_WEBHOOK_CONFIGURATIONS, undefined, name);
    let current: WebhookConfiguration;
    try {
      current = await client.request<WebhookConfiguration>("GET", path);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      logger.debug({ configuration: name }, "webhook configuration not found (yet)");
      return false;
    }
    const stale = (current.webhooks ?? []).filter((w) => w.clientConfig?.caBundle !== caBundle);
    if (stale.length === 0) return false;
    // Strategic merge: webhooks merge by name, so only caBundle changes, whoever owns the rest.
    await client.request("PATCH", path, {
      contentType: "application/strategic-merge-patch+json",
      body: {
        metadata: { resourceVersion: current.metadata.resourceVersion },
        webhooks: stale.map((w) => ({ name: w.name, clientConfig: { caBundle } })),
      },
    });
    logger.info({ configuration: name, webhooks: stale.map((w) => w.name) }, "webhook caBundle updated");
    return true;
  }
}
