// Writes xds/generated/envoy-subset.json: the protobufjs descriptor of exactly the Envoy messages
// Tether's config subset uses (and what they reference), parsed from Envoy's .proto files as the
// npm registry ships them in @grpc/grpc-js-xds (a devDependency) plus Tether's own protos in
// xds/proto. Loading this JSON at run time costs far less than parsing ~150 .proto files. Beside it,
// envoy-subset.wire.json: the ADS client's compact decoding table derived from it (wire-table.ts).
//   node xds/scripts/generate.ts        (also run by the root `npm run generate`)
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import protobuf from "protobufjs";
import { wireTable } from "./wire-table.ts";

const here = path.dirname(new URL(import.meta.url).pathname);
const xdsDir = path.resolve(here, "..");
const require = createRequire(import.meta.url);
const xdsDeps = path.join(path.dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const protobufjsDir = path.dirname(require.resolve("protobufjs/package.json"));
const includeDirs = [
  path.join(xdsDir, "proto"),
  path.join(xdsDeps, "envoy-api"),
  path.join(xdsDeps, "xds"),
  path.join(xdsDeps, "googleapis"),
  path.join(xdsDeps, "protoc-gen-validate"),
  protobufjsDir, // google/protobuf/descriptor.proto (imported by the validate annotations)
];

/** The files that define every message Tether sends or accepts, `Any` payloads included. */
const FILES = [
  "envoy/service/discovery/v3/discovery.proto",
  "envoy/config/cluster/v3/cluster.proto",
  "envoy/config/endpoint/v3/endpoint.proto",
  "envoy/config/listener/v3/listener.proto",
  "envoy/config/route/v3/route.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
  "envoy/extensions/filters/network/connection_limit/v3/connection_limit.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
  "envoy/extensions/transport_sockets/tls/v3/tls.proto",
  "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
  "envoy/extensions/transport_sockets/proxy_protocol/v3/upstream_proxy_protocol.proto",
  "envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver.proto",
  "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
  "envoy/config/core/v3/backoff.proto",
  "envoy/extensions/access_loggers/stream/v3/stream.proto",
  "envoy/extensions/access_loggers/file/v3/file.proto",
  "tether/v1alpha1/decision_cache.proto",
];

/**
 * Fields newer than the Envoy API snapshot @grpc/grpc-js-xds ships that Tether's subset uses, added
 * with the name, number and type of Envoy's published proto (envoy v1.40's API, as go-control-plane
 * v1.40.0 carries it): `[message, field, number, type]`.
 */
const ADDED_FIELDS: readonly (readonly [string, string, number, string])[] = [
  [
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "backoff_options",
    18,
    "envoy.config.core.v3.BackoffStrategy",
  ],
];

/** The roots of the reachable set: the four xDS resources, the ADS messages, every Any payload. */
export const ROOT_TYPES = [
  "envoy.service.discovery.v3.DiscoveryRequest",
  "envoy.service.discovery.v3.DiscoveryResponse",
  "envoy.config.cluster.v3.Cluster",
  "envoy.config.endpoint.v3.ClusterLoadAssignment",
  "envoy.config.listener.v3.Listener",
  "envoy.config.route.v3.RouteConfiguration",
  "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
  "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
  "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit",
  "envoy.extensions.filters.http.router.v3.Router",
  "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
  "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
  "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
  "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
  "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
  "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
  "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
  "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
  "envoy.extensions.access_loggers.file.v3.FileAccessLog",
  "tether.v1alpha1.DecisionCache",
  // JSON forms of well-known types inside an Any ({"@type": ..., "value": ...}).
  "google.protobuf.Duration",
  "google.protobuf.Struct",
  "google.protobuf.Empty",
];

/** Field options that change the wire encoding or presence; validation annotations are dropped. */
const KEPT_FIELD_OPTIONS = new Set(["packed", "proto3_optional"]);

type Json = Record<string, unknown>;

function load(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync(FILES, { keepCase: true });
  for (const [message, name, id, type] of ADDED_FIELDS) {
    const target = root.lookupType(message);
    if (target.fields[name] === undefined) target.add(new protobuf.Field(name, id, `.${type}`));
  }
  root.resolveAll();
  return root;
}

function reachable(root: protobuf.Root): Set<string> {
  const seen = new Set<string>();
  const queue: protobuf.ReflectionObject[] = ROOT_TYPES.map((name) => root.lookup(name)).map((o, i) => {
    if (o === null) throw new Error(`root type ${ROOT_TYPES[i] ?? ""} not found`);
    return o;
  });
  while (queue.length > 0) {
    const obj = queue.pop();
    if (obj === undefined || seen.has(obj.fullName)) continue;
    seen.add(obj.fullName);
    if (obj instanceof protobuf.Type) {
      for (const field of obj.fieldsArray) if (field.resolvedType !== null) queue.push(field.resolvedType);
    }
  }
  return seen;
}

/**
 * protobufjs' built-in well-known types (google/protobuf/struct.proto's Value) spell fields in
 * camelCase whatever keepCase says; the JSON mapping wants the proto names.
 */
function protoName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function fieldJson(field: protobuf.Field): Json {
  const out: Json = {};
  if (field.repeated) out["rule"] = "repeated";
  if (field instanceof protobuf.MapField) out["keyType"] = field.keyType;
  out["type"] = field.resolvedType?.fullName.slice(1) ?? field.type;
  out["id"] = field.id;
  const options = Object.entries(field.options ?? {}).filter(([k]) => KEPT_FIELD_OPTIONS.has(k));
  // protobufjs reads a JSON descriptor as proto2 unless told: state proto3's packed default.
  const packable = field.resolvedType instanceof protobuf.Enum || field.type in protobuf.types.packed;
  if (field.repeated && !(field instanceof protobuf.MapField) && packable && field.packed) {
    options.push(["packed", true]);
  }
  if (options.length > 0) out["options"] = Object.fromEntries(options);
  return out;
}

function emit(ns: protobuf.NamespaceBase, keep: Set<string>): Json | undefined {
  const nested: Json = {};
  for (const child of ns.nestedArray) {
    const inner = emitObject(child, keep);
    if (inner !== undefined) nested[child.name] = inner;
  }
  return Object.keys(nested).length > 0 ? { nested } : undefined;
}

function emitObject(obj: protobuf.ReflectionObject, keep: Set<string>): Json | undefined {
  if (obj instanceof protobuf.Enum) return keep.has(obj.fullName) ? { values: { ...obj.values } } : undefined;
  if (obj instanceof protobuf.Type) {
    const inner = emit(obj, keep);
    if (!keep.has(obj.fullName)) return inner;
    const out: Json = {};
    const oneofs = obj.oneofsArray.map((o) => [o.name, { oneof: o.oneof.map(protoName) }] as const);
    if (oneofs.length > 0) out["oneofs"] = Object.fromEntries(oneofs);
    out["fields"] = Object.fromEntries(obj.fieldsArray.map((f) => [protoName(f.name), fieldJson(f)]));
    if (inner !== undefined) out["nested"] = inner["nested"];
    return out;
  }
  if (obj instanceof protobuf.Namespace) return emit(obj, keep);
  return undefined;
}

function main(): void {
  const root = load();
  const keep = reachable(root);
  const tree = emit(root, keep) ?? {};
  const out = path.join(xdsDir, "generated");
  mkdirSync(out, { recursive: true });
  const doc = {
    comment:
      "GENERATED by `node xds/scripts/generate.ts` from Envoy's protos (@grpc/grpc-js-xds) and xds/proto; do not edit.",
    ...tree,
  };
  writeFileSync(path.join(out, "envoy-subset.json"), JSON.stringify(doc) + "\n");
  // The ADS client's decoding table, from the descriptor just written (its JSON, as read back).
  const table = wireTable(JSON.parse(JSON.stringify(doc)) as Json);
  writeFileSync(path.join(out, "envoy-subset.wire.json"), JSON.stringify(table) + "\n");
  console.log(`${keep.size} types -> ${path.relative(process.cwd(), out)}/envoy-subset{,.wire}.json`);
}

main();
