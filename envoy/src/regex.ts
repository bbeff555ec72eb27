// Envoy's safe_regex is RE2: linear-time matching, no backreferences or lookaround. Tether uses re2js,
// a pure-JavaScript port of RE2, never a backtracking RegExp (a path can make one run for seconds and
// stall the event loop). The engine is loaded on first use, so a config without regexes never pays
// for it (see "Regular expressions" in sidecar/README.md).
import { createRequire } from "node:module";
import type { RE2JS } from "re2js";

type Re2Module = typeof import("re2js");
let engine: Re2Module | undefined;

function re2(): Re2Module {
  // The CommonJS build through require keeps the load synchronous (config validation is synchronous).
  engine ??= createRequire(import.meta.url)("re2js") as Re2Module;
  return engine;
}

/** RE2's reason for refusing `pattern` (backreference, lookaround, bad syntax…), or undefined. */
export function regexProblem(pattern: string): string | undefined {
  try {
    re2().RE2JS.compile(pattern);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A compiled RE2 pattern; throws on a pattern regexProblem refuses (config is validated first). */
export class Re2Regex {
  private readonly re: RE2JS;

  constructor(pattern: string) {
    this.re = re2().RE2JS.compile(pattern);
  }

  /** RE2::FullMatch: the whole of `text` must match. */
  fullMatch(text: string): boolean {
    return this.re.testExact(text);
  }

  get groupCount(): number {
    return this.re.groupCount();
  }

  /**
   * RE2::GlobalReplace: every non-overlapping match replaced by `rewrite` (an empty match right after
   * the previous match is skipped, as RE2 does).
   */
  replaceAll(text: string, rewrite: Rewrite): string {
    const matches = this.re.re2().findAllSubmatchIndex(text, -1) as number[][] | null;
    if (matches === null) return text;
    let out = "";
    let last = 0;
    for (const m of matches) {
      const start = m[0] ?? 0;
      out += text.slice(last, start) + rewrite.apply(text, m);
      last = m[1] ?? start;
    }
    return out + text.slice(last);
  }
}

/**
 * An RE2 rewrite string (Envoy's regex_rewrite substitution): `\0`…`\9` insert a group, `\\` a
 * backslash; everything else is literal.
 */
export class Rewrite {
  /** Literal text and group numbers, in order. */
  private readonly parts: readonly (string | number)[];

  constructor(substitution: string) {
    const { parts, problem } = parseRewrite(substitution);
    if (problem !== undefined) throw new Error(problem);
    this.parts = parts;
  }

  /** The replacement for one match; `m` holds start/end offsets of the whole match and each group. */
  apply(text: string, m: readonly number[]): string {
    let out = "";
    for (const p of this.parts) {
      if (typeof p === "string") {
        out += p;
        continue;
      }
      const start = m[2 * p] ?? -1;
      const end = m[2 * p + 1] ?? -1;
      if (start >= 0 && end >= 0) out += text.slice(start, end); // an unmatched group inserts nothing
    }
    return out;
  }
}

function parseRewrite(substitution: string): { parts: (string | number)[]; problem: string | undefined } {
  const parts: (string | number)[] = [];
  let literal = "";
  for (let i = 0; i < substitution.length; i++) {
    const c = substitution.charAt(i);
    if (c !== "\\") {
      literal += c;
      continue;
    }
    const next = substitution[i + 1];
    i++;
    if (next === "\\") {
      literal += "\\";
    } else if (next !== undefined && next >= "0" && next <= "9") {
      if (literal !== "") parts.push(literal);
      literal = "";
      parts.push(Number(next));
    } else {
      const what = next === undefined ? "a trailing \\" : `\\${next}`;
      return { parts, problem: `invalid rewrite: ${what} (use \\0-\\9 for groups, \\\\ for a backslash)` };
    }
  }
  if (literal !== "") parts.push(literal);
  return { parts, problem: undefined };
}

/** Why `substitution` cannot rewrite matches of a pattern with `groups` groups, or undefined. */
export function rewriteProblem(substitution: string, groups: number): string | undefined {
  const { parts, problem } = parseRewrite(substitution);
  if (problem !== undefined) return problem;
  for (const p of parts) {
    if (typeof p === "number" && p > groups) {
      return `\\${p} refers to a group the pattern does not have (it has ${groups})`;
    }
  }
  return undefined;
}
