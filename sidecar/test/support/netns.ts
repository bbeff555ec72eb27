// Pods on this machine: each upstream process in its own network namespace, wired by a veth pair to
// a test bridge in the root namespace, the way a CNI bridge plugin wires pods to a node. Deleting a
// pod removes its veth (the IP vanishes from the bridge while the bridge's route stays), so a new
// connect to it hangs until ARP gives up (EHOSTUNREACH) — the Kubernetes mechanism after kubelet tears
// down a terminated pod's network. Addresses are private (10.251.N.0/24) and stay on the bridge.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function tryIp(...args: string[]): boolean {
  try {
    ip(...args);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why network-namespace tests cannot run here, or undefined when they can: they need root and a
 * working `ip netns` / veth / bridge (probed by creating and deleting a namespace).
 */
export function netnsUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return `needs Linux network namespaces (platform ${process.platform})`;
  if (process.getuid?.() !== 0) return "needs root to create network namespaces (ip netns add)";
  try {
    ip("netns", "list");
  } catch (err) {
    return `ip netns is unavailable: ${(err as Error).message.split("\n")[0] ?? ""}`;
  }
  const probe = `tthc-probe-${process.pid}`;
  try {
    ip("netns", "add", probe);
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message.split("\n")[0] ?? ""}`;
  } finally {
    tryIp("netns", "del", probe);
  }
  return undefined;
}

/** A /24 in 10.251.0.0/16 that no interface or route on this machine uses yet. */
function freeSubnet(): number {
  const routes = ip("-4", "route", "show", "table", "all");
  const addrs = ip("-4", "-o", "addr", "show");
  for (let tries = 0; tries < 64; tries++) {
    const n = 16 + ((randomBytes(1)[0] ?? 0) % 224);
    const prefix = `10.251.${n}.`;
    if (!routes.includes(prefix) && !addrs.includes(prefix)) return n;
  }
  throw new Error("no free 10.251.N.0/24 subnet for the test bridge");
}

/** Namespaces and links of test runs whose process is gone (a crash skipped their cleanup). */
function removeStale(): void {
  for (const line of ip("netns", "list").split("\n")) {
    const m = /^tthc-(\d+)-\w+/.exec(line);
    if (m?.[1] === undefined || pidAlive(Number(m[1]))) continue;
    tryIp("netns", "del", m[0]);
  }
  for (const line of ip("-o", "link", "show").split("\n")) {
    const m = /^\d+: (tt(\d+)[bv]\w*)[@:]/.exec(line);
    if (m?.[1] === undefined || pidAlive(Number(m[2]))) continue;
    tryIp("link", "del", m[1]);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface Pod {
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  /** The root-namespace end of the pod's veth pair, attached to the bridge. */
  readonly hostVeth: string;
  deleted: boolean;
}

/**
 * A bridge with pods. Interface names carry the test process id (`tt<pid>b`, `tt<pid>v<i>`) and
 * namespaces `tthc-<pid>-<name>`, so a later run removes what a crashed one left. `destroy()` removes
 * everything and is safe to call twice; it also runs at process exit as a backstop.
 */
export class PodNetwork {
  readonly bridge: string;
  readonly gateway: string;
  private readonly subnet: number;
  private readonly pods: Pod[] = [];
  private destroyed = false;
  private readonly onExit = (): void => {
    this.destroy();
  };

  private constructor(subnet: number) {
    this.subnet = subnet;
    this.bridge = `tt${process.pid}b`;
    this.gateway = `10.251.${subnet}.1`;
  }

  static create(): PodNetwork {
    removeStale();
    const net = new PodNetwork(freeSubnet());
    process.once("exit", net.onExit);
    try {
      ip("link", "add", net.bridge, "type", "bridge");
      ip("addr", "add", `${net.gateway}/24`, "dev", net.bridge);
      ip("link", "set", net.bridge, "up");
    } catch (err) {
      net.destroy();
      throw err;
    }
    return net;
  }

  /** A namespace with one interface on the bridge, its address ready to bind. */
  addPod(name: string): Pod {
    if (this.destroyed) throw new Error("pod network destroyed");
    const index = this.pods.length;
    const pod: Pod = {
      name,
      netns: `tthc-${process.pid}-${name}`,
      address: `10.251.${this.subnet}.${10 + index}`,
      hostVeth: `tt${process.pid}v${index}`,
      deleted: false,
    };
    this.pods.push(pod);
    ip("netns", "add", pod.netns);
    ip("link", "add", pod.hostVeth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns);
    ip("link", "set", pod.hostVeth, "master", this.bridge, "up");
    ip("-n", pod.netns, "addr", "add", `${pod.address}/24`, "dev", "eth0");
    ip("-n", pod.netns, "link", "set", "eth0", "up");
    ip("-n", pod.netns, "link", "set", "lo", "up");
    return pod;
  }

  /** Starts `argv` (argv[0] is the program) inside the pod's namespace. */
  spawnIn(pod: Pod, argv: readonly string[]): ChildProcess {
    return spawn("ip", ["netns", "exec", pod.netns, ...argv], { stdio: ["ignore", "pipe", "inherit"] });
  }

  /**
   * What kubelet's CNI teardown does: the pod's veth pair goes (its IP vanishes from the bridge,
   * whether or not a process still runs there), then the namespace.
   */
  deletePod(pod: Pod): void {
    pod.deleted = true;
    tryIp("link", "del", pod.hostVeth);
    tryIp("netns", "del", pod.netns);
  }

  /** Removes every pod and the bridge. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off("exit", this.onExit);
    for (const pod of this.pods) this.deletePod(pod);
    tryIp("link", "del", this.bridge);
  }

  /** Names of this network's namespaces and links still present (empty after destroy()). */
  leftovers(): string[] {
    const names = [...this.pods.map((p) => p.netns), ...this.pods.map((p) => p.hostVeth), this.bridge];
    const present = ip("netns", "list") + ip("-o", "link", "show");
    return names.filter((n) => new RegExp(`(^|\\s)${n}[\\s:@]`, "m").test(present));
  }
}
