/**
 * Wires the caches to the work queue: every event becomes the keys of the resources it affects
 * (its owner, the Agents using a PolicyServerCluster, the Agent of a ProxyRoute, ...), and each key
 * is reconciled level-based from the caches. Only the leader runs the queue.
 */
import type { Logger } from "pino";
import { GROUP } from "../api/index.ts";
import type { KubeTransport } from "../kube/client.ts";
import { EventRecorder } from "../kube/events.ts";
import type { InformerEventType } from "../kube/informer.ts";
import { WorkQueue } from "../kube/queue.ts";
import { RESOURCES, type KubeObject } from "../kube/resources.ts";
import { Store, type StoreOptions } from "../kube/store.ts";
import { WORKQUEUE_NAME, type OperatorMetrics } from "../metrics.ts";
import { MANAGED_BY, XDS_CA_CONFIGMAP, type RenderOptions } from "../render/index.ts";
import { reconcileAgent } from "./agent.ts";
import { controllerOf } from "./children.ts";
import { reconcileBroker } from "./broker.ts";
import { resolveInjection, type InjectionResolution } from "./injection.ts";
import { parseQueueKey, queueKey, type ControllerContext, type Stores, type TetherKind } from "./context.ts";
import { reconcilePolicyServerCluster } from "./policy-server-cluster.ts";
import { reconcileProxyRoute } from "./proxy-route.ts";
import { trimConfigMap, trimDeployment, trimMetadata } from "./trim.ts";
import { XdsController } from "./xds.ts";
import { hasXdsCaUsers } from "./xds-ca.ts";
import type { SnapshotServer } from "../xds/contract.ts";

/** The labels of the work queue's controller-runtime series. */
const WORKQUEUE = { name: WORKQUEUE_NAME, controller: WORKQUEUE_NAME };

export interface ManagerOptions {
  readonly client: KubeTransport;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  readonly namespaces: readonly string[];
  readonly render: RenderOptions;
  readonly concurrency: number;
  /** Every key is reconciled again this often (level-based safety net); 0 = never. */
  readonly resyncPeriodMs: number;
  readonly informer?: StoreOptions["informer"];
  readonly now?: () => Date;
  /** The ADS server to feed snapshots to (every replica, leader or not); unset: no xDS. */
  readonly xds?: SnapshotServer;
  /** The xDS CA bundle to publish as tether-xds-ca in each namespace with Agents or Brokers. */
  readonly xdsCa?: { bundle(): string };
}

/** The label naming an EndpointSlice's Service. */
const SERVICE_NAME = "kubernetes.io/service-name";
const OWNED_SELECTOR = `app.kubernetes.io/managed-by=${MANAGED_BY}`;

export class ControllerManager {
  readonly stores: Stores;
  readonly queue: WorkQueue;
  private readonly ctx: ControllerContext;
  private readonly options: ManagerOptions;
  readonly xds: XdsController | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** This replica runs the queue (the leader, or leader election off). */
  private leading = false;

  constructor(options: ManagerOptions) {
    this.options = options;
    const { client, logger, metrics } = options;
    const store = (
      resource: StoreOptions["resource"],
      labelSelector?: string,
      metadataOnly = false,
      transform?: StoreOptions["transform"],
    ): Store =>
      new Store({
        resource,
        namespaces: options.namespaces,
        client,
        logger,
        metadataOnly,
        ...(transform === undefined ? {} : { transform }),
        ...(labelSelector === undefined ? {} : { labelSelector }),
        informer: {
          ...options.informer,
          onRestart: (reason) => {
            const label = metadataOnly ? `${resource.plural}(metadata)` : resource.plural;
            metrics.watchRestarts.inc({ resource: label, reason });
          },
        },
      });
    this.stores = {
      policyServerClusters: store(RESOURCES.policyServerClusters),
      agents: store(RESOURCES.agents),
      brokers: store(RESOURCES.brokers),
      proxyRoutes: store(RESOURCES.proxyRoutes),
      // Children are cached trimmed (trim.ts): at a thousand Agents their templates and configs
      // would otherwise be most of the operator's memory.
      deployments: store(RESOURCES.deployments, OWNED_SELECTOR, false, trimDeployment),
      services: store(RESOURCES.services),
      configMaps: store(RESOURCES.configMaps, OWNED_SELECTOR, false, trimConfigMap),
      deploymentNames: store(RESOURCES.deployments, undefined, true, trimMetadata),
      configMapNames: store(RESOURCES.configMaps, undefined, true, trimMetadata),
      endpointSlices: store(RESOURCES.endpointSlices),
    };
    const base: ControllerContext = {
      client,
      stores: this.stores,
      events: new EventRecorder(client, logger),
      render: options.render,
      logger,
      now: options.now ?? ((): Date => new Date()),
      ...(options.xdsCa === undefined ? {} : { xdsCa: options.xdsCa }),
    };
    this.xds =
      options.xds === undefined
        ? undefined
        : new XdsController(base, {
            server: options.xds,
            logger,
            metrics,
            onRejectionChange: (kind, namespace, name) => {
              this.queue.add(queueKey(kind, namespace, name));
              if (!this.leading) this.reportStandbyVerdict(kind, namespace, name);
            },
          });
    this.ctx = this.xds === undefined ? base : { ...base, xds: this.xds };
    this.queue = new WorkQueue({
      concurrency: options.concurrency,
      handler: (key) => this.reconcile(key),
      onError: (key, error, retryInMs) => {
        logger.warn({ key, err: error, retryInMs }, "reconcile failed; retrying");
        this.recordFailure(key, error);
      },
      onDepthChange: (depth) => {
        metrics.queueDepth.set(depth);
        metrics.runtime.depth.set(WORKQUEUE, depth);
      },
      onAdd: () => {
        metrics.runtime.adds.inc(WORKQUEUE);
      },
      onStart: (_key, queuedMs) => {
        metrics.runtime.queueDuration.observe(WORKQUEUE, queuedMs / 1000);
      },
      onDone: (_key, workMs) => {
        metrics.runtime.workDuration.observe(WORKQUEUE, workMs / 1000);
      },
      onRetry: () => {
        metrics.runtime.retries.inc(WORKQUEUE);
      },
    });
    this.wire();
    // Every series exists from the start (at 0), so dashboards and alerts see them before the first event.
    for (const kind of ["PolicyServerCluster", "Agent", "Broker", "ProxyRoute"]) {
      for (const result of ["success", "error"]) metrics.reconciles.inc({ kind, result }, 0);
    }
    const watched = [
      ...Object.values(RESOURCES)
        .filter((r) => r.kind !== "Event" && r.kind !== "Lease")
        .map((r) => r.plural),
      "deployments(metadata)",
      "configmaps(metadata)",
    ];
    for (const resource of watched) {
      for (const reason of ["error", "stall", "gone"]) metrics.watchRestarts.inc({ resource, reason }, 0);
    }
  }

  private all(): Store[] {
    return Object.values(this.stores) as Store[];
  }

  get hasSynced(): boolean {
    return this.all().every((s) => s.hasSynced);
  }

  start(): void {
    for (const s of this.all()) s.start();
    // Snapshots only from complete caches: a half-listed cache would push missing endpoints.
    const xds = this.xds;
    if (xds !== undefined)
      void this.synced().then(() => {
        xds.start();
      });
    if (this.options.resyncPeriodMs > 0) {
      this.resyncTimer = setInterval(() => {
        this.enqueueAll();
      }, this.options.resyncPeriodMs);
    }
  }

  async synced(): Promise<void> {
    await Promise.all(this.all().map((s) => s.synced()));
  }

  /** Leadership gained: run the queue over everything once caches are complete. */
  async startReconciling(): Promise<void> {
    this.leading = true;
    await this.synced();
    this.enqueueAll();
    this.options.logger.info({ queued: this.queue.depth }, "reconciling");
    this.queue.resume();
  }

  stopReconciling(): void {
    this.leading = false;
    this.queue.pause();
  }

  /**
   * A sidecar connected to this standby replica NACKed (or then ACKed) its config. Only the leader
   * writes status, so the verdict would wait for a leader change; the Event shows it now, from any
   * replica, the same Event the leader records with the ConfigRejected condition.
   */
  private reportStandbyVerdict(kind: TetherKind, namespace: string, name: string): void {
    const object = this.storeOf(kind).get(namespace, name);
    const verdict = this.xds?.configRejected(kind === "Broker" ? "broker" : "agent", namespace, name);
    if (object === undefined || verdict === undefined) return;
    const type = verdict.status === "True" ? "Warning" : "Normal";
    const message = verdict.status === "True" ? verdict.message : `${verdict.type}: ${verdict.message}`;
    void this.ctx.events.record(object, type, verdict.reason, message, true);
  }

  async stop(): Promise<void> {
    if (this.resyncTimer !== undefined) clearInterval(this.resyncTimer);
    this.xds?.stop();
    await this.queue.stop();
    await Promise.all(this.all().map((s) => s.stop()));
  }

  /** What the admission webhook injects for a pod naming `agent` (from the caches; any replica). */
  injection(namespace: string, agent: string): InjectionResolution {
    return resolveInjection(this.ctx, namespace, agent);
  }

  enqueueAll(): void {
    const kinds: [TetherKind, Store][] = [
      ["PolicyServerCluster", this.stores.policyServerClusters],
      ["Agent", this.stores.agents],
      ["Broker", this.stores.brokers],
      ["ProxyRoute", this.stores.proxyRoutes],
    ];
    for (const [kind, s] of kinds) for (const o of s.list()) this.add(kind, o);
    // A tether-xds-ca left in a namespace with no Agent or Broker (they went while no leader ran):
    // the reconcile of an Agent that does not exist is what deletes it (pruneXdsCaBundle).
    for (const cm of this.stores.configMaps.list()) {
      const ns = cm.metadata.namespace ?? "";
      if (cm.metadata.name === XDS_CA_CONFIGMAP && !hasXdsCaUsers(this.ctx, ns))
        this.queue.add(queueKey("Agent", ns, XDS_CA_CONFIGMAP));
    }
  }

  private storeOf(kind: TetherKind): Store {
    if (kind === "PolicyServerCluster") return this.stores.policyServerClusters;
    if (kind === "Agent") return this.stores.agents;
    if (kind === "Broker") return this.stores.brokers;
    return this.stores.proxyRoutes;
  }

  /** A Warning Event on the resource (deduplicated by the recorder) for a failed reconcile. */
  private recordFailure(key: string, error: unknown): void {
    const { kind, namespace, name } = parseQueueKey(key);
    const object = this.storeOf(kind).get(namespace, name);
    if (object === undefined) return;
    const message = error instanceof Error ? error.message : String(error);
    void this.ctx.events.record(object, "Warning", "ReconcileFailed", `${message} (retrying)`);
  }

  private add(kind: TetherKind, object: KubeObject, name = object.metadata.name): void {
    this.queue.add(queueKey(kind, object.metadata.namespace ?? "", name));
  }

  private async reconcile(key: string): Promise<undefined> {
    const { kind, namespace, name } = parseQueueKey(key);
    const end = this.options.metrics.reconcileDuration.startTimer({ kind });
    const runtime = this.options.metrics.runtime;
    const controller = kind.toLowerCase();
    const endRuntime = runtime.reconcileTime.startTimer({ controller });
    try {
      if (kind === "Agent") await reconcileAgent(this.ctx, namespace, name);
      else if (kind === "PolicyServerCluster") await reconcilePolicyServerCluster(this.ctx, namespace, name);
      else if (kind === "Broker") await reconcileBroker(this.ctx, namespace, name);
      else await reconcileProxyRoute(this.ctx, namespace, name);
      this.options.metrics.reconciles.inc({ kind, result: "success" });
      runtime.reconcileTotal.inc({ controller, result: "success" });
    } catch (error) {
      this.options.metrics.reconciles.inc({ kind, result: "error" });
      runtime.reconcileTotal.inc({ controller, result: "error" });
      runtime.reconcileErrors.inc({ controller });
      throw error;
    } finally {
      end();
      endRuntime();
    }
    return undefined;
  }

  /**
   * What each event can change in the snapshots: an Agent's or Broker's spec its own group; a
   * ProxyRoute its Agent's; a slice or a Service's ports the endpoints of the groups using that
   * Service; a PolicyServerCluster its Agents'. Status-only updates change nothing rendered. The
   * rare events that can change any group (a Service appearing or going) rebuild the namespace.
   */
  private wireXds(): void {
    const xds = this.xds;
    if (xds === undefined) return;
    const s = this.stores;
    s.agents.on((type, o, old) => {
      if (specChanged(type, o, old)) xds.markGroup(o.metadata.namespace ?? "", "agent", o.metadata.name);
    });
    s.brokers.on((type, o, old) => {
      if (specChanged(type, o, old)) xds.markGroup(o.metadata.namespace ?? "", "broker", o.metadata.name);
    });
    s.proxyRoutes.on((type, o, old) => {
      if (!specChanged(type, o, old)) return;
      const ns = o.metadata.namespace ?? "";
      for (const agent of new Set([
        refName(o, "agentRef"),
        old === undefined ? undefined : refName(old, "agentRef"),
      ]))
        if (agent !== undefined) xds.markGroup(ns, "agent", agent);
    });
    s.policyServerClusters.on((type, o, old) => {
      if (!specChanged(type, o, old)) return;
      const ns = o.metadata.namespace ?? "";
      for (const agent of s.agents.list(ns))
        if (refName(agent, "policyServerClusterRef") === o.metadata.name)
          xds.markGroup(ns, "agent", agent.metadata.name);
    });
    s.services.on((type, o) => {
      if (type === "MODIFIED") xds.markService(o.metadata.namespace ?? "", o.metadata.name);
      else xds.markNamespace(o.metadata.namespace ?? "");
    });
    s.endpointSlices.on((_type, o, old) => {
      const ns = o.metadata.namespace ?? "";
      for (const service of new Set([
        o.metadata.labels?.[SERVICE_NAME],
        old?.metadata.labels?.[SERVICE_NAME],
      ]))
        if (service !== undefined) xds.markService(ns, service);
    });
  }

  private wire(): void {
    const s = this.stores;
    this.wireXds();
    s.policyServerClusters.on((type, o, old) => {
      if (!specChanged(type, o, old)) return;
      this.add("PolicyServerCluster", o);
      for (const agent of s.agents.list(o.metadata.namespace)) {
        if (refName(agent, "policyServerClusterRef") === o.metadata.name) this.add("Agent", agent);
      }
    });
    s.agents.on((type, o, old) => {
      if (!specChanged(type, o, old)) return;
      this.add("Agent", o);
      // Routes report whether their Agent exists and which ports it holds.
      for (const route of s.proxyRoutes.list(o.metadata.namespace)) {
        if (refName(route, "agentRef") === o.metadata.name) this.add("ProxyRoute", route);
      }
    });
    s.proxyRoutes.on((type, o, old) => {
      if (!specChanged(type, o, old)) return;
      const agents = new Set([
        refName(o, "agentRef"),
        old === undefined ? undefined : refName(old, "agentRef"),
      ]);
      for (const agent of agents) {
        if (agent === undefined) continue;
        this.add("Agent", o, agent);
        // Sibling routes: a deleted or changed route may end or start a conflict.
        for (const route of s.proxyRoutes.list(o.metadata.namespace)) {
          if (refName(route, "agentRef") === agent) this.add("ProxyRoute", route);
        }
      }
      this.add("ProxyRoute", o);
    });
    s.brokers.on((type, o, old) => {
      if (specChanged(type, o, old)) this.add("Broker", o);
    });
    const toOwner = (_type: InformerEventType, o: KubeObject): void => {
      const ref = o.metadata.ownerReferences?.find(
        (r) => r.controller === true && r.apiVersion.startsWith(`${GROUP}/`),
      );
      if (ref !== undefined) this.add(ref.kind as TetherKind, o, ref.name);
    };
    s.deployments.on(toOwner);
    s.configMaps.on(toOwner);
    // tether-xds-ca deleted (the last Agent went, or by hand) while the namespace still has Agents or
    // Brokers: they apply it again at once, rather than at the next resync.
    s.configMaps.on((type, o) => {
      if (type !== "DELETED" || o.metadata.name !== XDS_CA_CONFIGMAP) return;
      const ns = o.metadata.namespace;
      for (const agent of s.agents.list(ns)) this.add("Agent", agent);
      for (const broker of s.brokers.list(ns)) this.add("Broker", broker);
    });
    // A name taken by someone else may be freed: the resources that want it try again at once.
    const wanters = (
      type: InformerEventType,
      o: KubeObject,
      old: KubeObject | undefined,
      kinds: TetherKind[],
      base: string,
    ): void => {
      if (type === "ADDED") return;
      if (type === "MODIFIED" && old !== undefined && controllerOf(o) === controllerOf(old)) return;
      const ns = o.metadata.namespace ?? "";
      for (const kind of kinds)
        if (this.storeOf(kind).get(ns, base) !== undefined) this.queue.add(queueKey(kind, ns, base));
    };
    s.deploymentNames.on((type, o, old) => {
      wanters(type, o, old, ["Agent", "PolicyServerCluster", "Broker"], o.metadata.name);
    });
    s.configMapNames.on((type, o, old) => {
      const name = o.metadata.name;
      if (name.endsWith("-sidecar"))
        wanters(type, o, old, ["Agent", "Broker"], name.slice(0, -"-sidecar".length));
      if (name.endsWith("-agent-config"))
        wanters(type, o, old, ["Agent"], name.slice(0, -"-agent-config".length));
    });
    s.services.on((type, o, old) => {
      toOwner(type, o);
      wanters(type, o, old, ["PolicyServerCluster", "Broker"], o.metadata.name);
      if (type === "MODIFIED") return; // only existence matters to references
      const ns = o.metadata.namespace;
      for (const route of s.proxyRoutes.list(ns)) {
        if (backendServiceName(route, "backend") === o.metadata.name) {
          this.add("ProxyRoute", route);
          const agent = refName(route, "agentRef");
          if (agent !== undefined) this.add("Agent", route, agent);
        }
      }
      for (const broker of s.brokers.list(ns)) {
        if (backendServiceName(broker, "backends") === o.metadata.name) this.add("Broker", broker);
      }
    });
  }
}

/** Status-only updates (our own writes, mostly) change nothing a reconcile reads. */
function specChanged(type: InformerEventType, o: KubeObject, old: KubeObject | undefined): boolean {
  if (type !== "MODIFIED" || old === undefined) return true;
  return (
    o.metadata.generation !== old.metadata.generation ||
    o.metadata.deletionTimestamp !== old.metadata.deletionTimestamp
  );
}

function refName(o: KubeObject, field: string): string | undefined {
  const spec = o["spec"] as Record<string, { name?: string } | undefined> | undefined;
  return spec?.[field]?.name;
}

function backendServiceName(o: KubeObject, field: string): string | undefined {
  const spec = o["spec"] as Record<string, { serviceRef?: { name?: string } } | undefined> | undefined;
  return spec?.[field]?.serviceRef?.name;
}
