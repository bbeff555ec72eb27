// Brings listeners in line with a config, in two steps so a reload is all or nothing:
// prepare() binds every new or moved listener while the running ones keep serving (and undoes its
// own work if any bind fails); commit() then updates the kept ones in place (connections stay),
// activates the new ones and drains the removed ones in the background.
import {
  CONNECTION_LIMIT_TYPE,
  HCM_TYPE,
  type HttpConnectionManagerConfig,
  type ListenerConfig,
  type TcpProxyConfig,
} from "@tether/envoy";
import { checkAccessLogFiles } from "../access-log/logger.ts";
import type { Logger } from "../log.ts";
import { ListenerBindError } from "./bind.ts";
import type { RandomSource } from "../upstream/backoff.ts";
import type { ClusterManager } from "../upstream/cluster-manager.ts";
import { HttpListener } from "./http/listener.ts";
import { HttpStats } from "./http/stats.ts";
import { StatsByPrefix } from "./stats-by-prefix.ts";
import { TcpListener, TcpStats } from "./tcp.ts";

export type Listener = HttpListener | TcpListener;

interface ListenerEntry {
  readonly listener: Listener;
  readonly key: string;
  readonly kind: "http" | "tcp";
}

/** What prepare() bound and what commit() will change; opaque to callers. */
export interface ListenerPlan {
  readonly next: ReadonlyMap<string, ListenerEntry>;
  /** Same name, address and kind: updated in place at commit. */
  readonly kept: readonly { readonly listener: Listener; readonly config: ListenerConfig }[];
  /** Bound by prepare(), activated at commit. */
  readonly created: readonly Listener[];
  /** Running now, not in the new config (or replaced): drained at commit. */
  readonly removed: readonly Listener[];
}

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
  private listeners = new Map<string, ListenerEntry>();
  private readonly retiring = new Set<Listener>();
  /** Listeners that share a stat_prefix share its stats, also across reloads. */
  private readonly httpStats = new StatsByPrefix((prefix) => new HttpStats(prefix));
  private readonly tcpStats = new StatsByPrefix((prefix) => new TcpStats(prefix));

  constructor(clusters: ClusterManager, log: Logger, random: RandomSource) {
    this.clusters = clusters;
    this.log = log;
    this.random = random;
  }

  /** The listeners of the committed config (one that failed to re-bind is here, not listening). */
  all(): Listener[] {
    return [...this.listeners.values()].map((e) => e.listener);
  }

  private create(config: ListenerConfig): Listener {
    const tc = terminalFilterOf(config);
    if (tc === undefined) throw new Error(`listener ${config.name} has no terminal filter`);
    if (tc["@type"] === HCM_TYPE)
      return new HttpListener(config, tc, this.clusters, this.log, this.random, this.httpStats);
    return new TcpListener(config, tc, this.clusters, this.log, this.random, this.tcpStats);
  }

  private static update(listener: Listener, config: ListenerConfig): void {
    const tc = terminalFilterOf(config);
    if (tc === undefined) return;
    if (listener instanceof HttpListener && tc["@type"] === HCM_TYPE) listener.update(config, tc);
    else if (listener instanceof TcpListener && tc["@type"] !== HCM_TYPE) listener.update(config, tc);
  }

  private plan(configs: readonly ListenerConfig[]): ListenerPlan {
    const next = new Map<string, ListenerEntry>();
    const kept: { listener: Listener; config: ListenerConfig }[] = [];
    const created: Listener[] = [];
    const removed = new Map(this.listeners);
    for (const config of configs) {
      const key = addressKey(config);
      const kind = kindOf(config);
      const existing = this.listeners.get(config.name);
      if (existing !== undefined && existing.key === key && existing.kind === kind) {
        kept.push({ listener: existing.listener, config });
        next.set(config.name, existing);
        removed.delete(config.name);
        continue;
      }
      const listener = this.create(config);
      next.set(config.name, { listener, key, kind });
      created.push(listener);
    }
    return { next, kept, created, removed: [...removed.values()].map((e) => e.listener) };
  }

  /**
   * Binds what the new config adds while the running listeners keep serving. A new listener whose
   * bind finds its address in use while a listener being removed or replaced holds that port goes
   * last: the old one lets go (stops listening; its connections go on), the new one binds, and on
   * failure the old one binds again. Any other failure (an address not available, a port another
   * process holds) leaves the running listeners untouched. Any failure undoes everything this call
   * did and rejects (a ListenerBindError names the listener and address); nothing is committed.
   */
  async prepare(configs: readonly ListenerConfig[]): Promise<ListenerPlan> {
    for (const config of configs)
      checkAccessLogFiles(config.name, terminalFilterOf(config)?.access_log ?? []);
    const plan = this.plan(configs);
    const released: Listener[] = [];
    try {
      // A kept listener that is not listening (its re-bind failed after an earlier rollback).
      for (const { listener } of plan.kept) if (!listener.listening) await listener.listen();
      const takeovers: Listener[] = [];
      for (const listener of plan.created) {
        try {
          await listener.listen();
        } catch (err) {
          const inUse = err instanceof ListenerBindError && err.reason === "EADDRINUSE";
          if (!inUse || this.holdersOf(listener, plan.removed).length === 0) throw err;
          takeovers.push(listener);
        }
      }
      for (const listener of takeovers) {
        for (const holder of this.holdersOf(listener, plan.removed)) {
          holder.release();
          released.push(holder);
        }
        await listener.listen();
      }
    } catch (err) {
      await this.rollback(plan.created, released);
      throw err;
    }
    return plan;
  }

  /**
   * Removed listeners on the port `listener` found in use (port 0 asks for any free port). The
   * system said the addresses conflict; which of them it meant is not compared here (`::1` and
   * `0:0:0:0:0:0:0:1`, an IPv4-mapped address and its IPv4 form are one address).
   */
  private holdersOf(listener: Listener, removed: readonly Listener[]): Listener[] {
    const port = listener.address.port;
    if (port === 0) return [];
    return removed.filter((r) => r.listening && r.address.port === port);
  }

  /** Closes what a failed prepare() bound and binds the listeners it released again. */
  private async rollback(created: readonly Listener[], released: readonly Listener[]): Promise<void> {
    const now = Date.now();
    await Promise.all(created.map((l) => l.drain(now)));
    for (const listener of released) {
      try {
        await listener.listen();
      } catch (err) {
        // Someone else took the port meanwhile: it stays down until a later reload binds it.
        this.log.error(
          {
            listener: listener.name,
            address: `${listener.address.address}:${listener.address.port}`,
            err: (err as Error).message,
          },
          "cannot bind the running listener again after a failed reload",
        );
      }
    }
  }

  /** Makes a prepared plan the running config. Never fails: everything that could is done in prepare(). */
  commit(plan: ListenerPlan, drainMs: number): void {
    for (const { listener, config } of plan.kept) ListenerManager.update(listener, config);
    for (const listener of plan.created) listener.activate();
    for (const listener of plan.removed) {
      this.retiring.add(listener);
      listener.stopAccepting();
      void listener.drain(Date.now() + drainMs).then(() => this.retiring.delete(listener));
    }
    this.listeners = new Map(plan.next);
  }

  /**
   * Server shutdown, first step: the DEFAULT listeners keep accepting, and each HTTP response asks
   * `drainClose` whether to close its connection. MODIFY_ONLY listeners are left alone.
   */
  startDrainSequence(drainClose: () => boolean): void {
    for (const l of this.all()) {
      if (l instanceof HttpListener && l.drainType === "DEFAULT") l.drainClose = drainClose;
    }
  }

  /**
   * Stops accepting and waits for in-flight work until the deadline. `only: "DEFAULT"` leaves the
   * MODIFY_ONLY listeners serving (the kubelet's probes) so they can be closed last.
   */
  async drainAll(deadline: number, only?: "DEFAULT" | "MODIFY_ONLY"): Promise<void> {
    const all = [...this.all(), ...this.retiring].filter((l) => only === undefined || l.drainType === only);
    for (const l of all) l.stopAccepting();
    await Promise.all(all.map((l) => l.drain(deadline)));
  }
}
