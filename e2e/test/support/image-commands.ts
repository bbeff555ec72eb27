// The demo image's client commands (`request`, `load`) run as real child processes from the tests,
// with the progress lines `load` prints read back.
import { join } from "node:path";
import { REPO_ROOT } from "../../src/controlplane/binaries.ts";
import { ChildHandle } from "../../src/demo/processes.ts";
import { RunningLoad, jsonLines, loadArgs, type LoadSpec } from "../../src/scenarios/client.ts";

/** The image's entry point, run with this node. */
export const ENTRY = join(REPO_ROOT, "e2e/src/image/main.ts");

/** The request command to its exit: its code and its last JSON line. */
export async function request(
  args: readonly string[],
): Promise<{ code: number | null; line: Record<string, unknown> }> {
  const child = new ChildHandle({
    name: "request",
    command: process.execPath,
    args: [ENTRY, "request", ...args],
  });
  const status = await child.exited;
  return { code: status.code, line: jsonLines(child.output()).at(-1) ?? {} };
}

/** The load command as a child process with its stdin held open, wrapped like the scenarios' exec. */
export async function startLoad(
  spec: LoadSpec,
  name = "load",
): Promise<{ load: RunningLoad; child: ChildHandle }> {
  const child = new ChildHandle({
    name,
    command: process.execPath,
    args: [ENTRY, "load", ...loadArgs(spec), "--progress-ms", "100"],
    stdin: "pipe",
  });
  await child.waitForLine((line) => (jsonLines(line)[0]?.["event"] === "started" ? true : undefined), 10_000);
  return { load: new RunningLoad(child, spec.timeoutMs ?? 45_000), child };
}

/** A progress line of the load command. */
export interface Progress {
  requests: number;
  failures: number;
  servedBy: Record<string, number>;
}

/** Resolves with the first progress line that satisfies `done`. */
export async function progress(
  child: ChildHandle,
  done: (p: Progress) => boolean,
  timeoutMs = 20_000,
): Promise<Progress> {
  return child.waitForLine((line) => {
    const p = jsonLines(line)[0];
    return p?.["event"] === "progress" && done(p as unknown as Progress)
      ? (p as unknown as Progress)
      : undefined;
  }, timeoutMs);
}
