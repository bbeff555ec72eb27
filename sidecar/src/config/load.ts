// Reads an Envoy bootstrap YAML (or JSON) file and validates it against the subset, reporting every
// problem as "path: message" with Envoy-style paths (static_resources.clusters[0].foo).
import { readFile } from "node:fs/promises";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { TetherError } from "../errors.ts";
import { bootstrapSchema, type Bootstrap } from "./schema.ts";

export interface LoadedConfig {
  readonly bootstrap: Bootstrap;
  /** The document as written (before defaults), for /config_dump. */
  readonly raw: unknown;
  /** The exact file text, so a watcher can tell a real change from a touch. */
  readonly text: string;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? "(root)" : out;
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  const at = formatPath(issue.path);
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unsupported field`);
  }
  if (issue.code === "invalid_union" && issue.discriminator !== undefined) {
    const options = "options" in issue ? (issue.options?.map(String).join(", ") ?? "") : "";
    return [`${at}: unsupported or missing type (supported: ${options})`];
  }
  if (issue.code === "invalid_type" && issue.message.includes("received undefined")) {
    return [`${at}: required field missing`];
  }
  return [`${at}: ${issue.message}`];
}

/** Validates a parsed document; throws TetherError(TETHER_ERR_CONFIG_INVALID) listing every problem. */
export function validateBootstrap(doc: unknown): Bootstrap {
  const result = bootstrapSchema.safeParse(doc ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap(describeIssue);
  throw new TetherError(
    "TETHER_ERR_CONFIG_INVALID",
    `invalid configuration:\n  ${problems.join("\n  ")}`,
    problems,
  );
}

export function parseConfigText(text: string, source = "config"): LoadedConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => `${source}: ${e.message.split("\n")[0] ?? e.message}`);
    throw new TetherError(
      "TETHER_ERR_CONFIG_YAML",
      `cannot parse ${source}:\n  ${problems.join("\n  ")}`,
      problems,
    );
  }
  const raw: unknown = doc.toJS();
  return { bootstrap: validateBootstrap(raw), raw, text };
}

export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const message = `cannot read ${file}: ${(err as Error).message}`;
    throw new TetherError("TETHER_ERR_CONFIG_READ", message, [message]);
  }
  return parseConfigText(text, file);
}
