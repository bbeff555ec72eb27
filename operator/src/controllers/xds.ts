/**
 * The operator as an xDS control plane: from the informer caches, one snapshot per Agent and Broker
 * (ADS node.cluster `<ns>/<kind>/<name>`) rendered by the same functions as the bootstrap ConfigMap,
 * with in-cluster backends as EDS clusters fed by EndpointSlices. Every replica runs this from its
 * own caches (no writes), so any replica can serve any sidecar; NACKs and ACKs are remembered here
 * and reach status through the (leader's) reconcile of the owning resource.
 */
import type { Logger } from "pino";
import type { KubeObject } from "../kube/resources.ts";
import type { BootstrapInput, ClusterInput, ClusterLoadAssignmentInput, ListenerInput } from "@tether/envoy";
import type { OperatorMetrics } from "../metrics.ts";
import {
  agentEdsServices,
  bootstrapInput,
  brokerEdsServices,
  clusterLoadAssignment,
  dynamicListenersAndClusters,
  renderAgentBootstrap,
  renderBrokerBootstrap,
  SERVICE_NAME_LABEL,
  stableHash,
  xdsGroup,
  type EdsService,
  type EndpointSliceLike,
  type ServicePortLike,
  type XdsKind,
} from "../render/index.ts";
import type { ConditionUpdate } from "./conditions.ts";
import type { ControllerContext, TetherKind } from "./context.ts";
import { ownerMeta, parseAgent, parseBroker } from "./parse.ts";
import { acceptedRoutes, agentPolicyServers, verdictsFor } from "./route-verdicts.ts";
import type {
  AckEvent,
  NackEvent,
  ResourceJson,
  ResourceType,
  Snapshot,
  SnapshotServer,
} from "../xds/contract.ts";

export const CONFIG_REJECTED = "ConfigRejected";
const RESOURCE_TYPES: readonly ResourceType[] = ["cluster", "endpoint", "listener", "route"];

export interface XdsControllerOptions {
  readonly server: SnapshotServer;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  /** A NACK or a clearing ACK changed what the owner's ConfigRejected condition should say. */
  readonly onRejectionChange: (kind: TetherKind, namespace: string, name: string) => void;
}

interface Rejection {
  readonly type: ResourceType;
  /** The snapshot version this node rejected. */
  readonly version: string;
  readonly message: string;
}

interface GroupState {
  readonly version: string;
  readonly typeHashes: Record<ResourceType, string>;
  /** The EDS services the snapshot's endpoints come from (to rebuild only EDS on a slice change). */
  readonly eds: readonly EdsService[];
}

/** A Service's load assignment, computed once per flush and shared by every group using it. */
interface ServiceEndpoints {
  readonly assignment: ClusterLoadAssignmentInput;
  readonly hash: string;
}

/** Where a group's snapshot is rebuilt from: everything, or only its endpoints (a slice changed). */
type Rebuild = "full" | "endpoints";

/** The dynamic resources of one sidecar group, from its bootstrap and the EndpointSlices. */
export function buildSnapshot(
  bootstrap: BootstrapInput,
  eds: readonly EdsService[],
  endpointsOf: (service: EdsService) => ClusterLoadAssignmentInput,
): Snapshot {
  const resources = dynamicResources(bootstrap, eds, endpointsOf);
  return { version: snapshotVersion(typeHashesOf(resources)), resources };
}

function dynamicResources(
  bootstrap: BootstrapInput,
  eds: readonly EdsService[],
  endpointsOf: (service: EdsService) => ClusterLoadAssignmentInput,
): Snapshot["resources"] {
  const { listeners, clusters } = dynamicListenersAndClusters(bootstrap, eds);
  return {
    cluster: new Map<string, ClusterInput>(clusters.map((c) => [c.name, c])),
    endpoint: new Map<string, ClusterLoadAssignmentInput>(
      eds.map((s) => endpointsOf(s)).map((a) => [a.cluster_name, a]),
    ),
    listener: new Map<string, ListenerInput>(listeners.map((l) => [l.name, l])),
    route: new Map<string, ResourceJson>(),
  };
}

function typeHashesOf(resources: Snapshot["resources"]): Record<ResourceType, string> {
  return Object.fromEntries(
    RESOURCE_TYPES.map((t) => [t, stableHash([...resources[t].entries()])]),
  ) as Record<ResourceType, string>;
}

function snapshotVersion(typeHashes: Record<ResourceType, string>): string {
  return stableHash(RESOURCE_TYPES.map((t) => typeHashes[t]));
}

const serviceKey = (namespace: string, service: string): string => `${namespace}/${service}`;

export class XdsController {
  private readonly ctx: ControllerContext;
  private readonly options: XdsControllerOptions;
  private readonly groups = new Map<string, GroupState>();
  /** group → node id → its standing rejection. */
  private readonly rejections = new Map<string, Map<string, Rejection>>();
  /** group → the ConfigRejected condition once known (undefined: keep what status says). */
  private readonly verdicts = new Map<string, ConditionUpdate>();
  /** Namespaces whose every group is rebuilt (and groups of deleted owners removed). */
  private readonly dirty = new Set<string>();
  /** Groups to rebuild, and how much of them. */
  private readonly dirtyGroups = new Map<string, Rebuild>();
  /** `namespace/service` → the groups whose EDS clusters take endpoints from it. */
  private readonly serviceUsers = new Map<string, Set<string>>();
  /** Per flush: endpoints by `namespace/service:port`, and slices by namespace and service. */
  private flushEndpoints = new Map<string, ServiceEndpoints>();
  private flushSlices = new Map<string, Map<string, EndpointSliceLike[]>>();
  private scheduled: NodeJS.Immediate | undefined;
  /** Open ADS streams per group, as counted at the start of the current flush. */
  private streamCounts = new Map<string, number>();
  private ready = false;

  constructor(ctx: ControllerContext, options: XdsControllerOptions) {
    this.ctx = ctx;
    this.options = options;
    options.server.onNack((e) => {
      this.nack(e);
    });
    options.server.onAck((e) => {
      this.ack(e);
    });
  }

  /** Caches are complete: from now on snapshots reflect the cluster (never a half-listed one). */
  start(): void {
    this.ready = true;
    this.markAll();
  }

  stop(): void {
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.ready = false;
  }

  /** Something in `namespace` changed: its groups are rebuilt on the next turn of the event loop. */
  markNamespace(namespace: string): void {
    this.dirty.add(namespace);
    this.schedule();
  }

  /** The Agent's or Broker's own inputs changed (its spec, its routes): rebuild its group. */
  markGroup(namespace: string, kind: XdsKind, name: string): void {
    this.dirtyGroups.set(xdsGroup(namespace, kind, name), "full");
    this.schedule();
  }

  /** A Service's endpoints (its slices or ports) changed: rebuild the endpoints of the groups using it. */
  markService(namespace: string, service: string): void {
    const users = this.serviceUsers.get(serviceKey(namespace, service));
    if (users === undefined) return;
    for (const group of users) if (!this.dirtyGroups.has(group)) this.dirtyGroups.set(group, "endpoints");
    this.schedule();
  }

  markAll(): void {
    const s = this.ctx.stores;
    for (const o of [...s.agents.list(), ...s.brokers.list()]) this.dirty.add(o.metadata.namespace ?? "");
    for (const group of this.groups.keys()) this.dirty.add(group.split("/")[0] ?? "");
    this.schedule();
  }

  /** The ConfigRejected condition of an Agent or Broker, or undefined when nothing is known. */
  configRejected(kind: XdsKind, namespace: string, name: string): ConditionUpdate | undefined {
    return this.verdicts.get(xdsGroup(namespace, kind, name));
  }

  private schedule(): void {
    if (!this.ready || this.scheduled !== undefined) return;
    // Coalesce a burst of watch events (a rollout touches many slices) into one rebuild.
    this.scheduled = setImmediate(() => {
      this.scheduled = undefined;
      this.flush();
    });
  }

  private flush(): void {
    const namespaces = [...this.dirty];
    this.dirty.clear();
    const groups = [...this.dirtyGroups];
    this.dirtyGroups.clear();
    this.flushEndpoints = new Map();
    this.flushSlices = new Map();
    // Open streams per group, counted once per flush (not once per group: that was quadratic).
    this.streamCounts = new Map();
    for (const st of this.options.server.streams()) {
      this.streamCounts.set(st.group, (this.streamCounts.get(st.group) ?? 0) + 1);
    }
    const done = new Set<string>();
    for (const ns of namespaces) {
      try {
        for (const group of this.rebuildNamespace(ns)) done.add(group);
      } catch (error) {
        this.options.logger.error({ err: error, namespace: ns }, "could not build xDS snapshots");
      }
    }
    for (const [group, rebuild] of groups) {
      if (done.has(group)) continue;
      try {
        this.rebuildGroup(group, rebuild);
      } catch (error) {
        this.options.logger.error({ err: error, group }, "could not build the xDS snapshot");
      }
    }
    this.flushEndpoints = new Map();
    this.flushSlices = new Map();
  }

  /** Rebuilds every group of the namespace and drops those whose owner is gone; returns the groups. */
  private rebuildNamespace(namespace: string): Set<string> {
    const s = this.ctx.stores;
    const wanted = new Set<string>();
    for (const agent of s.agents.list(namespace)) {
      const group = xdsGroup(namespace, "agent", agent.metadata.name);
      wanted.add(group);
      const built = this.agentSnapshot(agent);
      if (built !== undefined) this.publish(group, built.resources, built.eds);
    }
    for (const broker of s.brokers.list(namespace)) {
      const group = xdsGroup(namespace, "broker", broker.metadata.name);
      wanted.add(group);
      const built = this.brokerSnapshot(broker);
      if (built !== undefined) this.publish(group, built.resources, built.eds);
    }
    for (const group of [...this.groups.keys()]) {
      if (group.startsWith(`${namespace}/`) && !wanted.has(group)) this.remove(group);
    }
    return wanted;
  }

  private rebuildGroup(group: string, rebuild: Rebuild): void {
    const [namespace = "", kind, name = ""] = group.split("/");
    const previous = this.groups.get(group);
    if (rebuild === "endpoints" && previous !== undefined) {
      // Only EDS can differ: its hash comes from the shared per-Service hashes, the rest is kept.
      const { cluster, listener, route } = previous.typeHashes;
      const typeHashes = { cluster, listener, route, endpoint: this.endpointHash(previous.eds) };
      if (typeHashes.endpoint === previous.typeHashes.endpoint) return;
      const endpoint = new Map(previous.eds.map((svc) => [svc.cluster, this.endpoints(svc).assignment]));
      this.publish(group, { endpoint }, previous.eds, typeHashes);
      return;
    }
    const store = kind === "broker" ? this.ctx.stores.brokers : this.ctx.stores.agents;
    const object = store.get(namespace, name);
    if (object === undefined) {
      if (previous !== undefined) this.remove(group);
      return;
    }
    const built = kind === "broker" ? this.brokerSnapshot(object) : this.agentSnapshot(object);
    if (built !== undefined) this.publish(group, built.resources, built.eds);
  }

  private remove(group: string): void {
    const state = this.groups.get(group);
    for (const svc of state?.eds ?? [])
      this.serviceUsers.get(serviceKey(svc.namespace, svc.service))?.delete(group);
    this.groups.delete(group);
    this.rejections.delete(group);
    this.verdicts.delete(group);
    this.options.server.removeSnapshot(group);
  }

  /** Undefined while the Agent is invalid or its PolicyServerCluster unresolved: the last snapshot stays. */
  private agentSnapshot(
    object: KubeObject,
  ): { resources: Snapshot["resources"]; eds: EdsService[] } | undefined {
    if (object.metadata.deletionTimestamp !== undefined) return undefined;
    const parsed = parseAgent(object);
    // Opted out of xDS: its sidecars never subscribe, so there is nothing to build.
    if (!parsed.ok || !parsed.spec.sidecar.xds.enabled) return undefined;
    const namespace = object.metadata.namespace ?? "";
    const psc = agentPolicyServers(this.ctx, namespace, parsed.spec);
    if (psc === undefined) return undefined;
    const input = bootstrapInput({
      owner: ownerMeta("Agent", object),
      spec: parsed.spec,
      policyServers: { name: parsed.spec.policyServerClusterRef.name, spec: psc },
      routes: acceptedRoutes(verdictsFor(this.ctx, namespace, object.metadata.name)),
      options: this.ctx.render,
    });
    const eds = agentEdsServices(input);
    return { resources: this.resourcesOf(renderAgentBootstrap(input), eds), eds };
  }

  private brokerSnapshot(
    object: KubeObject,
  ): { resources: Snapshot["resources"]; eds: EdsService[] } | undefined {
    if (object.metadata.deletionTimestamp !== undefined) return undefined;
    const parsed = parseBroker(object);
    if (!parsed.ok || !parsed.spec.sidecar.xds.enabled) return undefined;
    const input = { owner: ownerMeta("Broker", object), spec: parsed.spec, options: this.ctx.render };
    const eds = brokerEdsServices(input);
    return { resources: this.resourcesOf(renderBrokerBootstrap(input), eds), eds };
  }

  /** The group's resources; publish versions them (from per-type hashes). */
  private resourcesOf(bootstrap: BootstrapInput, eds: readonly EdsService[]): Snapshot["resources"] {
    return dynamicResources(bootstrap, eds, (svc) => this.endpoints(svc).assignment);
  }

  /** The Service's endpoints under the cluster's name; the load assignment is computed once per flush. */
  private endpoints(svc: EdsService): ServiceEndpoints {
    const key = `${serviceKey(svc.namespace, svc.service)}:${String(svc.port)}`;
    let shared = this.flushEndpoints.get(key);
    if (shared === undefined) {
      const service = this.ctx.stores.services.get(svc.namespace, svc.service);
      const ports = (service?.["spec"] as { ports?: ServicePortLike[] } | undefined)?.ports ?? [];
      const assignment = clusterLoadAssignment(
        "",
        ports.find((p) => p.port === svc.port),
        this.slicesOf(svc.namespace, svc.service),
      );
      shared = { assignment, hash: stableHash(assignment) };
      this.flushEndpoints.set(key, shared);
    }
    return { assignment: { ...shared.assignment, cluster_name: svc.cluster }, hash: shared.hash };
  }

  private slicesOf(namespace: string, service: string): EndpointSliceLike[] {
    let byService = this.flushSlices.get(namespace);
    if (byService === undefined) {
      byService = new Map();
      for (const o of this.ctx.stores.endpointSlices.list(namespace)) {
        const name = o.metadata.labels?.[SERVICE_NAME_LABEL];
        if (name === undefined) continue;
        const list = byService.get(name) ?? [];
        list.push(o as unknown as EndpointSliceLike);
        byService.set(name, list);
      }
      this.flushSlices.set(namespace, byService);
    }
    return byService.get(service) ?? [];
  }

  private endpointHash(eds: readonly EdsService[]): string {
    return stableHash(eds.map((svc) => [svc.cluster, this.endpoints(svc).hash]));
  }

  /**
   * Publishes the group's snapshot: the server gets only the types whose hash changed (with `known`
   * hashes, `resources` need hold only those). The rendered objects are not kept here: the server
   * keeps their encoding, and an unchanged type is never re-encoded.
   */
  private publish(
    group: string,
    resources: Partial<Snapshot["resources"]>,
    eds: readonly EdsService[],
    known?: Record<ResourceType, string>,
  ): void {
    const previous = this.groups.get(group);
    const hashOf = (type: ResourceType): string =>
      stableHash([...(resources[type] ?? new Map<string, ResourceJson>()).entries()]);
    const typeHashes = known ?? {
      cluster: hashOf("cluster"),
      listener: hashOf("listener"),
      route: hashOf("route"),
      endpoint: this.endpointHash(eds),
    };
    const version = snapshotVersion(typeHashes);
    if (previous?.version === version) return;
    const changed: Partial<Snapshot["resources"]> = {};
    for (const type of RESOURCE_TYPES) {
      if (previous?.typeHashes[type] !== typeHashes[type])
        Object.assign(changed, { [type]: resources[type] });
    }
    // First: if the server refuses the snapshot, nothing here records it as published.
    this.options.server.updateSnapshot(group, version, changed);
    for (const svc of previous?.eds ?? [])
      this.serviceUsers.get(serviceKey(svc.namespace, svc.service))?.delete(group);
    for (const svc of eds) {
      const key = serviceKey(svc.namespace, svc.service);
      const users = this.serviceUsers.get(key) ?? new Set<string>();
      users.add(group);
      this.serviceUsers.set(key, users);
    }
    this.groups.set(group, { version, typeHashes, eds });
    // A push per connected sidecar of the group, per type whose resources changed.
    const streams = this.streamCounts.get(group) ?? 0;
    for (const type of RESOURCE_TYPES) {
      if (previous?.typeHashes[type] !== typeHashes[type] && streams > 0) {
        this.options.metrics.xdsPushes.inc({ type }, streams);
      }
    }
    this.options.logger.debug({ group, version, streams }, "xDS snapshot set");
  }

  private nack(e: NackEvent): void {
    this.options.metrics.xdsNacks.inc({ type: e.type });
    // The version the sidecar rejected (the one sent with that nonce).
    const version = e.version;
    this.options.logger.warn(
      { group: e.group, nodeId: e.nodeId, type: e.type, version, nonce: e.nonce, error: e.message },
      "sidecar rejected xDS config (NACK)",
    );
    const nodes = this.rejections.get(e.group) ?? new Map<string, Rejection>();
    nodes.set(e.nodeId, { type: e.type, version, message: e.message });
    this.rejections.set(e.group, nodes);
    this.updateVerdict(e.group);
  }

  private ack(e: AckEvent): void {
    const nodes = this.rejections.get(e.group);
    const rejection = nodes?.get(e.nodeId);
    // An ACK of a later version of the rejected type: that sidecar runs the current config again.
    if (nodes === undefined || rejection === undefined) return;
    if (rejection.type !== e.type || rejection.version === e.version) return;
    nodes.delete(e.nodeId);
    this.updateVerdict(e.group, e.version);
  }

  private updateVerdict(group: string, ackedVersion?: string): void {
    const nodes = this.rejections.get(group);
    const [nodeId, rejection] = [...(nodes?.entries() ?? [])].sort(([a], [b]) => (a < b ? -1 : 1))[0] ?? [];
    const condition: ConditionUpdate =
      nodeId !== undefined && rejection !== undefined
        ? {
            type: CONFIG_REJECTED,
            status: "True",
            reason: "XdsNack",
            message: `sidecar ${nodeId} rejected ${rejection.type} version ${rejection.version}: ${rejection.message}`,
          }
        : {
            type: CONFIG_REJECTED,
            status: "False",
            reason: "Accepted",
            message: `the sidecars accepted version ${ackedVersion ?? "(current)"}`,
          };
    const before = this.verdicts.get(group);
    this.verdicts.set(group, condition);
    if (before?.status === condition.status && before.message === condition.message) return;
    const [namespace = "", kind, name = ""] = group.split("/");
    this.options.onRejectionChange(kind === "broker" ? "Broker" : "Agent", namespace, name);
  }
}
