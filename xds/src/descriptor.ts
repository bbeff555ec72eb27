// The protobuf descriptor of Tether's Envoy subset, loaded once on first use from the JSON that
// xds/scripts/generate.ts wrote (a few hundred message types, not all of Envoy's API).
import { readFileSync } from "node:fs";
import protobuf from "protobufjs";
import { XdsError } from "./types.ts";

let root: protobuf.Root | undefined;

/** The generated descriptor's root namespace (parsed on first call). */
export function protoRoot(): protobuf.Root {
  if (root === undefined) {
    const text = readFileSync(new URL("../generated/envoy-subset.json", import.meta.url), "utf8");
    const loaded = protobuf.Root.fromJSON(JSON.parse(text) as protobuf.INamespace);
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

const types = new Map<string, protobuf.Type>();

/** The message type with this full name (no leading dot), or undefined outside the subset. */
export function findMessageType(fullName: string): protobuf.Type | undefined {
  let type = types.get(fullName);
  if (type === undefined) {
    const found = protoRoot().lookup(fullName);
    if (!(found instanceof protobuf.Type)) return undefined;
    type = found;
    types.set(fullName, type);
  }
  return type;
}

/** The message type with this full name; throws if Tether's subset does not have it. */
export function messageType(fullName: string): protobuf.Type {
  const type = findMessageType(fullName);
  if (type === undefined) throw new XdsError("TETHER_ERR_XDS_UNKNOWN_TYPE", `unknown message type ${fullName}`);
  return type;
}
