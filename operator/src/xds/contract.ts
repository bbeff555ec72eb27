/**
 * The `@tether/xds` API the operator uses (the shared xDS design's contract), declared here until the
 * package lands in this branch; then this file re-exports it instead.
 */
export type ResourceType = "cluster" | "endpoint" | "listener" | "route";
export type ResourceJson = Record<string, unknown>;

export interface Snapshot {
  readonly version: string;
  readonly resources: { readonly [T in ResourceType]: ReadonlyMap<string, ResourceJson> };
}

export interface NackEvent {
  readonly nodeId: string;
  readonly group: string;
  readonly type: ResourceType;
  readonly version: string;
  readonly nonce: string;
  readonly message: string;
  readonly code: number;
}

export interface AckEvent {
  readonly nodeId: string;
  readonly group: string;
  readonly type: ResourceType;
  readonly version: string;
}

export interface StreamInfo {
  readonly nodeId: string;
  readonly group: string;
  readonly connectedAt: Date;
  readonly acked: Readonly<Partial<Record<ResourceType, string>>>;
}

/** What the operator needs of AdsServer (the real one, or a fake in unit tests). */
export interface SnapshotServer {
  setSnapshot(group: string, snapshot: Snapshot): void;
  removeSnapshot(group: string): void;
  onNack(listener: (e: NackEvent) => void): void;
  onAck(listener: (e: AckEvent) => void): void;
  streams(): StreamInfo[];
}
