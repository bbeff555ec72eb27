import net from "node:net";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../config/load.ts";
import type { ListenerConfig } from "@tether/envoy";
import { TetherError } from "../errors.ts";
import { ConnectionLimit, DEFAULT_MAX_DOWNSTREAM_CONNECTIONS } from "./connection-limit.ts";

const LIMIT = "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";
const TCP = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

function bootstrap(filters: string): string {
  return `
static_resources:
  listeners:
    - name: l
      address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
      filter_chains:
        - filters:
${filters}
  clusters:
    - name: c
      load_assignment: { cluster_name: c, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } } }] }] }
`;
}
const limitFilter = (fields = "stat_prefix: lim, max_connections: 2"): string =>
  `            - { name: envoy.filters.network.connection_limit, typed_config: { "@type": ${LIMIT}, ${fields} } }`;
const tcpFilter = `            - { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": ${TCP}, stat_prefix: t, cluster: c } }`;

function listener(filters: string): ListenerConfig {
  const l = parseConfigText(bootstrap(filters)).bootstrap.static_resources.listeners[0];
  if (l === undefined) throw new Error("no listener");
  return l;
}

function problems(filters: string): string[] {
  try {
    parseConfigText(bootstrap(filters));
  } catch (err) {
    return [...(err as TetherError).problems];
  }
  return [];
}

const F = "static_resources.listeners[0].filter_chains[0].filters";

describe("connection_limit filter config", () => {
  it("is accepted before the terminal filter, with Envoy's fields", () => {
    const l = listener(`${limitFilter("stat_prefix: lim, max_connections: 2, delay: 0.5s")}\n${tcpFilter}`);
    expect(l.filter_chains[0]?.filters[0]?.typed_config).toEqual({
      "@type": LIMIT,
      stat_prefix: "lim",
      max_connections: 2,
      delay: 500,
    });
  });

  it("names the field path of every mistake", () => {
    expect(problems(`${tcpFilter}\n${limitFilter()}`)).toEqual([
      `${F}[0]: tcp_proxy / http_connection_manager must be the last filter, exactly once`,
      `${F}[1]: the last filter must be tcp_proxy or http_connection_manager`,
    ]);
    expect(problems(limitFilter())).toContain(
      `${F}[0]: the last filter must be tcp_proxy or http_connection_manager`,
    );
    expect(problems(`${limitFilter()}\n${limitFilter()}\n${tcpFilter}`)).toContain(
      `${F}: at most one connection_limit filter`,
    );
    expect(problems(`${limitFilter("stat_prefix: lim, max_connections: 0")}\n${tcpFilter}`).join()).toContain(
      `${F}[0].typed_config.max_connections:`,
    );
    expect(
      problems(`${limitFilter("stat_prefix: lim, max_connections: 1, runtime_enabled: {}")}\n${tcpFilter}`),
    ).toContain(`${F}[0].typed_config.runtime_enabled: unsupported field`);
    expect(problems(`${tcpFilter}\n${tcpFilter}`)).toContain(
      `${F}[0]: tcp_proxy / http_connection_manager must be the last filter, exactly once`,
    );
  });
});

describe("ConnectionLimit", () => {
  it("admits up to max_connections, counts the rest as limited_connections, and frees places on release", () => {
    const limit = new ConnectionLimit(listener(`${limitFilter()}\n${tcpFilter}`));
    expect(limit.prefix).toBe("lim");
    expect([limit.admit(), limit.admit(), limit.admit()]).toEqual([true, true, false]);
    expect(limit.stats.limited_connections).toBe(1);
    expect(limit.stats.downstream_cx_overflow).toBe(0);
    limit.release();
    expect(limit.admit()).toBe(true);
    expect(limit.active).toBe(2);
  });

  it("applies the default limit without a filter, counted as the listener's downstream_cx_overflow", () => {
    const limit = new ConnectionLimit(listener(tcpFilter));
    expect(limit.prefix).toBeUndefined();
    expect(limit.max).toBe(DEFAULT_MAX_DOWNSTREAM_CONNECTIONS);
    for (let i = 0; i < DEFAULT_MAX_DOWNSTREAM_CONNECTIONS; i++) limit.admit();
    expect(limit.admit()).toBe(false);
    expect(limit.stats.downstream_cx_overflow).toBe(1);
  });

  it("keeps its open count across a reload that changes the limit", () => {
    const limit = new ConnectionLimit(listener(`${limitFilter()}\n${tcpFilter}`));
    limit.admit();
    limit.admit();
    limit.configure(listener(`${limitFilter("stat_prefix: lim, max_connections: 3")}\n${tcpFilter}`));
    expect(limit.admit()).toBe(true);
    expect(limit.admit()).toBe(false);
  });

  it("closes a refused socket at once, or holds it for delay", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    /** A client connection and the server's side of it. */
    const connect = async (): Promise<{ client: net.Socket; accepted: net.Socket }> => {
      const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
      const client = net.connect(port, "127.0.0.1");
      client.on("error", () => undefined);
      return { client, accepted: await accepted };
    };
    const config = (fields: string): ListenerConfig => listener(`${limitFilter(fields)}\n${tcpFilter}`);
    try {
      const now = new ConnectionLimit(config("stat_prefix: lim, max_connections: 1"));
      const first = await connect();
      now.reject(first.accepted);
      await new Promise((resolve) => first.client.once("close", resolve));

      const held = new ConnectionLimit(config("stat_prefix: lim, max_connections: 1, delay: 30s"));
      const second = await connect();
      held.reject(second.accepted);
      expect(held.isHeld(second.accepted)).toBe(true);
      const closed = new Promise((resolve) => second.accepted.once("close", resolve));
      held.closeAllHeld();
      await closed;
      expect(held.isHeld(second.accepted)).toBe(false);
    } finally {
      server.close();
    }
  });
});
