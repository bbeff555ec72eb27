import type { z } from "zod";
import { crdMeta, type CrdMeta } from "./rules.ts";

/** A node of a structural OpenAPI v3 schema, as a CustomResourceDefinition holds it. */
export interface OpenApiSchema {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  properties?: Record<string, OpenApiSchema>;
  required?: string[];
  additionalProperties?: OpenApiSchema;
  items?: OpenApiSchema;
  enum?: readonly (string | number)[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  "x-kubernetes-preserve-unknown-fields"?: true;
  "x-kubernetes-list-type"?: string;
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-validations"?: { rule: string; message: string; fieldPath?: string }[];
}

/** The subset of zod's internal definition this converter reads. */
interface ZodDef {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  entries?: Record<string, string | number>;
  format?: string;
  checks?: { _zod: { def: CheckDef } }[];
}

interface CheckDef {
  check: string;
  value?: number;
  inclusive?: boolean;
  minimum?: number;
  maximum?: number;
  format?: string;
  pattern?: RegExp;
}

function defOf(schema: z.ZodType): ZodDef {
  return (schema as unknown as { _zod: { def: ZodDef } })._zod.def;
}

/** Thrown for a zod construct the CRD generator cannot express; names the path. */
export class SchemaConversionError extends Error {
  readonly code = "TETHER_ERR_SCHEMA_CONVERSION";
}

/**
 * Converts a zod schema into a structural OpenAPI v3 schema for a CRD: every node typed,
 * defaults and ranges carried over, CRD metadata (descriptions, CEL rules, list types) applied.
 */
export function toOpenApi(schema: z.ZodType, path = "spec"): OpenApiSchema {
  return convert(schema, path).node;
}

function convert(schema: z.ZodType, path: string): { node: OpenApiSchema; optional: boolean } {
  const def = defOf(schema);
  const meta: CrdMeta = crdMeta.get(schema) ?? {};
  let result: { node: OpenApiSchema; optional: boolean };
  switch (def.type) {
    case "optional":
      result = { node: convert(inner(def, path), path).node, optional: true };
      break;
    case "default":
    case "prefault": {
      // A prefault ({}) is parsed by the inner schema, so the CRD default must be that output: the
      // API server checks a default against the CEL rules, and `{}` lacks the fields they read.
      const innerSchema = inner(def, path);
      const value = def.type === "prefault" ? innerSchema.parse(def.defaultValue) : def.defaultValue;
      result = { node: { ...convert(innerSchema, path).node, default: value }, optional: true };
      break;
    }
    default:
      result = { node: convertBase(def, path), optional: false };
  }
  applyMeta(result.node, meta);
  return result;
}

function inner(def: ZodDef, path: string): z.ZodType {
  if (!def.innerType) throw new SchemaConversionError(`${path}: ${def.type} without an inner type`);
  return def.innerType;
}

function convertBase(def: ZodDef, path: string): OpenApiSchema {
  switch (def.type) {
    case "object":
      return convertObject(def, path);
    case "array": {
      if (!def.element) throw new SchemaConversionError(`${path}: array without element`);
      const node: OpenApiSchema = { type: "array", items: convert(def.element, `${path}[]`).node };
      applyChecks(node, def, "items");
      return node;
    }
    case "record": {
      if (!def.valueType) throw new SchemaConversionError(`${path}: record without value type`);
      return { type: "object", additionalProperties: convert(def.valueType, `${path}.*`).node };
    }
    case "string": {
      const node: OpenApiSchema = { type: "string" };
      applyChecks(node, def, "length");
      return node;
    }
    case "number": {
      const node: OpenApiSchema = {
        type: def.format === "safeint" || isIntChecked(def) ? "integer" : "number",
      };
      applyChecks(node, def, "value");
      return node;
    }
    case "boolean":
      return { type: "boolean" };
    case "enum": {
      const values = Object.values(def.entries ?? {});
      return { type: typeof values[0] === "number" ? "integer" : "string", enum: values };
    }
    default:
      throw new SchemaConversionError(`${path}: zod type "${def.type}" has no CRD form`);
  }
}

function isIntChecked(def: ZodDef): boolean {
  return (def.checks ?? []).some(
    (c) => c._zod.def.check === "number_format" && c._zod.def.format === "safeint",
  );
}

function convertObject(def: ZodDef, path: string): OpenApiSchema {
  const properties: Record<string, OpenApiSchema> = {};
  const required: string[] = [];
  for (const [name, field] of Object.entries(def.shape ?? {})) {
    const { node, optional } = convert(field, `${path}.${name}`);
    properties[name] = node;
    if (!optional) required.push(name);
  }
  const node: OpenApiSchema = { type: "object" };
  if (Object.keys(properties).length > 0) node.properties = properties;
  if (required.length > 0) node.required = required;
  return node;
}

function applyChecks(node: OpenApiSchema, def: ZodDef, kind: "length" | "items" | "value"): void {
  for (const { _zod } of def.checks ?? []) {
    const c = _zod.def;
    switch (c.check) {
      case "min_length":
        if (kind === "items") node.minItems = c.minimum;
        else node.minLength = c.minimum;
        break;
      case "max_length":
        if (kind === "items") node.maxItems = c.maximum;
        else node.maxLength = c.maximum;
        break;
      case "greater_than":
        if (c.inclusive !== true)
          throw new SchemaConversionError("exclusive minimum is not used by Tether's API");
        node.minimum = c.value;
        break;
      case "less_than":
        if (c.inclusive !== true)
          throw new SchemaConversionError("exclusive maximum is not used by Tether's API");
        node.maximum = c.value;
        break;
      case "string_format":
        if (c.pattern) node.pattern = c.pattern.source;
        break;
      default:
        // number_format (integers) is carried by the type; custom checks carry their CEL in metadata.
        break;
    }
  }
}

function applyMeta(node: OpenApiSchema, meta: CrdMeta): void {
  if (meta.description !== undefined) node.description = meta.description;
  if (meta.format !== undefined) node.format = meta.format;
  if (meta.preserveUnknownFields === true) node["x-kubernetes-preserve-unknown-fields"] = true;
  if (meta.listType !== undefined) node["x-kubernetes-list-type"] = meta.listType;
  if (meta.listMapKeys !== undefined) node["x-kubernetes-list-map-keys"] = [...meta.listMapKeys];
  if (meta.rules !== undefined && meta.rules.length > 0) {
    node["x-kubernetes-validations"] = meta.rules.map((r) => ({
      rule: r.rule,
      message: r.message,
      ...(r.fieldPath !== undefined ? { fieldPath: r.fieldPath } : {}),
    }));
  }
}
