/** The `@tether/xds` API the operator uses, and the part of AdsServer it needs (fakes in unit tests). */
import type { AckEvent, NackEvent, Snapshot, StreamInfo } from "@tether/xds";

export type { AckEvent, NackEvent, ResourceJson, ResourceType, Snapshot, StreamInfo } from "@tether/xds";

/** What the operator needs of AdsServer (the real one, or a fake in unit tests). */
export interface SnapshotServer {
  /** Types left out of `changed` keep the group's current resources (see AdsServer.updateSnapshot). */
  updateSnapshot(group: string, version: string, changed: Partial<Snapshot["resources"]>): void;
  removeSnapshot(group: string): void;
  onNack(listener: (e: NackEvent) => void): void;
  onAck(listener: (e: AckEvent) => void): void;
  streams(): StreamInfo[];
}
