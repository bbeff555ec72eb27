// Reads a sidecar example config (an Envoy v3 bootstrap) for the demo: where the admin and the
// listener are, and which policy-server ports the cluster points at. If one of those ports is
// taken on this machine, writes a temp copy with free ports instead.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";

export interface SocketAddress {
  host: string;
  port: number;
}

export interface DemoConfig {
  /** The file to hand to the sidecar (the example itself, or a temp copy with other ports). */
  readonly configPath: string;
  readonly admin: SocketAddress;
  /** The first listener: where clients send requests. */
  readonly listener: SocketAddress;
  /** The endpoints of the first cluster, in file order. */
  readonly endpoints: readonly SocketAddress[];
  /** True when ports had to be changed. */
  readonly rewritten: boolean;
}

export class DemoConfigError extends Error {
  readonly code = "TETHER_ERR_DEMO_CONFIG";
  constructor(message: string) {
    super(`TETHER_ERR_DEMO_CONFIG: ${message}`);
    this.name = "DemoConfigError";
  }
}

interface SocketAddressNode {
  address?: unknown;
  port_value?: unknown;
}

function socketAddressAt(root: unknown, path: readonly (string | number)[]): SocketAddressNode {
  let node: unknown = root;
  for (const key of path) {
    if (node === null || typeof node !== "object") break;
    node = (node as Record<string | number, unknown>)[key];
  }
  if (node === null || typeof node !== "object") {
    throw new DemoConfigError(`${path.join(".")}: missing in the sidecar config`);
  }
  return node;
}

function toAddress(node: SocketAddressNode, where: string): SocketAddress {
  if (typeof node.address !== "string" || typeof node.port_value !== "number") {
    throw new DemoConfigError(`${where}: expected address and port_value`);
  }
  return { host: node.address, port: node.port_value };
}

/** True when `port` can be bound on `host` right now. */
export async function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => {
      resolve(false);
    });
    server.listen({ host, port, exclusive: true }, () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

/** A port the kernel says is free now (bound to 0, read back, released). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

export interface LoadDemoConfigOptions {
  /** Move every port to a fresh free one, taken or not (tests running beside other work). */
  readonly freshPorts?: boolean;
}

/** Loads the example, moving every port that is taken to a free one (in a temp copy). */
export async function loadDemoConfig(path: string, options: LoadDemoConfigOptions = {}): Promise<DemoConfig> {
  const document = parse(readFileSync(path, "utf8")) as unknown;
  const adminNode = socketAddressAt(document, ["admin", "address", "socket_address"]);
  const listenerNode = socketAddressAt(document, [
    "static_resources",
    "listeners",
    0,
    "address",
    "socket_address",
  ]);
  const endpointNodes: SocketAddressNode[] = [];
  const localities = socketAddressAt(document, [
    "static_resources",
    "clusters",
    0,
    "load_assignment",
    "endpoints",
  ]);
  if (!Array.isArray(localities))
    throw new DemoConfigError("static_resources.clusters[0].load_assignment.endpoints: expected a list");
  localities.forEach((_, i) => {
    const lbEndpoints = socketAddressAt(localities, [i, "lb_endpoints"]);
    if (!Array.isArray(lbEndpoints)) return;
    lbEndpoints.forEach((__, j) => {
      endpointNodes.push(socketAddressAt(lbEndpoints, [j, "endpoint", "address", "socket_address"]));
    });
  });
  if (endpointNodes.length === 0) throw new DemoConfigError("static_resources.clusters[0]: no endpoints");

  let rewritten = false;
  for (const node of [adminNode, listenerNode, ...endpointNodes]) {
    const address = toAddress(node, "socket_address");
    if (options.freshPorts === true || !(await portIsFree(address.host, address.port))) {
      node.port_value = await freePort(address.host);
      rewritten = true;
    }
  }
  let configPath = path;
  if (rewritten) {
    configPath = join(mkdtempSync(join(tmpdir(), "tether-demo-")), "envoy.yaml");
    writeFileSync(configPath, stringify(document));
  }
  return {
    configPath,
    admin: toAddress(adminNode, "admin.address.socket_address"),
    listener: toAddress(listenerNode, "static_resources.listeners[0].address.socket_address"),
    endpoints: endpointNodes.map((node, i) => toAddress(node, `endpoint ${i}`)),
    rewritten,
  };
}
