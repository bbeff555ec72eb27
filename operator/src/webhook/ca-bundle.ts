/**
 * Keeps the caBundle of one named MutatingWebhookConfiguration (the chart's) equal to the
 * operator's CA bundle: at start, whenever the CA changes, and every minute (a re-installed chart
 * or a hand edit is repaired), every few seconds while the configuration is missing or a write
 * failed. Only the leader writes; a standby's write is refused by the client's gate and skipped.
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
  /** Between checks while all is well. Default 60 s. */
  readonly intervalMs?: number;
  /** Between checks while the configuration is missing or the last check failed. Default 5 s. */
  readonly retryIntervalMs?: number;
}

/** written: the bundle was put in; current: it was there already; missing: no such configuration. */
export type PublishResult = "written" | "current" | "missing" | "failed";

interface WebhookConfiguration extends KubeObject {
  webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
}

export class CaBundlePublisher {
  private readonly options: CaBundlePublisherOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<PublishResult> | undefined;
  private again = false;
  private stopped = true;
  /** The last check found the configuration and wrote, or had nothing to write. */
  private settled = false;

  constructor(options: CaBundlePublisherOptions) {
    this.options = options;
  }

  start(): void {
    this.stopped = false;
    void this.publish().finally(() => {
      this.schedule();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.stopped) return;
    const wait = this.settled ? (this.options.intervalMs ?? 60_000) : (this.options.retryIntervalMs ?? 5_000);
    this.timer = setTimeout(() => {
      void this.publish().finally(() => {
        this.schedule();
      });
    }, wait);
    this.timer.unref();
  }

  /**
   * Writes the bundle into every webhook of the configuration that lacks it. Resolves with what it
   * found; never rejects (a failure is logged and retried within seconds).
   */
  publish(): Promise<PublishResult> {
    if (this.running !== undefined) {
      // A CA change during a run: run once more after it, with the new bundle.
      this.again = true;
      return this.running;
    }
    this.running = this.converge()
      .catch((error: unknown): PublishResult => {
        // A standby: the leader writes.
        if (error instanceof KubeError && error.code === "TETHER_ERR_NOT_LEADER") return "current";
        // Someone else changed it between our read and write: read it again at once.
        if (isConflict(error)) {
          this.again = true;
          return "failed";
        }
        this.options.logger.warn(
          { err: error, configuration: this.options.name },
          "could not publish the CA bundle to the webhook configuration; retrying",
        );
        return "failed";
      })
      .then((result) => {
        this.settled = result === "current" || result === "written";
        return result;
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

  private async converge(): Promise<PublishResult> {
    const { client, name, logger } = this.options;
    const bundle = this.options.bundle();
    if (bundle === undefined) return "failed";
    const caBundle = Buffer.from(bundle, "utf8").toString("base64");
    const path = resourcePath(MUTATING_WEBHOOK_CONFIGURATIONS, undefined, name);
    let current: WebhookConfiguration;
    try {
      current = await client.request<WebhookConfiguration>("GET", path);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      logger.debug({ configuration: name }, "webhook configuration not found (yet)");
      return "missing";
    }
    const stale = (current.webhooks ?? []).filter((w) => w.clientConfig?.caBundle !== caBundle);
    if (stale.length === 0) return "current";
    // Strategic merge: webhooks merge by name, so only caBundle changes, whoever owns the rest.
    await client.request("PATCH", path, {
      contentType: "application/strategic-merge-patch+json",
      body: {
        metadata: { resourceVersion: current.metadata.resourceVersion },
        webhooks: stale.map((w) => ({ name: w.name, clientConfig: { caBundle } })),
      },
    });
    logger.info({ configuration: name, webhooks: stale.map((w) => w.name) }, "webhook caBundle updated");
    return "written";
  }
}
