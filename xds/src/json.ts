// Envoy's JSON form <-> protobufjs message objects, over the generated descriptor. This is the
// proto3 JSON mapping with proto field names (snake_case), as the sidecar's YAML is written, plus
// what protobufjs does not do itself: Any as {"@type": ...}, Duration as "1.5s", wrappers as plain
// values, Struct/Value as plain JSON, enums by name, 64-bit integers as numbers while they are exact.
// Unknown fields are errors naming the path, as the sidecar's config loader reports them.
import protobuf from "protobufjs/light.js";
import { findMessageType } from "./descriptor.ts";
import { XdsJsonError, durationText, joinPath } from "./types.ts";

export { XdsJsonError };

type Obj = Record<string, unknown>;

const WRAPPERS = new Set([
  ".google.protobuf.DoubleValue",
  ".google.protobuf.FloatValue",
  ".google.protobuf.Int64Value",
  ".google.protobuf.UInt64Value",
  ".google.protobuf.Int32Value",
  ".google.protobuf.UInt32Value",
  ".google.protobuf.BoolValue",
  ".google.protobuf.StringValue",
  ".google.protobuf.BytesValue",
]);
/** Well-known types whose JSON is not an object of fields: inside an Any they sit under "value". */
const SPECIAL = new Set([
  ...WRAPPERS,
  ".google.protobuf.Duration",
  ".google.protobuf.Timestamp",
  ".google.protobuf.Struct",
  ".google.protobuf.Value",
  ".google.protobuf.ListValue",
  ".google.protobuf.Any",
]);
const INT32 = new Set(["int32", "sint32", "sfixed32"]);
const UINT32 = new Set(["uint32", "fixed32"]);
const INT64 = new Set(["int64", "sint64", "sfixed64", "uint64", "fixed64"]);
const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const MAX_DURATION_SECONDS = 315_576_000_000;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The message type an Any's type URL names, or an error naming the path. */
export function typeForUrl(typeUrl: string, path: string): protobuf.Type {
  const slash = typeUrl.lastIndexOf("/");
  const name = slash < 0 ? "" : typeUrl.slice(slash + 1);
  const type = name === "" ? undefined : findMessageType(name);
  if (type === undefined)
    throw new XdsJsonError(path, `unknown @type ${JSON.stringify(typeUrl)} (not in Tether's Envoy subset)`);
  return type;
}

// ---------------------------------------------------------------------------------------------
// JSON -> message object (what protobufjs' encode takes)

/** A protobufjs message object for `json` in Envoy's JSON form; throws XdsJsonError naming the path. */
export function fromJson(type: protobuf.Type, json: unknown, path = ""): Obj {
  if (SPECIAL.has(type.fullName)) return specialFromJson(type, json, path);
  if (!isObj(json)) throw new XdsJsonError(path, `expected an object (${type.name})`);
  const out: Obj = {};
  const oneofSeen = new Map<string, string>();
  for (const [key, value] of Object.entries(json)) {
    const field = type.fields[key];
    const p = joinPath(path, key);
    if (field === undefined) throw new XdsJsonError(p, `unknown field of ${type.fullName.slice(1)}`);
    if (value === null && field.resolvedType?.fullName !== ".google.protobuf.Value") continue;
    const oneof = field.partOf;
    if (oneof !== null) {
      const other = oneofSeen.get(oneof.name);
      if (other !== undefined) throw new XdsJsonError(p, `only one of ${other}, ${key} may be set`);
      oneofSeen.set(oneof.name, key);
    }
    const converted = fieldFromJson(field, value, p);
    // proto3 implicit presence: a zero scalar is "unset" and not written (canonical encoding).
    if (
      !field.repeated &&
      field.partOf === null &&
      !(field.resolvedType instanceof protobuf.Type) &&
      isZero(converted)
    )
      continue;
    out[key] = converted;
  }
  return out;
}

function fieldFromJson(field: protobuf.Field, value: unknown, path: string): unknown {
  if (field instanceof protobuf.MapField) {
    if (!isObj(value)) throw new XdsJsonError(path, "expected an object (map)");
    const out: Obj = {};
    for (const [k, v] of Object.entries(value))
      out[k] = singleFromJson(field, v, `${path}[${JSON.stringify(k)}]`);
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw new XdsJsonError(path, "expected a list");
    return value.map((v: unknown, i) => singleFromJson(field, v, `${path}[${i}]`));
  }
  return singleFromJson(field, value, path);
}

function singleFromJson(field: protobuf.Field, value: unknown, path: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return fromJson(resolved, value, path);
  if (resolved instanceof protobuf.Enum) return enumFromJson(resolved, value, path);
  return scalarFromJson(field.type, value, path);
}

function enumFromJson(type: protobuf.Enum, value: unknown, path: string): number {
  if (typeof value === "string") {
    const n = type.values[value];
    if (n === undefined) throw new XdsJsonError(path, `unknown ${type.name} value ${JSON.stringify(value)}`);
    return n;
  }
  if (typeof value === "number" && Number.isInteger(value)) return value;
  throw new XdsJsonError(path, `expected a ${type.name} name`);
}

function integerFromJson(value: unknown, path: string): number | string {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "string" && /^-?\d+$/.test(value)) return value;
  throw new XdsJsonError(path, "expected an integer");
}

function scalarFromJson(kind: string, value: unknown, path: string): unknown {
  if (INT32.has(kind) || UINT32.has(kind)) {
    const n = Number(integerFromJson(value, path));
    const [min, max] = UINT32.has(kind) ? [0, 0xffff_ffff] : [-0x8000_0000, 0x7fff_ffff];
    if (n < min || n > max) throw new XdsJsonError(path, `out of range for ${kind}`);
    return n;
  }
  if (INT64.has(kind)) {
    const n = integerFromJson(value, path);
    if (kind.startsWith("u") || kind === "fixed64") {
      if (String(n).startsWith("-")) throw new XdsJsonError(path, `out of range for ${kind}`);
    }
    return n;
  }
  switch (kind) {
    case "double":
    case "float":
      if (typeof value === "number") return value;
      if (value === "NaN" || value === "Infinity" || value === "-Infinity") return Number(value);
      throw new XdsJsonError(path, "expected a number");
    case "bool":
      if (typeof value === "boolean") return value;
      throw new XdsJsonError(path, "expected true or false");
    case "string":
      if (typeof value === "string") return value;
      throw new XdsJsonError(path, "expected a string");
    case "bytes":
      if (typeof value === "string" && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value))
        return Buffer.from(value, "base64");
      throw new XdsJsonError(path, "expected base64 bytes");
    default:
      throw new XdsJsonError(path, `unsupported field type ${kind}`);
  }
}

function durationFromJson(value: unknown, path: string): Obj {
  const m = typeof value === "string" ? DURATION.exec(value) : null;
  if (m === null) throw new XdsJsonError(path, 'expected a duration such as "1.5s"');
  const seconds = Number(m[2]);
  if (seconds > MAX_DURATION_SECONDS) throw new XdsJsonError(path, "duration out of range");
  const nanos = Number((m[3] ?? "").padEnd(9, "0"));
  const sign = m[1] === "-" ? -1 : 1;
  return { seconds: sign * seconds, nanos: sign * nanos };
}

function valueFromJson(value: unknown, path: string): Obj {
  if (value === null) return { null_value: 0 };
  if (typeof value === "number") return { number_value: value };
  if (typeof value === "string") return { string_value: value };
  if (typeof value === "boolean") return { bool_value: value };
  if (Array.isArray(value))
    return { list_value: { values: value.map((v: unknown, i) => valueFromJson(v, `${path}[${i}]`)) } };
  if (isObj(value)) return { struct_value: structFromJson(value, path) };
  throw new XdsJsonError(path, "expected a JSON value");
}

function structFromJson(value: unknown, path: string): Obj {
  if (!isObj(value)) throw new XdsJsonError(path, "expected an object (Struct)");
  const fields: Obj = {};
  for (const [k, v] of Object.entries(value)) fields[k] = valueFromJson(v, joinPath(path, k));
  return { fields };
}

function anyFromJson(value: unknown, path: string): Obj {
  if (!isObj(value)) throw new XdsJsonError(path, "expected an object with @type");
  const { "@type": typeUrl, ...rest } = value;
  if (typeof typeUrl !== "string") throw new XdsJsonError(joinPath(path, "@type"), "required (a type URL)");
  const inner = typeForUrl(typeUrl, joinPath(path, "@type"));
  let body: unknown = rest;
  if (SPECIAL.has(inner.fullName)) {
    const keys = Object.keys(rest);
    if (keys.some((k) => k !== "value"))
      throw new XdsJsonError(joinPath(path, keys.find((k) => k !== "value") ?? ""), "unknown field");
    body = rest["value"];
  }
  const message = fromJson(inner, body, path);
  return { type_url: typeUrl, value: inner.encode(message).finish() };
}

function specialFromJson(type: protobuf.Type, json: unknown, path: string): Obj {
  switch (type.fullName) {
    case ".google.protobuf.Any":
      return anyFromJson(json, path);
    case ".google.protobuf.Duration":
      return durationFromJson(json, path);
    case ".google.protobuf.Timestamp": {
      const ms = typeof json === "string" ? Date.parse(json) : NaN;
      if (Number.isNaN(ms)) throw new XdsJsonError(path, "expected an RFC 3339 timestamp");
      return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
    }
    case ".google.protobuf.Struct":
      return structFromJson(json, path);
    case ".google.protobuf.Value":
      return valueFromJson(json, path);
    case ".google.protobuf.ListValue":
      if (!Array.isArray(json)) throw new XdsJsonError(path, "expected a list");
      return { values: json.map((v: unknown, i) => valueFromJson(v, `${path}[${i}]`)) };
    default: {
      const field = type.fields["value"];
      if (field === undefined) throw new XdsJsonError(path, `unsupported type ${type.fullName}`);
      return { value: scalarFromJson(field.type, json, path) };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// message object (as protobufjs' decode returns it) -> JSON

function isLong(v: unknown): v is protobuf.Long {
  return isObj(v) && typeof v["low"] === "number" && typeof v["high"] === "number" && "unsigned" in v;
}

/** 64-bit integers as JSON numbers while exact, else as decimal strings (what protojson accepts). */
function int64ToJson(v: unknown): number | string {
  if (typeof v === "number") return v;
  if (isLong(v)) {
    const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    const n = v.unsigned ? bits : BigInt.asIntN(64, bits);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(n)
      : n.toString();
  }
  return String(v);
}

function isZero(v: unknown): boolean {
  if (v === 0 || v === false || v === "") return true;
  if (v instanceof Uint8Array) return v.length === 0;
  if (isLong(v)) return v.low === 0 && v.high === 0;
  return false;
}

/** Envoy's JSON form of a decoded message: fields that are set, by proto name. */
export function toJson(type: protobuf.Type, message: Obj, path = ""): unknown {
  if (SPECIAL.has(type.fullName)) return specialToJson(type, message, path);
  const out: Obj = {};
  for (const field of type.fieldsArray) {
    if (!Object.prototype.hasOwnProperty.call(message, field.name)) continue;
    const value = message[field.name];
    if (value === undefined || value === null) continue;
    const p = joinPath(path, field.name);
    if (field instanceof protobuf.MapField) {
      const entries = Object.entries(value as Obj);
      if (entries.length === 0) continue;
      out[field.name] = Object.fromEntries(
        entries.map(([k, v]) => [k, singleToJson(field, v, `${p}[${k}]`)]),
      );
    } else if (field.repeated) {
      const list = value as unknown[];
      if (list.length === 0) continue;
      out[field.name] = list.map((v, i) => singleToJson(field, v, `${p}[${i}]`));
    } else {
      // Implicit presence (proto3 scalars outside a oneof): the zero value means "not set".
      if (!(field.resolvedType instanceof protobuf.Type) && field.partOf === null && isZero(value)) continue;
      out[field.name] = singleToJson(field, value, p);
    }
  }
  return out;
}

function singleToJson(field: protobuf.Field, value: unknown, path: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return toJson(resolved, value as Obj, path);
  if (resolved instanceof protobuf.Enum) return resolved.valuesById[value as number] ?? value;
  return scalarToJson(field.type, value);
}

function scalarToJson(kind: string, value: unknown): unknown {
  if (INT64.has(kind)) return int64ToJson(value);
  if (kind === "bytes") return Buffer.from(value as Uint8Array).toString("base64");
  if ((kind === "double" || kind === "float") && typeof value === "number" && !Number.isFinite(value))
    return String(value);
  return value;
}

function durationToJson(message: Obj): string {
  const seconds = Number(int64ToJson(message["seconds"] ?? 0));
  const nanos = Number(message["nanos"] ?? 0);
  const negative = seconds < 0 || nanos < 0;
  const whole = String(Math.abs(seconds));
  return durationText(negative, whole, nanos);
}

function valueToJson(message: Obj, path: string): unknown {
  if (message["struct_value"] !== undefined && message["struct_value"] !== null)
    return structToJson(message["struct_value"] as Obj, path);
  if (message["list_value"] !== undefined && message["list_value"] !== null) {
    const values = ((message["list_value"] as Obj)["values"] ?? []) as Obj[];
    return values.map((v, i) => valueToJson(v, `${path}[${i}]`));
  }
  for (const key of ["number_value", "string_value", "bool_value"]) {
    if (Object.prototype.hasOwnProperty.call(message, key)) return message[key];
  }
  return null;
}

function structToJson(message: Obj, path: string): Obj {
  const fields = (message["fields"] ?? {}) as Record<string, Obj>;
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, valueToJson(v, joinPath(path, k))]));
}

function anyToJson(message: Obj, path: string): Obj {
  const typeUrl = typeof message["type_url"] === "string" ? message["type_url"] : "";
  const inner = typeForUrl(typeUrl, path);
  const bytes = (message["value"] ?? new Uint8Array()) as Uint8Array;
  let decoded: Obj;
  try {
    decoded = inner.decode(bytes) as unknown as Obj;
  } catch (err) {
    throw new XdsJsonError(path, `cannot decode ${typeUrl}: ${(err as Error).message}`);
  }
  const body = toJson(inner, decoded, path);
  return SPECIAL.has(inner.fullName)
    ? { "@type": typeUrl, value: body }
    : { "@type": typeUrl, ...(body as Obj) };
}

function specialToJson(type: protobuf.Type, message: Obj, path: string): unknown {
  switch (type.fullName) {
    case ".google.protobuf.Any":
      return anyToJson(message, path);
    case ".google.protobuf.Duration":
      return durationToJson(message);
    case ".google.protobuf.Timestamp": {
      const ms =
        Number(int64ToJson(message["seconds"] ?? 0)) * 1000 + Math.floor(Number(message["nanos"] ?? 0) / 1e6);
      return new Date(ms).toISOString();
    }
    case ".google.protobuf.Struct":
      return structToJson(message, path);
    case ".google.protobuf.Value":
      return valueToJson(message, path);
    case ".google.protobuf.ListValue":
      return ((message["values"] ?? []) as Obj[]).map((v, i) => valueToJson(v, `${path}[${i}]`));
    default: {
      const field = type.fields["value"];
      return scalarToJson(field?.type ?? "", message["value"] ?? field?.defaultValue);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Any-packed resources

/** A resource's JSON (no "@type") packed as google.protobuf.Any bytes' parts. */
export function packResource(
  typeUrl: string,
  json: unknown,
  path = "",
): { type_url: string; value: Uint8Array } {
  const type = typeForUrl(typeUrl, path);
  if (isObj(json) && json["@type"] !== undefined && json["@type"] !== typeUrl) {
    throw new XdsJsonError(joinPath(path, "@type"), `expected ${typeUrl}`);
  }
  const { "@type": _ignored, ...body } = isObj(json) ? json : { "@type": undefined };
  const message = fromJson(type, isObj(json) ? body : json, path);
  return { type_url: typeUrl, value: type.encode(message).finish() };
}

// Decoding (binary -> JSON) is decode.ts's, table-driven and without protobufjs, so the ADS client
// loads no descriptor; toJson above stays as an independent decoder the tests compare it with.
export { unpackResource } from "./decode.ts";
