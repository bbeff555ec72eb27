// Reads an Envoy bootstrap YAML (or JSON) file and validates it against the subset, reporting every
// problem as "path: message" with Envoy-style paths (static_resources.clusters[0].foo).
import { readFile } from "node:fs";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { TetherError } from "../errors.ts";
import { bootstrapSchema, type Bootstrap } from "@tether/envoy";

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

/** One "path: message" line per problem (several for an unknown-keys issue). */
export function describeIssue(issue: z.core.$ZodIssue): string[] {
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
  // An empty, blank or comments-only file is what a truncated or half-written file often looks like.
  if (raw === null || raw === undefined) {
    const message = `${source} is empty`;
    throw new TetherError("TETHER_ERR_CONFIG_EMPTY", message, [message]);
  }
  return { bootstrap: validateBootstrap(raw), raw, text };
}

export interface SettleOptions {
  /** How many more reads wait for two in a row to agree. Default 5. */
  readonly attempts?: number;
  /** Pause between reads. Default 20 ms. */
  readonly intervalMs?: number;
  readonly read?: (file: string) => Promise<string>;
  readonly sleep?: (ms: number) => Promise<void>;
}

async function readText(file: string, read: (file: string) => Promise<string>): Promise<string> {
  try {
    return await read(file);
  } catch (err) {
    const message = `cannot read ${file}: ${(err as Error).message}`;
    throw new TetherError("TETHER_ERR_CONFIG_READ", message, [message]);
  }
}

/**
 * `fs.readFile` as a promise. Not `node:fs/promises`: that module brings FileHandle, readline and the
 * REPL's history along (~0.2 MB of heap in every sidecar, for one read of a small file).
 */
function readUtf8(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    readFile(file, "utf8", (err, text) => {
      if (err === null) resolve(text);
      else reject(err);
    });
  });
}

/**
 * Reads `file` until two reads `intervalMs` apart agree, so a file caught while it is being written
 * (truncated, then filled) is not trusted; throws TETHER_ERR_CONFIG_READ if it never settles.
 */
export async function readSettled(file: string, options: SettleOptions = {}): Promise<string> {
  const read = options.read ?? readUtf8;
  const sleep = options.sleep ?? ((ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms)));
  const attempts = options.attempts ?? 5;
  const intervalMs = options.intervalMs ?? 20;
  let previous = await readText(file, read);
  for (let i = 0; i < attempts; i++) {
    await sleep(intervalMs);
    const text = await readText(file, read);
    if (text === previous) return text;
    previous = text;
  }
  const message = `${file} kept changing while being read (${attempts + 1} reads ${intervalMs} ms apart)`;
  throw new TetherError("TETHER_ERR_CONFIG_READ", message, [message]);
}

export async function loadConfigFile(file: string, options: SettleOptions = {}): Promise<LoadedConfig> {
  return parseConfigText(await readSettled(file, options), file);
}
