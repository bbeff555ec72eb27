/** One resource type over the watched namespaces: an informer per namespace, or one for all. */
import type { Logger } from "pino";
import type { KubeTransport } from "./client.ts";
import { Informer, type InformerHandler, type InformerOptions } from "./informer.ts";
import { objectKey, type KubeObject, type ResourceType } from "./resources.ts";

export interface StoreOptions {
  readonly resource: ResourceType;
  /** Empty: all namespaces. */
  readonly namespaces: readonly string[];
  readonly labelSelector?: string;
  readonly metadataOnly?: boolean;
  /** What of each object is cached (see InformerOptions.transform). */
  readonly transform?: (object: KubeObject) => KubeObject;
  readonly client: KubeTransport;
  readonly logger: Logger;
  readonly informer?: Partial<
    Omit<InformerOptions, "resource" | "namespace" | "client" | "logger" | "labelSelector">
  >;
}

export class Store {
  readonly resource: ResourceType;
  private readonly informers: Informer[];
  private readonly byNamespace = new Map<string, Informer>();

  constructor(options: StoreOptions) {
    this.resource = options.resource;
    const namespaces = options.namespaces.length === 0 ? [""] : options.namespaces;
    this.informers = namespaces.map((namespace) => {
      const informer = new Informer({
        ...options.informer,
        resource: options.resource,
        namespace,
        client: options.client,
        logger: options.logger,
        ...(options.labelSelector === undefined ? {} : { labelSelector: options.labelSelector }),
        ...(options.metadataOnly === true ? { metadataOnly: true } : {}),
        ...(options.transform === undefined ? {} : { transform: options.transform }),
      });
      this.byNamespace.set(namespace, informer);
      return informer;
    });
  }

  private informerFor(namespace: string | undefined): Informer | undefined {
    return this.byNamespace.get(namespace ?? "") ?? this.byNamespace.get("");
  }

  on(handler: InformerHandler): void {
    for (const informer of this.informers) informer.on(handler);
  }

  get(namespace: string, name: string): KubeObject | undefined {
    return this.informerFor(namespace)?.get(namespace, name);
  }

  list(namespace?: string): KubeObject[] {
    if (namespace === undefined) return this.informers.flatMap((i) => i.list());
    return this.informerFor(namespace)?.list(namespace) ?? [];
  }

  remember(object: KubeObject): void {
    this.informerFor(object.metadata.namespace)?.remember(object);
  }

  get hasSynced(): boolean {
    return this.informers.every((i) => i.hasSynced);
  }

  async synced(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.synced));
  }

  start(): void {
    for (const informer of this.informers) informer.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  get size(): number {
    return this.informers.reduce((n, i) => n + i.size, 0);
  }
}

export { objectKey };
