import { describe, expect, it } from "vitest";
import { Re2Regex, regexProblem, Rewrite, rewriteProblem } from "./regex.ts";

describe("RE2 regexes (re2js)", () => {
  it("refuses what RE2 refuses, with RE2's reason", () => {
    expect(regexProblem("(a)\\1")).toContain("invalid escape sequence: `\\1`");
    expect(regexProblem("(?=x)")).toContain("invalid or unsupported Perl syntax: `(?=`");
    expect(regexProblem("(?<=x)a")).toBeDefined();
    expect(regexProblem("a++")).toContain("invalid nested repetition operator");
    expect(regexProblem("(unclosed")).toContain("missing closing )");
  });

  it("accepts RE2 syntax a JavaScript RegExp would not", () => {
    expect(regexProblem("(?P<name>[[:alpha:]]+)\\z")).toBeUndefined();
    expect(new Re2Regex("(?i)abc").fullMatch("ABC")).toBe(true);
  });

  it("full match: the whole text, not the leftmost alternative", () => {
    expect(new Re2Regex("a|ab").fullMatch("ab")).toBe(true);
    expect(new Re2Regex(".*\\.jsp").fullMatch("/a/b.jsp")).toBe(true);
    expect(new Re2Regex(".*\\.jsp").fullMatch("/a/b.jspx")).toBe(false);
  });

  it("answers a path that makes a backtracking engine run for seconds", () => {
    const re = new Re2Regex("/jsp/(\\w+/?)+\\.jsp");
    expect(re.fullMatch(`/jsp/${"a".repeat(30)}!`)).toBe(false);
    expect(re.fullMatch(`/jsp/${"a/".repeat(15)}x.jsp`)).toBe(true);
  });
});

describe("RE2 rewrites (regex_rewrite)", () => {
  const replace = (pattern: string, text: string, substitution: string): string =>
    new Re2Regex(pattern).replaceAll(text, new Rewrite(substitution));

  it("replaces every match; \\N inserts a group, \\0 the match, \\\\ a backslash; $ is literal", () => {
    expect(replace("^/app/?(.*)$", "/app/x/y", "/ctx/\\1")).toBe("/ctx/x/y");
    expect(replace("o", "/foo/bo", "[\\0]")).toBe("/f[o][o]/b[o]");
    expect(replace("(a)", "a", "\\\\\\1$1")).toBe("\\a$1");
    expect(replace("x", "abc", "-")).toBe("abc");
  });

  it("skips an empty match right after the previous one, as RE2::GlobalReplace does", () => {
    expect(replace("x*", "abc", "-")).toBe("-a-b-c-");
    expect(replace("a*", "baaac", "-")).toBe("-b-c-");
  });

  it("an unmatched group inserts nothing", () => {
    expect(replace("(a)|(b)", "b", "[\\1\\2]")).toBe("[b]");
  });

  it("refuses a substitution RE2 cannot apply", () => {
    expect(rewriteProblem("/x/\\1", 1)).toBeUndefined();
    expect(rewriteProblem("/x/\\2", 1)).toContain(
      "\\2 refers to a group the pattern does not have (it has 1)",
    );
    expect(rewriteProblem("/x/\\n", 1)).toContain("invalid rewrite: \\n");
    expect(rewriteProblem("/x/\\", 1)).toContain("invalid rewrite: a trailing \\");
  });
});
