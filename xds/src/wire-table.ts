// The ADS client's view of Tether's Envoy subset: per message type, its fields by number, read from
// the compact table xds/generated/envoy-subset.wire.json (format in xds/scripts/wire-table.ts). A type's
// entry is parsed the first time a message of that type is decoded, so a sidecar holds only the few
// dozen types its config uses, not a reflection object per field of all ~375.
import { readFileSync } from "node:fs";

export type ScalarKind =
  | "double"
  | "float"
  | "int32"
  | "int64"
  | "uint32"
  | "uint64"
  | "sint32"
  | "sint64"
  | "fixed32"
  | "fixed64"
  | "sfixed32"
  | "sfixed64"
  | "bool"
  | "string"
  | "bytes";

export interface FieldInfo {
  readonly name: string;
  readonly number: number;
  /** A scalar type, or "message" / "enum" with `typeName`. */
  readonly kind: ScalarKind | "message" | "enum";
  readonly typeName: string;
  readonly repeated: boolean;
  /** A map's key type (the value is `kind`/`typeName`). */
  readonly mapKey: ScalarKind | undefined;
  /** The index of the oneof the field belongs to, or -1. */
  readonly oneof: number;
  /** The field's index in its message's `fields`. */
  readonly index: number;
}

export interface MessageInfo {
  readonly name: string;
  /** In the proto's order: the order of the JSON keys. */
  readonly fields: readonly FieldInfo[];
  readonly byNumber: ReadonlyMap<number, FieldInfo>;
}

interface Table {
  readonly messages: Record<string, string>;
  readonly enums: Record<string, string>;
}

const SCALARS = new Set<string>([
  "double",
  "float",
  "int32",
  "int64",
  "uint32",
  "uint64",
  "sint32",
  "sint64",
  "fixed32",
  "fixed64",
  "sfixed32",
  "sfixed64",
  "bool",
  "string",
  "bytes",
]);

let table: Table | undefined;
const messages = new Map<string, MessageInfo>();
const enums = new Map<string, ReadonlyMap<number, string>>();

function loaded(): Table {
  return (table ??= JSON.parse(
    readFileSync(new URL("../generated/envoy-subset.wire.json", import.meta.url), "utf8"),
  ) as Table);
}

function scalar(kind: string, where: string): ScalarKind {
  if (!SCALARS.has(kind)) throw new Error(`wire table: ${where}: unknown scalar type ${kind}`);
  return kind as ScalarKind;
}

function parseField(spec: string, index: number, owner: string): FieldInfo {
  const [name = "", number = "", type = "", flag = "", flag2 = ""] = spec.split(",");
  const where = `${owner}.${name}`;
  const t = loaded();
  const kind = Object.hasOwn(t.messages, type)
    ? "message"
    : Object.hasOwn(t.enums, type)
      ? "enum"
      : scalar(type, where);
  let repeated = false;
  let mapKey: ScalarKind | undefined;
  let oneof = -1;
  for (const f of [flag, flag2]) {
    if (f === "r") repeated = true;
    else if (f.startsWith("m:")) mapKey = scalar(f.slice(2), where);
    else if (f.startsWith("o")) oneof = Number(f.slice(1));
  }
  return { name, number: Number(number), kind, typeName: type, repeated, mapKey, oneof, index };
}

/** The message type with this full name (no leading dot), or undefined outside the subset. */
export function messageInfo(fullName: string): MessageInfo | undefined {
  let info = messages.get(fullName);
  if (info === undefined) {
    // Own keys only: a type URL naming "constructor" or "__proto__" is simply not in the table.
    const messagesTable = loaded().messages;
    if (!Object.hasOwn(messagesTable, fullName)) return undefined;
    const spec = messagesTable[fullName] as string;
    const fields = spec === "" ? [] : spec.split(";").map((f, i) => parseField(f, i, fullName));
    info = { name: fullName, fields, byNumber: new Map(fields.map((f) => [f.number, f])) };
    messages.set(fullName, info);
  }
  return info;
}

/** An enum value's name, or undefined for a number the enum does not define. */
export function enumName(fullName: string, value: number): string | undefined {
  let values = enums.get(fullName);
  if (values === undefined) {
    const enumsTable = loaded().enums;
    const spec = Object.hasOwn(enumsTable, fullName) ? (enumsTable[fullName] as string) : "";
    const map = new Map<number, string>();
    for (const pair of spec === "" ? [] : spec.split(",")) {
      const eq = pair.indexOf("=");
      const n = Number(pair.slice(eq + 1));
      // Aliases (allow_alias): the first name declared is the one printed, as protojson does.
      if (!map.has(n)) map.set(n, pair.slice(0, eq));
    }
    values = map;
    enums.set(fullName, values);
  }
  return values.get(value);
}
