/**
 * List-then-watch cache of one resource type (in one namespace or all). Restarts after any error
 * with back-off, relists when the server says the resourceVersion is gone (410), and runs a
 * watchdog: a watch that delivers nothing (not even a bookmark) for stallTimeoutMs is cut and
 * restarted, since a half-dead TCP connection can otherwise hang a watch forever.
 */
import type { Logger } from "pino";
import { Backoff, delay } from "./backoff.ts";
import type { KubeTransport } from "./client.ts";
import { KubeError } from "./errors.ts";
import { objectKey, resourcePath, type KubeObject, type ResourceType } from "./resources.ts";

export type InformerEventType = "ADDED" | "MODIFIED" | "DELETED";
export type InformerHandler = (
  type: InformerEventType,
  object: KubeObject,
  old: KubeObject | undefined,
) => void;

export interface InformerOptions {
  readonly resource: ResourceType;
  /** "" or undefined: all namespaces. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  /** Server-side only, e.g. `metadata.name=x` (RBAC can then grant list/watch by resourceNames). */
  readonly fieldSelector?: string;
  readonly client: KubeTransport;
  readonly logger: Logger;
  /** Server-side watch timeout; the server ends the watch cleanly after this. Default 300 s. */
  readonly watchTimeoutSeconds?: number;
  /** No bytes for this long → the watch is presumed dead. Default watchTimeoutSeconds + 60 s. */
  readonly stallTimeoutMs?: number;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Called on every restart after an error or a stall, with the reason. */
  readonly onRestart?: (reason: "error" | "stall" | "gone") => void;
  readonly pageSize?: number;
  /**
   * Cache only metadata (PartialObjectMetadata): enough to know which names exist and who controls
   * them, at a fraction of the memory of whole objects.
   */
  readonly metadataOnly?: boolean;
  /**
   * Applied to every object before it is cached or handed to handlers (after managedFields are
   * dropped): keep only what the controllers read. Must return the object unchanged in meaning for
   * them, and accept an object it already trimmed.
   */
  readonly transform?: (object: KubeObject) => KubeObject;
}

const METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
const METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

interface ListResponse {
  metadata: { resourceVersion: string; continue?: string };
  /** null in an empty PartialObjectMetadataList. */
  items: KubeObject[] | null;
}

interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject & { code?: number; message?: string };
}

class StallError extends Error {}

export class Informer {
  readonly resource: ResourceType;
  private readonly options: InformerOptions;
  private readonly cache = new Map<string, KubeObject>();
  private readonly handlers: InformerHandler[] = [];
  private readonly abort = new AbortController();
  private resourceVersion: string | undefined;
  private running: Promise<void> | undefined;
  private syncedFlag = false;
  private resolveSynced!: () => void;
  /** Resolves after the first complete list. */
  readonly synced: Promise<void>;
  private lastActivity = 0;

  constructor(options: InformerOptions) {
    this.options = options;
    this.resource = options.resource;
    this.synced = new Promise((resolve) => {
      this.resolveSynced = resolve;
    });
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  get hasSynced(): boolean {
    return this.syncedFlag;
  }

  on(handler: InformerHandler): void {
    this.handlers.push(handler);
  }

  get(namespace: string | undefined, name: string): KubeObject | undefined {
    return this.cache.get(objectKey(namespace, name));
  }

  list(namespace?: string): KubeObject[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  get size(): number {
    return this.cache.size;
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private emit(type: InformerEventType, object: KubeObject, old: KubeObject | undefined): void {
    for (const handler of this.handlers) {
      try {
        handler(type, object, old);
      } catch (error) {
        this.options.logger.error({ err: error, resource: this.resource.plural }, "informer handler failed");
      }
    }
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff(this.options.backoffInitialMs ?? 500, this.options.backoffMaxMs ?? 30_000);
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        if (this.resourceVersion === undefined) await this.relist();
        await this.watch();
        backoff.reset();
      } catch (error) {
        if (this.stopped) break;
        const reason = error instanceof StallError ? "stall" : isGone(error) ? "gone" : "error";
        this.options.onRestart?.(reason);
        if (reason === "gone") {
          this.resourceVersion = undefined;
          continue;
        }
        const wait = backoff.next();
        this.options.logger.warn(
          {
            resource: this.resource.plural,
            namespace: this.options.namespace,
            reason,
            retryInMs: wait,
            err: error,
          },
          "watch failed; restarting",
        );
        // Relist after a failure: events may have been missed while the stream was down.
        this.resourceVersion = undefined;
        await delay(wait, signal);
      }
    }
  }

  private async relist(): Promise<void> {
    const seen = new Map<string, KubeObject>();
    let continueToken: string | undefined;
    let rv: string;
    do {
      const page = await this.options.client.request<ListResponse>(
        "GET",
        resourcePath(this.resource, this.options.namespace),
        {
          query: {
            labelSelector: this.options.labelSelector,
            fieldSelector: this.options.fieldSelector,
            limit: this.options.pageSize ?? 500,
            continue: continueToken,
          },
          signal: this.abort.signal,
          ...(this.options.metadataOnly === true ? { accept: METADATA_LIST } : {}),
        },
      );
      for (const item of page.items ?? [])
        seen.set(objectKey(item.metadata.namespace, item.metadata.name), this.trim(item));
      continueToken = page.metadata.continue === "" ? undefined : page.metadata.continue;
      rv = page.metadata.resourceVersion;
    } while (continueToken !== undefined);
    for (const [key, old] of [...this.cache]) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit("DELETED", old, old);
      }
    }
    for (const [key, item] of seen) {
      const old = this.cache.get(key);
      this.cache.set(key, item);
      if (old === undefined) this.emit("ADDED", item, undefined);
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion)
        this.emit("MODIFIED", item, old);
    }
    this.resourceVersion = rv;
    if (!this.syncedFlag) {
      this.syncedFlag = true;
      this.resolveSynced();
    }
  }

  private async watch(): Promise<void> {
    const timeoutSeconds = this.options.watchTimeoutSeconds ?? 300;
    const stallMs = this.options.stallTimeoutMs ?? (timeoutSeconds + 60) * 1000;
    const watchAbort = new AbortController();
    const onStop = (): void => {
      watchAbort.abort();
    };
    this.abort.signal.addEventListener("abort", onStop, { once: true });
    // stop() may have run between the list and this watch: an aborted signal fires no listener.
    if (this.stopped) watchAbort.abort();
    const watchdogState = { stalled: false };
    this.lastActivity = Date.now();
    const watchdog = setInterval(
      () => {
        if (Date.now() - this.lastActivity > stallMs) {
          watchdogState.stalled = true;
          watchAbort.abort();
        }
      },
      Math.max(50, Math.min(5000, stallMs / 4)),
    );
    try {
      const body = await this.options.client.stream(resourcePath(this.resource, this.options.namespace), {
        query: {
          watch: true,
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
          labelSelector: this.options.labelSelector,
          fieldSelector: this.options.fieldSelector,
        },
        signal: watchAbort.signal,
        ...(this.options.metadataOnly === true ? { accept: METADATA } : {}),
      });
      await this.consume(body);
    } catch (error) {
      if (watchdogState.stalled)
        throw new StallError(`watch of ${this.resource.plural} stalled for ${stallMs}ms`);
      throw error;
    } finally {
      clearInterval(watchdog);
      this.abort.signal.removeEventListener("abort", onStop);
      watchAbort.abort();
    }
    if (watchdogState.stalled)
      throw new StallError(`watch of ${this.resource.plural} stalled for ${stallMs}ms`);
  }

  private async consume(body: AsyncIterable<Buffer>): Promise<void> {
    let pending = "";
    for await (const chunk of body) {
      this.lastActivity = Date.now();
      pending += chunk.toString("utf8");
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line !== "") this.apply(JSON.parse(line) as WatchEvent);
        newline = pending.indexOf("\n");
      }
    }
  }

  private trim(object: KubeObject): KubeObject {
    const slimmed = slim(object);
    return this.options.transform === undefined ? slimmed : this.options.transform(slimmed);
  }

  private apply(event: WatchEvent): void {
    if (event.type === "ERROR") {
      const status = event.object;
      const code = status.code ?? 0;
      throw new KubeError(
        code === 410 ? "TETHER_ERR_KUBE_GONE" : "TETHER_ERR_KUBE_API",
        `watch of ${this.resource.plural}: ${status.message ?? "error"}`,
        code,
      );
    }
    const object = this.trim(event.object);
    if (object.metadata.resourceVersion !== undefined) this.resourceVersion = object.metadata.resourceVersion;
    if (event.type === "BOOKMARK") return;
    const key = objectKey(object.metadata.namespace, object.metadata.name);
    const old = this.cache.get(key);
    if (event.type === "DELETED") {
      this.cache.delete(key);
      this.emit("DELETED", object, old);
      return;
    }
    this.cache.set(key, object);
    // Already known (written back by remember() after our own write): nothing new to tell.
    if (old?.metadata.resourceVersion === object.metadata.resourceVersion) return;
    this.emit(old === undefined ? "ADDED" : "MODIFIED", object, old);
  }

  /**
   * Puts an object the operator just wrote (the API server's answer) into the cache without an
   * event, so the next reconcile compares against it instead of a copy the watch has not yet
   * replaced. The watch event that follows carries the same resourceVersion and is then silent.
   */
  remember(object: KubeObject): void {
    if (this.options.labelSelector !== undefined && !matchesSelector(object, this.options.labelSelector))
      return;
    this.cache.set(objectKey(object.metadata.namespace, object.metadata.name), this.trim(object));
  }
}

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * The cache never needs managedFields, often the largest part of an object, nor kubectl's copy of
 * the whole object in an annotation: drop them.
 */
function slim<T extends { metadata?: { managedFields?: unknown; annotations?: Record<string, string> } }>(
  object: T,
): T {
  if (object.metadata?.managedFields !== undefined) delete object.metadata.managedFields;
  const annotations = object.metadata?.annotations;
  if (object.metadata !== undefined && annotations?.[LAST_APPLIED] !== undefined) {
    object.metadata.annotations = Object.fromEntries(
      Object.entries(annotations).filter(([key]) => key !== LAST_APPLIED),
    );
  }
  return object;
}

/** Equality-based selectors only (`a=b,c=d`), the form the operator uses. */
function matchesSelector(object: KubeObject, selector: string): boolean {
  const labels = object.metadata.labels ?? {};
  return selector.split(",").every((term) => {
    const [k, v] = term.split("=");
    return k !== undefined && labels[k.trim()] === v?.trim();
  });
}

function isGone(error: unknown): boolean {
  return error instanceof KubeError && error.status === 410;
}
