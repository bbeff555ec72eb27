// Brings listeners in line with a config: same name and address → updated in place (connections
// stay); new or moved → started; removed → stop accepting and drain in the background.
import {
  CONNECTION_LIMIT_TYPE,
  HCM_TYPE,
  type HttpConnectionManagerConfig,
  type ListenerConfig,
  type TcpProxyConfig,
} from "../config/schema.ts";
import type { Logger } from "../log.ts";
import type { RandomSource } from "../upstream/backoff.ts";
import type { ClusterManager } from "../upstream/cluster-manager.ts";
import { HttpListener } from "./http/listener.ts";
import { TcpListener } from "./tcp.ts";

export type Listener = HttpListener | TcpListener;

function addressKey(l: ListenerConfig): string {
  const sa = l.address.socket_address;
  return `${sa.address}:${sa.port_value}`;
}

/** The chain's terminal filter (http_connection_manager or tcp_proxy): the last, after any connection_limit. */
function terminalFilterOf(l: ListenerConfig): HttpConnectionManagerConfig | TcpProxyConfig | undefined {
  const filters = l.filter_chains[0]?.filters ?? [];
  for (let i = filters.length - 1; i >= 0; i--) {
    const tc = filters[i]?.typed_config;
    if (tc !== undefined && tc["@type"] !== CONNECTION_LIMIT_TYPE) return tc;
  }
  return undefined;
}

function kindOf(l: ListenerConfig): "http" | "tcp" {
  return terminalFilterOf(l)?.["@type"] === HCM_TYPE ? "http" : "tcp";
}

export class ListenerManager {
  private readonly clusters: ClusterManager;
  private readonly log: Logger;
  private readonly random: RandomSource;
  private listeners = new Map<string, { listener: Listener; key: string; kind: "http" | "tcp" }>();
  private readonly retiring = new Set<Listener>();

  constructor(clusters: ClusterManager, log: Logger, random: RandomSource) {
    this.clusters = clusters;
    this.log = log;
    this.random = random;
  }

  all(): Listener[] {
    return [...this.listeners.values()].map((e) => e.listener);
  }

  private create(config: ListenerConfig): Listener {
    const tc = terminalFilterOf(config);
    if (tc === undefined) throw new Error(`listener ${config.name} has no terminal filter`);
    if (tc["@type"] === HCM_TYPE) return new HttpListener(config, tc, this.clusters, this.log, this.random);
    return new TcpListener(config, tc, this.clusters, this.log, this.random);
  }

  private static update(listener: Listener, config: ListenerConfig): void {
    const tc = terminalFilterOf(config);
    if (tc === undefined) return;
    if (listener instanceof HttpListener && tc["@type"] === HCM_TYPE) listener.update(config, tc);
    else if (listener instanceof TcpListener && tc["@type"] !== HCM_TYPE) listener.update(config, tc);
  }

  async apply(configs: readonly ListenerConfig[], drainMs: number): Promise<void> {
    const next = new Map<string, { listener: Listener; key: string; kind: "http" | "tcp" }>();
    const toStart: Listener[] = [];
    const removed = new Map(this.listeners);
    for (const config of configs) {
      const key = addressKey(config);
      const kind = kindOf(config);
      const existing = this.listeners.get(config.name);
      if (existing !== undefined && existing.key === key && existing.kind === kind) {
        ListenerManager.update(existing.listener, config);
        next.set(config.name, existing);
        removed.delete(config.name);
        continue;
      }
      const listener = this.create(config);
      next.set(config.name, { listener, key, kind });
      toStart.push(listener);
    }
    // Free the old addresses first so a moved listener can bind, then start the new ones.
    for (const e of removed.values()) {
      this.retiring.add(e.listener);
      e.listener.stopAccepting();
      void e.listener.drain(Date.now() + drainMs).then(() => this.retiring.delete(e.listener));
    }
    this.listeners = next;
    for (const l of toStart) await l.start();
  }

  async drainAll(deadline: number): Promise<void> {
    const all = [...this.all(), ...this.retiring];
    for (const l of all) l.stopAccepting();
    await Promise.all(all.map((l) => l.drain(deadline)));
  }
}
