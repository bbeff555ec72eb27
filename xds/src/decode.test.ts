// The ADS client's decoder (binary -> Envoy JSON from the compact table) on bytes written by hand:
// protobuf's parsing rules one by one, and malformed input. Cross-checked against protobufjs'
// reflection on whole resources here and in xds/test/roundtrip.test.ts.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { wireTable } from "../scripts/wire-table.ts";
import { MAX_MESSAGES, messageBudget, unpackResource } from "./decode.ts";
import { messageType } from "./descriptor.ts";
import { packResource, toJson } from "./json.ts";
import { TYPE_URLS, XdsJsonError } from "./types.ts";
import { messageInfo } from "./wire-table.ts";

type Obj = Record<string, unknown>;

// A tiny writer for hand-made messages: tag(number, wireType) + payloads.
const varint = (n: bigint | number): number[] => {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
};
const tag = (number: number, wireType: number): number[] => varint((number << 3) | wireType);
const len = (number: number, payload: number[]): number[] => [
  ...tag(number, 2),
  ...varint(payload.length),
  ...payload,
];
const str = (number: number, text: string): number[] => len(number, [...Buffer.from(text)]);
const bytes = (...parts: number[][]): Buffer => Buffer.from(parts.flat());

const CLUSTER = TYPE_URLS.cluster;
const CLA = TYPE_URLS.endpoint;
// envoy.config.cluster.v3.Cluster: name = 1, type = 2 (oneof cluster_discovery_type), connect_timeout
// = 4 (Duration), per_connection_buffer_limit_bytes = 5 (UInt32Value), lb_policy = 6, metadata = 25,
// cluster_type = 38 (the other member of the oneof), dns_lookup_family = 17.
const decodeCluster = (...parts: number[][]): Obj => unpackResource(CLUSTER, bytes(...parts), "c");

describe("the ADS client's decoder", () => {
  it("reads what protobufjs wrote, as protobufjs' reflection reads it (EDS and RDS resources)", () => {
    const cla = {
      cluster_name: "ps",
      endpoints: [
        {
          locality: { zone: "a" },
          lb_endpoints: [
            {
              endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: 8080 } } },
              health_status: "DRAINING",
              load_balancing_weight: 0,
              metadata: {
                filter_metadata: { tether: { pod: "ps-0", ready: true, n: 2, l: [1, "x", null] } },
              },
            },
          ],
          priority: 1,
        },
      ],
      policy: { overprovisioning_factor: 140, endpoint_stale_after: "30s" },
    };
    const route = {
      name: "r",
      virtual_hosts: [
        {
          name: "v",
          domains: ["*"],
          routes: [
            {
              match: { prefix: "/", headers: [{ name: "x", string_match: { exact: "y" } }] },
              route: { cluster: "c", timeout: "1.500s", retry_policy: { retry_on: "5xx", num_retries: 3 } },
            },
          ],
        },
      ],
    };
    for (const [url, json] of [
      [CLA, cla],
      [TYPE_URLS.route, route],
    ] as const) {
      const packed = packResource(url, json);
      const type = messageType(url.slice(url.lastIndexOf("/") + 1));
      const reflected = toJson(type, type.decode(packed.value) as unknown as Obj);
      expect(JSON.stringify(unpackResource(url, packed.value))).toBe(JSON.stringify(reflected));
    }
  });

  it("skips unknown fields of every wire type, groups included", () => {
    expect(
      decodeCluster(
        tag(900, 0),
        varint(5),
        tag(901, 1),
        [1, 2, 3, 4, 5, 6, 7, 8],
        len(902, [1, 2]),
        tag(903, 5),
        [1, 2, 3, 4],
        tag(904, 3),
        tag(1, 0),
        varint(1),
        tag(904, 4),
        str(1, "ps"),
      ),
    ).toEqual({ name: "ps" });
  });

  it("treats a known field with another wire type as unknown, as Go's protobuf does", () => {
    expect(decodeCluster(tag(1, 0), varint(7), str(1, "ps"), len(6, [1]))).toEqual({ name: "ps" });
  });

  it("keeps the last value of a scalar and merges a message field seen twice", () => {
    const timeout = (s: number, n: number): number[] =>
      len(4, [...tag(1, 0), ...varint(s), ...tag(2, 0), ...varint(n)]);
    expect(
      decodeCluster(str(1, "a"), str(1, "b"), timeout(2, 0), len(4, [...tag(2, 0), ...varint(500_000_000)])),
    ).toEqual({
      name: "b",
      connect_timeout: "2.500s",
    });
  });

  it("lets the last member of a oneof clear the others", () => {
    const clusterType = len(38, str(1, "custom"));
    expect(decodeCluster(tag(2, 0), varint(1), clusterType)).toEqual({ cluster_type: { name: "custom" } });
    expect(decodeCluster(clusterType, tag(2, 0), varint(0))).toEqual({ type: "STATIC" });
  });

  it("leaves out proto3 zero values but keeps wrappers set to zero, and names enums (numbers it lacks stay numbers)", () => {
    expect(decodeCluster(str(1, ""), tag(6, 0), varint(0), len(5, []))).toEqual({
      per_connection_buffer_limit_bytes: 0,
    });
    expect(decodeCluster(tag(6, 0), varint(99), tag(17, 0), varint(1))).toEqual({
      lb_policy: 99,
      dns_lookup_family: "V4_ONLY",
    });
  });

  it("reads repeated scalars packed and unpacked", () => {
    // Cluster.common_lb_config (27) -> override_host_status (8, HealthStatusSet) -> statuses (1).
    const statuses = (payload: number[]): number[] => len(27, len(8, payload));
    const unpacked = decodeCluster(statuses([...tag(1, 0), ...varint(1), ...tag(1, 0), ...varint(3)]));
    const packed = decodeCluster(statuses(len(1, [...varint(1), ...varint(3)])));
    const expected = { common_lb_config: { override_host_status: { statuses: ["HEALTHY", "DRAINING"] } } };
    expect(unpacked).toEqual(expected);
    expect(packed).toEqual(expected);
  });

  it("reads 64-bit integers exactly (decimal strings past 2^53), negative varints, bytes and doubles", () => {
    // Cluster.upstream_bind_config (21) -> socket_options (3): SocketOption level (2, int64), name
    // (3, int64), int_value (4, int64, oneof) or buf_value (5, bytes, oneof).
    const option = (payload: number[]): number[] => len(21, len(3, payload));
    expect(
      decodeCluster(option([...tag(2, 0), ...varint(2n ** 60n + 1n), ...tag(3, 0), ...varint(-2n)])),
    ).toEqual({
      upstream_bind_config: { socket_options: [{ level: "1152921504606846977", name: -2 }] },
    });
    expect(decodeCluster(option([...tag(4, 0), ...varint(0), ...len(5, [0xff, 0x00])]))).toEqual({
      upstream_bind_config: { socket_options: [{ buf_value: "/wA=" }] },
    });
    expect(decodeCluster(option([...tag(4, 0), ...varint(0)]))).toEqual({
      upstream_bind_config: { socket_options: [{ int_value: 0 }] },
    });
    // Duration.nanos is an int32: -1 ms is a ten-byte varint.
    expect(decodeCluster(len(4, [...tag(2, 0), ...varint(-1_000_000n)]))).toEqual({
      connect_timeout: "-0.001s",
    });
    // CommonLbConfig.healthy_panic_threshold (1, Percent: value = 1, double).
    const percent = (v: number): number[] => {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(v);
      return len(27, len(1, [...tag(1, 1), ...b]));
    };
    expect(decodeCluster(percent(12.5))).toEqual({
      common_lb_config: { healthy_panic_threshold: { value: 12.5 } },
    });
    expect(decodeCluster(percent(Infinity))).toEqual({
      common_lb_config: { healthy_panic_threshold: { value: "Infinity" } },
    });
  });

  it("reads maps, a missing key or value as its zero value", () => {
    // Cluster.metadata (25) -> Metadata.filter_metadata (1): map<string, Struct>.
    const entry = (payload: number[]): number[] => len(25, len(1, payload));
    const struct = len(1, [...str(1, "k"), ...len(2, [...tag(4, 0), ...varint(1)])]);
    expect(decodeCluster(entry([...str(1, "a"), ...len(2, struct)]))).toEqual({
      metadata: { filter_metadata: { a: { k: true } } },
    });
    expect(decodeCluster(entry(len(2, struct)))).toEqual({
      metadata: { filter_metadata: { "": { k: true } } },
    });
    expect(decodeCluster(entry(str(1, "a")))).toEqual({ metadata: { filter_metadata: { a: {} } } });
  });

  it("refuses malformed bytes with an error naming the resource and its type", () => {
    const fail = (...parts: number[][]): string => {
      try {
        decodeCluster(...parts);
      } catch (err) {
        expect(err).toBeInstanceOf(XdsJsonError);
        return (err as Error).message;
      }
      throw new Error("decoded");
    };
    expect(fail([...tag(1, 2), ...varint(10), 0x61])).toMatch(
      /^c: cannot decode type\.googleapis\.com\/envoy\.config\.cluster\.v3\.Cluster: truncated/,
    );
    expect(fail([0x80])).toMatch(/truncated varint/);
    expect(fail([0x07])).toMatch(/invalid tag/); // field 0
    expect(fail(tag(1, 6))).toMatch(/invalid tag/);
    expect(fail(tag(5, 4))).toMatch(/end of group/);
    expect(fail(tag(900, 3), tag(901, 4))).toMatch(/group 900 ended by 901/);
    expect(fail([...tag(1, 0), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])).toMatch(
      /overflows 64 bits/,
    );
    // Lengths and tags are not cut to 32 bits: 2^32 + 3 is not 3, and field 2^29 is past the last.
    expect(fail([0x0a, 0x83, 0x80, 0x80, 0x80, 0x10, 0x61, 0x62, 0x63])).toMatch(
      /truncated: 4294967299 bytes wanted/,
    );
    expect(fail([0x8a, 0x80, 0x80, 0x80, 0x10, 3, 0x61, 0x62, 0x63])).toMatch(/invalid tag 4294967306/);
    expect(fail(varint(2 ** 29 * 8), [0])).toMatch(/invalid tag/);
    // A string must be UTF-8, as protobuf's proto3 strings are.
    expect(fail(len(1, [0xff, 0xfe, 0x41]))).toMatch(/invalid UTF-8/);
  });

  it("refuses messages nested past the limit, and an Any of a type outside the subset, naming the path", () => {
    // Struct -> Value -> ListValue -> Value -> … nests without end.
    let value = [...tag(4, 0), ...varint(1)];
    for (let i = 0; i < 80; i++) value = len(6, len(1, value)); // Value.list_value.values[0]
    const deep = len(25, len(1, [...str(1, "a"), ...len(2, len(1, [...str(1, "k"), ...len(2, value)]))]));
    expect(() => decodeCluster(deep)).toThrow(/nested deeper than 100/);
    // Cluster.typed_extension_protocol_options (36): map<string, Any>.
    const any = [...str(1, "type.googleapis.com/not.There"), ...len(2, [])];
    expect(() => decodeCluster(len(36, [...str(1, "k"), ...len(2, any)]))).toThrow(
      'c.typed_extension_protocol_options["k"]: unknown @type "type.googleapis.com/not.There"',
    );
  });

  it("merges a message field seen many times in one pass, however deep (no copy per level)", () => {
    // Listener.listener_filters (9) -> ListenerFilter.filter_disabled (4): a predicate whose
    // not_match (3) occurs twice at each of 96 levels, 1.9 MB of unknown bytes at the bottom of
    // each chain. Merging by re-reading joined bytes would copy them once per level (~365 MB).
    const lenB = (number: number, payload: Buffer): Buffer =>
      Buffer.concat([Buffer.from([...tag(number, 2), ...varint(payload.length)]), payload]);
    const chain = (leaf: Buffer): Buffer => {
      let p = leaf;
      for (let i = 0; i < 96; i++) p = lenB(3, p);
      return p;
    };
    const filler = lenB(15, Buffer.alloc(1_900_000, 0x61));
    const predicate = Buffer.concat([
      chain(Buffer.concat([filler, Buffer.from([...tag(4, 0), 1])])),
      chain(filler),
    ]);
    const listener = Buffer.concat([
      Buffer.from(str(1, "l")),
      lenB(9, Buffer.concat([Buffer.from(str(1, "f")), lenB(4, predicate)])),
    ]);
    const before = process.memoryUsage().arrayBuffers;
    const out = unpackResource(TYPE_URLS.listener, listener, "l");
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(listener.length);
    let predicateJson = (out["listener_filters"] as Obj[])[0]?.["filter_disabled"] as Obj;
    for (let i = 0; i < 96; i++) predicateJson = predicateJson["not_match"] as Obj;
    expect(predicateJson).toEqual({ any_match: true });
  });

  it("refuses a resource of more messages than MAX_MESSAGES, and counts a shared budget across resources", () => {
    // Cluster.health_checks (8): empty messages, 2 bytes each on the wire.
    const empties = (n: number): number[] => {
      const one = len(8, []);
      return new Array<number[]>(n).fill(one).flat();
    };
    expect(() => decodeCluster(empties(MAX_MESSAGES + 1))).toThrow(`more than ${MAX_MESSAGES} messages`);
    expect((decodeCluster(empties(1000))["health_checks"] as unknown[]).length).toBe(1000);
    const budget = messageBudget();
    const half = bytes(empties(MAX_MESSAGES / 2));
    unpackResource(CLUSTER, half, "a", budget);
    expect(() => unpackResource(CLUSTER, half, "b", budget)).toThrow(
      /^b: cannot decode .*: more than 250000 messages$/,
    );
  });

  it("follows protojson on well-known types: invalid durations and values are errors, an empty Any is {}", () => {
    const duration = (seconds: bigint, nanos: number): number[] =>
      len(4, [...tag(1, 0), ...varint(seconds), ...tag(2, 0), ...varint(nanos)]);
    expect(() => decodeCluster(duration(1n, -500_000_000))).toThrow(
      "c.connect_timeout: Duration seconds 1 and nanos -500000000 differ in sign",
    );
    expect(() => decodeCluster(duration(1n, 2_000_000_000))).toThrow(/nanos 2000000000 is out of range/);
    expect(() => decodeCluster(duration(315_576_000_001n, 0))).toThrow(
      /315576000001 seconds is out of range/,
    );
    expect(decodeCluster(duration(-315_576_000_000n, -1))).toEqual({
      connect_timeout: "-315576000000.000000001s",
    });
    // Cluster.metadata (25) -> filter_metadata (1) {"a": Struct {"k": Value}}.
    const value = (payload: number[]): Obj =>
      decodeCluster(
        len(25, len(1, [...str(1, "a"), ...len(2, len(1, [...str(1, "k"), ...len(2, payload)]))])),
      );
    expect(() => value([])).toThrow(
      /c\.metadata\.filter_metadata\["a"\]\["k"\]: a google.protobuf.Value with none/,
    );
    const nan = Buffer.alloc(8);
    nan.writeDoubleLE(NaN);
    expect(() => value([...tag(2, 1), ...nan])).toThrow(/a JSON number cannot be NaN/);
    expect(value([...tag(1, 0), 0])).toEqual({ metadata: { filter_metadata: { a: { k: null } } } });
    // Cluster.transport_socket (24) -> typed_config (3): an Any with no type and no bytes.
    expect(decodeCluster(len(24, [...str(1, "t"), ...len(3, [])]))).toEqual({
      transport_socket: { name: "t", typed_config: {} },
    });
  });

  it("resolves a type URL by what follows its last slash (or all of it), only among the subset's own types", () => {
    const socket = (url: string): Obj =>
      decodeCluster(len(24, [...str(1, "t"), ...len(3, [...str(1, url), ...len(2, str(2, "sni.test"))])]));
    const tlsType = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
    expect(socket(tlsType)).toEqual({
      transport_socket: { name: "t", typed_config: { "@type": tlsType, sni: "sni.test" } },
    });
    for (const url of ["x/constructor", "x/__proto__", "toString"])
      expect(() => socket(url)).toThrow(
        `c.transport_socket.typed_config: unknown @type ${JSON.stringify(url)}`,
      );
  });

  it("merges a map entry's value seen twice, as protobuf merges messages", () => {
    // Cluster.metadata (25) -> filter_metadata (1): one entry "a" whose Struct value comes in two parts.
    const field = (k: string, b: boolean): number[] =>
      len(1, [...str(1, k), ...len(2, [...tag(4, 0), b ? 1 : 0])]);
    const entry = [...str(1, "a"), ...len(2, field("x", true)), ...len(2, field("y", false))];
    expect(decodeCluster(len(25, len(1, entry)))).toEqual({
      metadata: { filter_metadata: { a: { x: true, y: false } } },
    });
  });

  it("the committed table is generate.ts's output for the committed descriptor, and every type in it resolves", () => {
    const dir = new URL("../generated/", import.meta.url);
    const descriptor = JSON.parse(readFileSync(new URL("envoy-subset.json", dir), "utf8")) as Obj;
    const committed = JSON.parse(readFileSync(new URL("envoy-subset.wire.json", dir), "utf8")) as Obj;
    const table = wireTable(descriptor);
    expect(committed).toEqual(JSON.parse(JSON.stringify(table)));
    for (const name of Object.keys(table.messages)) {
      const info = messageInfo(name);
      expect(info?.fields.length).toBe(messageType(name).fieldsArray.length);
    }
  });
});
