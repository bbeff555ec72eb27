// Envoy's binary messages -> their JSON form, straight from the wire with the compact table
// (wire-table.ts): the ADS client's decoder. It gives what the proto3 JSON mapping gives with proto
// field names (the form the sidecar's YAML has), as json.ts documents it: Any as {"@type": …},
// Duration as "1.5s", wrappers as plain values, Struct/Value as plain JSON, enums by name (a number
// the enum does not define stays a number), 64-bit integers as numbers while exact, else decimal
// strings, bytes in base64, zero values of fields without presence left out.
//
// The parsing rules are those of Go's protobuf (go-control-plane's): unknown fields are skipped, a
// known field arriving with another wire type is treated as unknown, repeated scalars are read
// packed or not, the last value of a singular field wins, a message field seen twice is merged (in
// one pass: parsed into the same state), the last member of a oneof clears the others, strings must
// be UTF-8. What protojson refuses to print is an error here too: a Duration out of range or with
// mixed signs, a Value with no kind or a non-finite number. Malformed bytes throw, naming the Any
// being decoded; nothing a control plane sends can do more than that.
import { EGROUP, I32, I64, LEN, MAX_DEPTH, Reader, VARINT, WireError } from "./protowire.ts";
import { XdsJsonError, durationText, joinPath } from "./types.ts";
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

/**
 * One message as parsed: each field's value by field index (a scalar as read; a State for a message
 * field; a list for a repeated field; a Map for a map field), and per oneof the member set last.
 * Parsing fills it in one pass, merging as protobuf does: a message field seen again is parsed into
 * the same State, so every byte is read once however the input repeats itself.
 */
interface State {
  readonly info: MessageInfo;
  readonly values: unknown[];
  readonly oneofs: number[];
  /** How deep it sits (Any payloads included): bounded by MAX_DEPTH. */
  readonly depth: number;
}

/**
 * How many messages one decoding may build (by default one resource; the client passes one budget
 * for a whole response). Each costs memory however few bytes it took on the wire (an empty message
 * is 2 bytes), so a 4 MiB response of empty messages would otherwise cost hundreds of MB. Envoy's
 * own configs stay far below: an EDS resource of 10,000 endpoints is ~60,000 messages.
 */
export const MAX_MESSAGES = 250_000;

export interface MessageBudget {
  remaining: number;
}

export function messageBudget(): MessageBudget {
  return { remaining: MAX_MESSAGES };
}

/** The budget of the decoding under way (decoding is synchronous: one at a time). */
let budget: MessageBudget = messageBudget();

function newState(typeName: string, depth: number): State {
  if (depth > MAX_DEPTH) throw new WireError(`messages nested deeper than ${MAX_DEPTH}`);
  if (--budget.remaining < 0) throw new WireError(`more than ${MAX_MESSAGES} messages`);
  const info = messageInfo(typeName);
  if (info === undefined) throw new WireError(`${typeName} is not in Tether's Envoy subset`);
  // The arrays grow as fields are set: an empty message costs little.
  return { info, values: [], oneofs: [], depth };
}

function parseInto(state: State, r: Reader): State {
  while (!r.done) {
    const [number, wireType] = r.tag();
    if (wireType === EGROUP) throw new WireError(`unexpected end of group ${number}`);
    const field = state.info.byNumber.get(number);
    if (field === undefined || !readField(state, field, wireType, r)) r.skip(wireType, number);
  }
  return state;
}

function sub(r: Reader): Reader {
  const [start, end] = r.span();
  return new Reader(r.buf, start, end);
}

function setOneof(state: State, field: FieldInfo): void {
  if (field.oneof < 0) return;
  const previous = state.oneofs[field.oneof];
  if (previous !== undefined && previous !== field.index) state.values[previous] = undefined;
  state.oneofs[field.oneof] = field.index;
}

/** Reads one occurrence of a known field; false when its wire type makes it an unknown field. */
function readField(state: State, field: FieldInfo, wireType: number, r: Reader): boolean {
  const valueKind = field.mapKey === undefined ? field.kind : "message";
  const expected = wireTypeOf(valueKind);
  const packable = field.repeated && expected !== LEN;
  if (wireType !== expected && !(packable && wireType === LEN)) return false;
  const depth = state.depth + 1;
  if (field.mapKey !== undefined) {
    const map = (state.values[field.index] ??= new Map<string, unknown>()) as Map<string, unknown>;
    const [key, value] = mapEntry(field, sub(r), depth);
    map.set(key, value);
  } else if (field.repeated) {
    const list = (state.values[field.index] ??= []) as unknown[];
    if (field.kind === "message") {
      list.push(parseInto(newState(field.typeName, depth), sub(r)));
    } else if (packable && wireType === LEN) {
      const packed = sub(r);
      while (!packed.done) list.push(readScalar(field.kind, packed));
    } else {
      list.push(readScalar(field.kind, r));
    }
  } else {
    setOneof(state, field);
    if (field.kind === "message") {
      const seen = state.values[field.index] as State | undefined;
      state.values[field.index] = parseInto(seen ?? newState(field.typeName, depth), sub(r));
    } else {
      state.values[field.index] = readScalar(field.kind, r);
    }
  }
  return true;
}

/** A map entry (key = 1, value = 2), each defaulting to its zero value; a message value merges. */
function mapEntry(field: FieldInfo, r: Reader, depth: number): [string, unknown] {
  const keyKind = field.mapKey as ScalarKind;
  let key: Raw = zeroOf(keyKind);
  let value: unknown;
  while (!r.done) {
    const [number, wireType] = r.tag();
    if (number === 1 && wireType === wireTypeOf(keyKind)) {
      key = readScalar(keyKind, r);
    } else if (number === 2 && wireType === wireTypeOf(field.kind)) {
      if (field.kind === "message") {
        value = parseInto((value as State | undefined) ?? newState(field.typeName, depth + 1), sub(r));
      } else {
        value = readScalar(field.kind, r);
      }
    } else {
      r.skip(wireType, number);
    }
  }
  const name = Buffer.isBuffer(key) ? key.toString("base64") : String(key);
  if (value === undefined) {
    value = field.kind === "message" ? newState(field.typeName, depth + 1) : zeroOf(scalarKindOf(field));
  }
  return [name, value];
}

function scalarKindOf(field: FieldInfo): ScalarKind {
  return field.kind === "enum" ? "int32" : (field.kind as ScalarKind);
}

// ---------------------------------------------------------------------------------------------
// A parsed State -> Envoy's JSON form

function jsonOf(state: State, path: string): unknown {
  switch (state.info.name) {
    case ANY:
      return anyJson(state, path);
    case "google.protobuf.Duration":
      return durationJson(state, path);
    case "google.protobuf.Timestamp":
      return timestampJson(state, path);
    case "google.protobuf.Struct":
      return mapJson(state, "fields", path);
    case "google.protobuf.Value":
      return valueJson(state, path);
    case "google.protobuf.ListValue":
      return ((raw(state, "values") ?? []) as State[]).map((v, i) => jsonOf(v, `${path}[${i}]`));
    default:
      if (WRAPPERS.has(state.info.name)) {
        const field = state.info.fields[0] as FieldInfo;
        return scalarJson(field, (state.values[0] as Raw | undefined) ?? zeroOf(scalarKindOf(field)));
      }
      return messageJson(state, path);
  }
}

function messageJson(state: State, path: string): Obj {
  const out: Obj = {};
  for (const field of state.info.fields) {
    const value = state.values[field.index];
    if (value === undefined) continue;
    const p = joinPath(path, field.name);
    if (field.mapKey !== undefined) {
      const map = value as Map<string, unknown>;
      if (map.size > 0) out[field.name] = mapValuesJson(field, map, p);
    } else if (field.repeated) {
      const list = value as unknown[];
      if (list.length === 0) continue;
      out[field.name] =
        field.kind === "message"
          ? list.map((v, i) => jsonOf(v as State, `${p}[${i}]`))
          : list.map((v) => scalarJson(field, v as Raw));
    } else if (field.kind === "message") {
      out[field.name] = jsonOf(value as State, p);
    } else {
      // Implicit presence (proto3 scalars outside a oneof): the zero value means "not set".
      if (field.oneof < 0 && isZero(value as Raw)) continue;
      out[field.name] = scalarJson(field, value as Raw);
    }
  }
  return out;
}

function mapValuesJson(field: FieldInfo, map: Map<string, unknown>, path: string): Obj {
  const out: Obj = {};
  for (const [k, v] of map) {
    // defineProperty: a key such as "__proto__" is a key like any other.
    const value =
      field.kind === "message"
        ? jsonOf(v as State, `${path}[${JSON.stringify(k)}]`)
        : scalarJson(field, v as Raw);
    Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function mapJson(state: State, name: string, path: string): Obj {
  const field = state.info.fields.find((f) => f.name === name) as FieldInfo;
  const map = state.values[field.index] as Map<string, unknown> | undefined;
  return map === undefined ? {} : mapValuesJson(field, map, path);
}

/** A field's parsed value by name (well-known types only: a handful of fields). */
function raw(state: State, name: string): unknown {
  const field = state.info.fields.find((f) => f.name === name);
  return field === undefined ? undefined : state.values[field.index];
}

function anyJson(state: State, path: string): Obj {
  const typeUrl = (raw(state, "type_url") as string | undefined) ?? "";
  const value = (raw(state, "value") as Buffer | undefined) ?? Buffer.alloc(0);
  // An empty Any (no type, no bytes) prints as {}, as protojson prints it.
  if (typeUrl === "" && value.length === 0) return {};
  return unpackAt(typeUrl, value, path, state.depth);
}

/** The message type an Any's type URL names (what follows its last "/"), or an error naming the path. */
function typeNameForUrl(typeUrl: string, path: string): string {
  const name = typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
  if (name === "" || messageInfo(name) === undefined)
    throw new XdsJsonError(path, `unknown @type ${JSON.stringify(typeUrl)} (not in Tether's Envoy subset)`);
  return name;
}

function unpackAt(typeUrl: string, value: Buffer, path: string, depth: number): Obj {
  const name = typeNameForUrl(typeUrl, path);
  let state: State;
  try {
    state = parseInto(newState(name, depth + 1), new Reader(value));
  } catch (err) {
    if (err instanceof WireError) throw new XdsJsonError(path, `cannot decode ${typeUrl}: ${err.message}`);
    throw err;
  }
  const body = jsonOf(state, path);
  return SPECIAL.has(name) ? { "@type": typeUrl, value: body } : { "@type": typeUrl, ...(body as Obj) };
}

const MAX_DURATION_SECONDS = 315_576_000_000n;
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of protobuf's Timestamp. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

function durationJson(state: State, path: string): string {
  const seconds = (raw(state, "seconds") as bigint | undefined) ?? 0n;
  const nanos = (raw(state, "nanos") as number | undefined) ?? 0;
  // protojson's rules: at most 10,000 years, |nanos| below a second, both of one sign.
  if (seconds > MAX_DURATION_SECONDS || seconds < -MAX_DURATION_SECONDS)
    throw new XdsJsonError(path, `Duration of ${seconds} seconds is out of range`);
  if (nanos <= -1e9 || nanos >= 1e9) throw new XdsJsonError(path, `Duration nanos ${nanos} is out of range`);
  if ((seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0))
    throw new XdsJsonError(path, `Duration seconds ${seconds} and nanos ${nanos} differ in sign`);
  const negative = seconds < 0n || nanos < 0;
  const whole = (seconds < 0n ? -seconds : seconds).toString();
  return durationText(negative, whole, nanos);
}

function timestampJson(state: State, path: string): string {
  const seconds = (raw(state, "seconds") as bigint | undefined) ?? 0n;
  const nanos = (raw(state, "nanos") as number | undefined) ?? 0;
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS || nanos < 0 || nanos >= 1e9)
    throw new XdsJsonError(path, `Timestamp ${seconds}s ${nanos}ns is out of range`);
  return new Date(Number(seconds) * 1000 + Math.floor(nanos / 1e6)).toISOString();
}

function valueJson(state: State, path: string): unknown {
  const kind = state.oneofs[0];
  const field = kind === undefined ? undefined : state.info.fields[kind];
  const value = kind === undefined ? undefined : state.values[kind];
  if (field === undefined || value === undefined)
    throw new XdsJsonError(path, "a google.protobuf.Value with none of its kinds set");
  switch (field.name) {
    case "null_value":
      return null;
    case "number_value": {
      const n = value as number;
      if (!Number.isFinite(n)) throw new XdsJsonError(path, `a JSON number cannot be ${String(n)}`);
      return n;
    }
    case "struct_value":
    case "list_value":
      return jsonOf(value as State, path);
    default:
      return value;
  }
}

/**
 * The JSON of an Any-packed resource (without "@type"). Throws XdsJsonError naming `path`: for a
 * type URL outside Tether's Envoy subset (also of a nested Any), or bytes that are not a message.
 */
export function unpackResource(
  typeUrl: string,
  value: Uint8Array,
  path = "",
  within: MessageBudget = messageBudget(),
): Obj {
  const bytes = Buffer.isBuffer(value)
    ? value
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  budget = within;
  const { "@type": _type, ...body } = unpackAt(typeUrl, bytes, path, 0);
  return body;
}
