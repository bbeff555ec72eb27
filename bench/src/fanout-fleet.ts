/**
 * A fleet of light ADS clients in one process, each behaving like one sidecar: its own node id
 * (`<ns>/<pod>`) and its Agent's group (`<ns>/agent/<name>`), CDS and LDS as wildcards, EDS for
 * every EDS cluster CDS names. The fleet records, per client, when a ClusterLoadAssignment carrying
 * an expected address first reached it.
 */
import { AdsClient, type AdsClientTls, type LoggerLike, type ResourceJson } from "@tether/xds";

const silent: LoggerLike = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export interface FleetMember {
  readonly nodeId: string;
  readonly group: string;
}

interface Expectation {
  readonly address: string;
  readonly seen: Map<number, number>;
  readonly waiters: Set<() => void>;
}

/** Addresses of every lb_endpoint of a ClusterLoadAssignment. */
function addressesOf(cla: ResourceJson | undefined): string[] {
  const localities = (cla?.["endpoints"] ?? []) as {
    lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string } } } }[];
  }[];
  return localities.flatMap((l) =>
    (l.lb_endpoints ?? []).map((e) => e.endpoint?.address?.socket_address?.address ?? ""),
  );
}

export class AdsFleet {
  private readonly target: { readonly host: string; readonly port: number };
  /** The EDS cluster whose addresses are tracked; "*": every cluster's, pooled. */
  private readonly edsCluster: string;
  private readonly clients: AdsClient[] = [];
  /** Latest addresses of `edsCluster` per client index. */
  private readonly addresses = new Map<number, readonly string[]>();
  private expectation: Expectation | undefined;

  private readonly tls: AdsClientTls | undefined;

  /** `tls`: as a sidecar does it (the operator's CA bundle, the xDS Service's name). */
  constructor(target: { host: string; port: number }, edsCluster: string, tls?: AdsClientTls) {
    this.target = target;
    this.edsCluster = edsCluster;
    this.tls = tls;
  }

  get size(): number {
    return this.clients.length;
  }

  /** Connects `members` in batches (a fleet does not start in one instant either). */
  async connect(members: readonly FleetMember[], batch = 50): Promise<void> {
    for (let i = 0; i < members.length; i += batch) {
      for (const member of members.slice(i, i + batch)) this.add(member);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** How many clients currently hold `address` in the EDS cluster. */
  holding(address: string): number {
    let n = 0;
    for (const list of this.addresses.values()) if (list.includes(address)) n++;
    return n;
  }

  /**
   * From now on, the first time each client receives `address` is recorded. Returns the receipt
   * times (performance.now()) once every client has it, or rejects at the deadline.
   */
  async expect(address: string, timeoutMs: number): Promise<ReadonlyMap<number, number>> {
    const expectation: Expectation = { address, seen: new Map(), waiters: new Set() };
    this.expectation = expectation;
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        expectation.waiters.clear();
        this.expectation = undefined;
        resolve(expectation.seen);
      };
      const timer = setTimeout(() => {
        expectation.waiters.clear();
        this.expectation = undefined;
        reject(
          new Error(
            `only ${String(expectation.seen.size)} of ${String(this.clients.length)} clients received ${address} within ${String(timeoutMs)} ms`,
          ),
        );
      }, timeoutMs);
      expectation.waiters.add(() => {
        if (expectation.seen.size >= this.clients.length) done();
      });
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.stop()));
    this.clients.length = 0;
  }

  private add(member: FleetMember): void {
    const index = this.clients.length;
    const client: AdsClient = new AdsClient(
      {
        target: this.target,
        node: { id: member.nodeId, cluster: member.group },
        log: silent,
        // A PING every 5 s, as the operator's rendered tether_xds cluster asks of real sidecars
        // (connection_keepalive interval 5s, timeout 5s), so idle CPU counts their pings.
        keepalive: { timeMs: 5_000, timeoutMs: 5_000 },
        ...(this.tls === undefined ? {} : { tls: this.tls }),
      },
      {
        onResources: (type, _version, resources) => {
          if (type === "cluster") {
            const eds = [...resources.values()]
              .filter((c) => c["type"] === "EDS")
              .map((c) => String(c["name"]));
            client.subscribe("endpoint", eds);
          } else if (type === "endpoint") {
            const tracked =
              this.edsCluster === "*" ? [...resources.values()] : [resources.get(this.edsCluster)];
            this.received(index, tracked.flatMap(addressesOf));
          }
          return Promise.resolve(undefined);
        },
      },
    );
    this.clients.push(client);
    client.start();
  }

  private received(index: number, addresses: readonly string[]): void {
    const at = performance.now();
    this.addresses.set(index, addresses);
    const expectation = this.expectation;
    if (expectation === undefined || expectation.seen.has(index)) return;
    if (!addresses.includes(expectation.address)) return;
    expectation.seen.set(index, at);
    for (const waiter of expectation.waiters) waiter();
  }
}
