// Envoy's binary messages -> their JSON form, straight from the wire with the compact table
// (wire-table.ts): the ADS client's decoder. It gives what the proto3 JSON mapping gives with proto
// field names (the form the sidecar's YAML has), as json.ts documents it: Any as {"@type": …},
// Duration as "1.5s", wrappers as plain values, Struct/Value as plain JSON, enums by name (a number
// the enum does not define stays a number), 64-bit integers as numbers while exact, else decimal
// strings, bytes in base64, zero values of fields without presence left out.
//
// The parsing rules are protobuf's own: unknown fields are skipped, a known field arriving with
// another wire type is treated as unknown (as Go's protobuf does), repeated scalars are read packed
// or not, the last value of a singular field wins, a message field seen twice is merged, the last
// member of a oneof clears the others. Malformed bytes throw, naming the Any being decoded.
import { EGROUP, I32, I64, LEN, MAX_DEPTH, Reader, VARINT, WireError } from "./protowire.ts";
import { XdsJsonError } from "./types.ts";
import { enumName, messageInfo } from "./wire-table.ts";
import type { FieldInfo, MessageInfo, ScalarKind } from "./wire-table.ts";

type Obj = Record<string, unknown>;

const ANY = "google.protobuf.Any";
const WRAPPERS = new Set([
  "google.protobuf.DoubleValue",
  "google.protobuf.FloatValue",
  "google.protobuf.Int64Value",
  "google.protobuf.UInt64Value",
  "google.protobuf.Int32Value",
  "google.protobuf.UInt32Value",
  "google.protobuf.BoolValue",
  "google.protobuf.StringValue",
  "google.protobuf.BytesValue",
]);
/** Well-known types whose JSON is not an object of fields: inside an Any they sit under "value". */
const SPECIAL = new Set([
  ...WRAPPERS,
  "google.protobuf.Duration",
  "google.protobuf.Timestamp",
  "google.protobuf.Struct",
  "google.protobuf.Value",
  "google.protobuf.ListValue",
  ANY,
]);

/** A scalar as read, before its JSON form: bigint for 64-bit kinds, Buffer for bytes. */
type Raw = number | bigint | boolean | string | Buffer;

function wireTypeOf(kind: FieldInfo["kind"]): number {
  switch (kind) {
    case "double":
    case "fixed64":
    case "sfixed64":
      return I64;
    case "float":
    case "fixed32":
    case "sfixed32":
      return I32;
    case "string":
    case "bytes":
    case "message":
      return LEN;
    default:
      return VARINT;
  }
}

function readScalar(kind: ScalarKind | "enum", r: Reader): Raw {
  switch (kind) {
    case "int32":
    case "enum":
      return r.uint32() | 0;
    case "uint32":
      return r.uint32();
    case "sint32": {
      const n = r.uint32();
      return (n >>> 1) ^ -(n & 1);
    }
    case "int64":
      return BigInt.asIntN(64, r.uint64());
    case "uint64":
      return r.uint64();
    case "sint64": {
      const n = r.uint64();
      return (n >> 1n) ^ -(n & 1n);
    }
    case "bool":
      return r.uint64() !== 0n;
    case "fixed32":
      return r.fixed32();
    case "sfixed32":
      return r.sfixed32();
    case "float":
      return r.float();
    case "fixed64":
      return r.fixed64();
    case "sfixed64":
      return BigInt.asIntN(64, r.fixed64());
    case "double":
      return r.double();
    case "string":
      return r.string();
    case "bytes":
      return r.bytes();
  }
}

function isZero(v: Raw): boolean {
  if (typeof v === "number") return Object.is(v, 0);
  if (typeof v === "bigint") return v === 0n;
  if (typeof v === "boolean") return !v;
  return v.length === 0;
}

function zeroOf(kind: ScalarKind): Raw {
  switch (kind) {
    case "bool":
      return false;
    case "string":
      return "";
    case "bytes":
      return Buffer.alloc(0);
    case "int64":
    case "uint64":
    case "sint64":
    case "fixed64":
    case "sfixed64":
      return 0n;
    default:
      return 0;
  }
}

function scalarJson(field: FieldInfo, v: Raw): unknown {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (Buffer.isBuffer(v)) return v.toString("base64");
  if (typeof v === "number") {
    if (field.kind === "enum") return enumName(field.typeName, v) ?? v;
    return Number.isFinite(v) ? v : String(v);
  }
  return v;
}

/** One message being read: each field's value so far, by field index. */
interface Fields {
  /** Scalars and lists as read; for singular message fields, the bytes of each occurrence. */
  readonly values: unknown[];
  /** Per oneof: the index of the member set last. */
  readonly oneofs: number[];
}

function setOneof(state: Fields, field: FieldInfo): void {
  if (field.oneof < 0) return;
  const previous = state.oneofs[field.oneof];
  if (previous !== undefined && previous !== field.index) state.values[previous] = undefined;
  state.oneofs[field.oneof] = field.index;
}

function readField(state: Fields, field: FieldInfo, wireType: number, r: Reader, ctx: Ctx): boolean {
  const valueKind = field.mapKey === undefined ? field.kind : "message";
  const expected = wireTypeOf(valueKind);
  const packable = field.repeated && expected !== LEN;
  if (wireType !== expected && !(packable && wireType === LEN)) return false;
  if (field.mapKey !== undefined) {
    const map = (state.values[field.index] ??= new Map<string, unknown>()) as Map<string, unknown>;
    const [start, end] = r.span();
    const [key, value] = mapEntry(field, new Reader(r.buf, start, end), ctx);
    map.set(key, value);
    return true;
  }
  if (field.repeated) {
    const list = (state.values[field.index] ??= []) as unknown[];
    if (field.kind === "message") {
      const [start, end] = r.span();
      list.push(
        decodeInto(field.typeName, new Reader(r.buf, start, end), ctx, `${ctx.path}[${list.length}]`),
      );
    } else if (wireType === LEN && packable) {
      const [start, end] = r.span();
      const packed = new Reader(r.buf, start, end);
      while (!packed.done) list.push(readScalar(field.kind, packed));
    } else {
      list.push(readScalar(field.kind, r));
    }
    return true;
  }
  setOneof(state, field);
  if (field.kind === "message") {
    // Merged with an earlier occurrence: decoding the concatenation is protobuf's merge.
    const [start, end] = r.span();
    const seen = state.values[field.index] as Buffer[] | undefined;
    const bytes = r.buf.subarray(start, end);
    if (seen === undefined) state.values[field.index] = [bytes];
    else seen.push(bytes);
  } else {
    state.values[field.index] = readScalar(field.kind, r);
  }
  return true;
}

function mapEntry(field: FieldInfo, r: Reader, ctx: Ctx): [string, unknown] {
  let key: Raw | undefined;
  let value: unknown;
  const keyKind = field.mapKey as ScalarKind;
  while (!r.done) {
    const [number, wireType] = r.tag();
    if (number === 1 && wireType === wireTypeOf(keyKind)) {
      key = readScalar(keyKind, r);
    } else if (number === 2 && wireType === wireTypeOf(field.kind)) {
      if (field.kind === "message") {
        const [start, end] = r.span();
        value = new Reader(r.buf, start, end);
      } else {
        value = readScalar(field.kind, r);
      }
    } else {
      r.skip(wireType, number);
    }
  }
  const k = key === undefined ? zeroOf(keyKind) : key;
  const name = Buffer.isBuffer(k) ? k.toString("base64") : String(k);
  const path = `${ctx.path}[${JSON.stringify(name)}]`;
  if (field.kind === "message") {
    const inner = value instanceof Reader ? value : new Reader(Buffer.alloc(0));
    return [name, decodeInto(field.typeName, inner, ctx, path)];
  }
  const raw = value === undefined ? zeroOf(field.kind === "enum" ? "int32" : field.kind) : (value as Raw);
  return [name, scalarJson(field, raw)];
}

interface Ctx {
  readonly depth: number;
  readonly path: string;
}

function decodeInto(typeName: string, r: Reader, parent: Ctx, path: string): unknown {
  const ctx = { depth: parent.depth + 1, path };
  if (ctx.depth > MAX_DEPTH) throw new WireError(`messages nested deeper than ${MAX_DEPTH}`);
  const info = messageInfo(typeName);
  if (info === undefined) throw new WireError(`${typeName} is not in Tether's Envoy subset`);
  if (typeName === ANY) return anyJson(r, ctx);
  const json = messageJson(info, r, ctx);
  return SPECIAL.has(typeName) ? specialJson(info, json) : json;
}

function messageJson(info: MessageInfo, r: Reader, ctx: Ctx): Obj {
  const state: Fields = { values: new Array<unknown>(info.fields.length), oneofs: [] };
  while (!r.done) {
    const [number, wireType] = r.tag();
    if (wireType === EGROUP) throw new WireError(`unexpected end of group ${number}`);
    const field = info.byNumber.get(number);
    if (
      field === undefined ||
      !readField(state, field, wireType, r, { ...ctx, path: join(ctx.path, field.name) })
    )
      r.skip(wireType, number);
  }
  const out: Obj = {};
  for (const field of info.fields) {
    const value = state.values[field.index];
    if (value === undefined) continue;
    const path = join(ctx.path, field.name);
    if (field.mapKey !== undefined) {
      const map = value as Map<string, unknown>;
      if (map.size > 0) out[field.name] = Object.fromEntries(map);
    } else if (field.repeated) {
      const list = value as unknown[];
      if (list.length === 0) continue;
      out[field.name] = field.kind === "message" ? list : list.map((v) => scalarJson(field, v as Raw));
    } else if (field.kind === "message") {
      const parts = value as Buffer[];
      const bytes = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
      out[field.name] = decodeInto(field.typeName, new Reader(bytes), ctx, path);
    } else {
      // Implicit presence (proto3 scalars outside a oneof): the zero value means "not set".
      if (field.oneof < 0 && isZero(value as Raw)) continue;
      out[field.name] = scalarJson(field, value as Raw);
    }
  }
  return out;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function anyJson(r: Reader, ctx: Ctx): Obj {
  let typeUrl = "";
  let value: Buffer = Buffer.alloc(0);
  while (!r.done) {
    const [number, wireType] = r.tag();
    if (number === 1 && wireType === LEN) typeUrl = r.string();
    else if (number === 2 && wireType === LEN) value = r.bytes();
    else r.skip(wireType, number);
  }
  return unpackAt(typeUrl, value, ctx);
}

/** The message type an Any's type URL names, or an error naming the path. */
function typeNameForUrl(typeUrl: string, path: string): string {
  const slash = typeUrl.lastIndexOf("/");
  const name = slash < 0 ? "" : typeUrl.slice(slash + 1);
  if (name === "" || messageInfo(name) === undefined)
    throw new XdsJsonError(path, `unknown @type ${JSON.stringify(typeUrl)} (not in Tether's Envoy subset)`);
  return name;
}

function unpackAt(typeUrl: string, value: Buffer, ctx: Ctx): Obj {
  const name = typeNameForUrl(typeUrl, ctx.path);
  let body: unknown;
  try {
    body = decodeInto(name, new Reader(value), { depth: ctx.depth, path: ctx.path }, ctx.path);
  } catch (err) {
    if (err instanceof WireError)
      throw new XdsJsonError(ctx.path, `cannot decode ${typeUrl}: ${err.message}`);
    throw err;
  }
  return SPECIAL.has(name) ? { "@type": typeUrl, value: body } : { "@type": typeUrl, ...(body as Obj) };
}

function int64Json(v: unknown): number {
  return typeof v === "string" ? Number(v) : typeof v === "number" ? v : 0;
}

function durationJson(json: Obj): string {
  const seconds = int64Json(json["seconds"]);
  const nanos = int64Json(json["nanos"]);
  const negative = seconds < 0 || nanos < 0;
  // protojson's canonical form, as Envoy and go-control-plane print it: 0, 3, 6 or 9 fractional
  // digits ("30s", "1.500s", "0.000250s").
  let fraction = nanos === 0 ? "" : `.${String(Math.abs(nanos)).padStart(9, "0")}`;
  while (fraction.endsWith("000")) fraction = fraction.slice(0, -3);
  return `${negative ? "-" : ""}${String(Math.abs(seconds))}${fraction}s`;
}

function valueJson(json: Obj): unknown {
  if ("struct_value" in json) return json["struct_value"];
  if ("list_value" in json) return json["list_value"];
  for (const key of ["number_value", "string_value", "bool_value"]) if (key in json) return json[key];
  return null;
}

/** The JSON of a well-known type, from its fields' JSON (nested values already converted). */
function specialJson(info: MessageInfo, json: Obj): unknown {
  switch (info.name) {
    case "google.protobuf.Duration":
      return durationJson(json);
    case "google.protobuf.Timestamp": {
      const ms = int64Json(json["seconds"]) * 1000 + Math.floor(int64Json(json["nanos"]) / 1e6);
      return new Date(ms).toISOString();
    }
    case "google.protobuf.Struct":
      return json["fields"] ?? {};
    case "google.protobuf.Value":
      return valueJson(json);
    case "google.protobuf.ListValue":
      return json["values"] ?? [];
    default: {
      // A wrapper: its value, the zero value when absent.
      const field = info.fields[0] as FieldInfo;
      return json["value"] ?? scalarJson(field, zeroOf(field.kind as ScalarKind));
    }
  }
}

/**
 * The JSON of an Any-packed resource (without "@type"). Throws XdsJsonError naming `path`: for a
 * type URL outside Tether's Envoy subset (also of a nested Any), or bytes that are not a message.
 */
export function unpackResource(typeUrl: string, value: Uint8Array, path = ""): Obj {
  const bytes = Buffer.isBuffer(value)
    ? value
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const json = unpackAt(typeUrl, bytes, { depth: 0, path });
  const { "@type": _type, ...body } = json;
  return body;
}
