import type { z } from "zod";

/** One validation problem, with the dotted path of the offending field (`spec.pool.idleTimeout`). */
export interface FieldError {
  readonly path: string;
  readonly message: string;
}

/** Formats a zod issue path as Kubernetes does: `spec.servers[0].port`. */
export function formatPath(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const key of path) out += typeof key === "number" ? `[${key}]` : `.${String(key)}`;
  return out;
}

/** The problems zod found, each naming its field, in the form `spec.port: Too big ...`. */
export function fieldErrors(root: string, error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => {
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
    const path = formatPath(root, issue.path);
    if (keys.length > 0)
      return { path: keys.map((k) => `${path}.${k}`).join(", "), message: "unsupported field" };
    return { path, message: issue.message };
  });
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** Parses (and defaults) a resource's spec; errors name the offending fields. */
export function parseSpec<S extends z.ZodType>(schema: S, spec: unknown): ParseResult<z.output<S>> {
  const result = schema.safeParse(spec);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, errors: fieldErrors("spec", result.error) };
}

/** One line per problem, for a status condition or a log. */
export function describeErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join("; ");
}
