// What the demo servers' command lines share: string flags read strictly, --port and --name checked
// with an error naming the flag, and a server run from its command line until SIGTERM/SIGINT.
import { parseArgs } from "node:util";

/** The error a command throws for a bad flag (each command has its own class, same stable code). */
export type FlagErrorClass = new (message: string) => Error;

/** Reads `names` as string flags; an unknown flag or a missing value throws `Err` with the reason. */
export function parseStringFlags<K extends string>(
  argv: readonly string[],
  names: readonly K[],
  Err: FlagErrorClass,
): Partial<Record<K, string>> {
  try {
    return parseArgs({
      args: [...argv],
      options: Object.fromEntries(names.map((name) => [name, { type: "string" as const }])),
      strict: true,
    }).values as Partial<Record<K, string>>;
  } catch (error) {
    throw new Err(error instanceof Error ? error.message : String(error));
  }
}

/** --port: an integer 0-65535 (0: any free port). */
export function portFlag(value: string | undefined, Err: FlagErrorClass): number {
  const port = Number(value);
  if (value === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Err(`--port: expected an integer 0-65535, got ${value ?? "(none)"}`);
  }
  return port;
}

/** --name of a server: letters, digits, '.', '_' or '-'. */
export function nameFlag(value: string | undefined, Err: FlagErrorClass): string {
  if (value === undefined || !/^[A-Za-z0-9._-]+$/.test(value)) {
    throw new Err(`--name: expected letters, digits, '.', '_' or '-', got ${value ?? "(none)"}`);
  }
  return value;
}

/**
 * A demo server from its command line: `parse` failing exits 2 with its message (naming the flag);
 * once listening, one JSON line `announce(running)` on stdout; SIGTERM/SIGINT close it and exit 0.
 */
export async function runServerCli<O, R extends { close(): Promise<void> }>(
  parse: () => O,
  listen: (options: O) => Promise<R>,
  announce: (running: R) => Record<string, unknown>,
): Promise<void> {
  let options: O;
  try {
    options = parse();
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const running = await listen(options);
  process.stdout.write(JSON.stringify(announce(running)) + "\n");
  const shutdown = (): void => {
    void running.close().then(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}
