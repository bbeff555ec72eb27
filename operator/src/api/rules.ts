import { z } from "zod";

/**
 * A cross-field validation rule, written once and enforced twice: as a CEL
 * `x-kubernetes-validations` rule by the API server, and as a zod refinement wherever the
 * operator parses a resource. `test` must agree with `rule`; the invalid-resource table checks both.
 */
export interface CrossFieldRule<T> {
  /** CEL expression over `self`, evaluated by the API server. */
  readonly rule: string;
  /** One line for a person, naming the fields involved. */
  readonly message: string;
  /** Where the API server reports the error, relative to `self` (e.g. `.timeout`). */
  readonly fieldPath?: string;
  /** The same check in TypeScript; true when the value is valid. */
  readonly test: (self: T) => boolean;
}

/** The metadata this package attaches to zod schemas for CRD generation. */
export interface CrdMeta {
  description?: string;
  rules?: readonly CrossFieldRule<never>[];
  /** Keep fields the schema does not list (pod templates, resource requirements). */
  preserveUnknownFields?: boolean;
  /** `x-kubernetes-list-type` for arrays. */
  listType?: "atomic" | "set" | "map";
  listMapKeys?: readonly string[];
  /** OpenAPI `format` the API server checks (e.g. `date-time`, RFC 3339). */
  format?: "date-time";
}

export const crdMeta = z.registry<CrdMeta>();

/** Attaches CEL-and-zod rules to an object schema. */
export function withRules<S extends z.ZodType>(schema: S, rules: readonly CrossFieldRule<z.output<S>>[]): S {
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (passes(r, value)) continue;
      const path = r.fieldPath ? r.fieldPath.replace(/^\./, "").split(".") : [];
      ctx.addIssue({ code: "custom", message: r.message, path });
    }
  });
  const previous = crdMeta.get(schema) ?? {};
  crdMeta.add(refined, {
    ...previous,
    rules: [...(previous.rules ?? []), ...(rules as readonly CrossFieldRule<never>[])],
  });
  return refined;
}

/**
 * Returns a copy of `schema` carrying CRD metadata (description and the rest). A copy, so a shared
 * building block (a duration, a port) can be described differently at each use.
 */
export function annotate<S extends z.ZodType>(schema: S, meta: CrdMeta): S {
  const copy = schema.clone();
  crdMeta.add(copy, { ...(crdMeta.get(schema) ?? {}), ...meta });
  return copy;
}

/** A description for `kubectl explain`. */
export function doc<S extends z.ZodType>(schema: S, description: string): S {
  return annotate(schema, { description });
}

/**
 * zod runs object refinements even when a field already failed; a rule that cannot evaluate its
 * fields (a malformed duration) is skipped, as the API server skips CEL over invalid fields.
 */
function passes<T>(rule: CrossFieldRule<T>, value: T): boolean {
  try {
    return rule.test(value);
  } catch {
    return true;
  }
}
