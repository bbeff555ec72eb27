// JSON lines on stdout, pino's format: {"level":30,"time":…,"component":"tether-sidecar",…,"msg":"…"}.
// Our own because pino and its dependencies cost ~9 MB of RSS in a process that logs a few lines a minute.

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** pino's numeric levels, so log processors that read pino's output read ours unchanged. */
const LEVEL_VALUES: Readonly<Record<LogLevel, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

export interface LogFn {
  (fields: object, msg?: string): void;
  (msg: string): void;
}

/** The subset of pino's Logger the sidecar uses; pino's own logger satisfies it too. */
export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: object): Logger;
}

type Write = (line: string) => void;

const noop: LogFn = () => undefined;

/** pino's err serializer, for an Error passed as `err`: JSON.stringify would print `{}`. */
function replacer(key: string, value: unknown): unknown {
  if (key !== "err" || !(value instanceof Error)) return value;
  const code = (value as NodeJS.ErrnoException).code;
  return {
    type: value.name,
    message: value.message,
    stack: value.stack,
    ...(code === undefined ? {} : { code }),
  };
}

function logFn(value: number, bindings: string, write: Write): LogFn {
  return (fieldsOrMsg: object | string, msg?: string): void => {
    let fields = "";
    let text = msg;
    if (typeof fieldsOrMsg === "string") text = fieldsOrMsg;
    else {
      const json = JSON.stringify(fieldsOrMsg, replacer);
      if (json.length > 2) fields = "," + json.slice(1, -1);
    }
    const tail = text === undefined ? "" : `,"msg":${JSON.stringify(text)}`;
    write(`{"level":${value},"time":${Date.now()}${bindings}${fields}${tail}}\n`);
  };
}

function makeLogger(threshold: number, bindings: string, write: Write): Logger {
  const at = (level: Exclude<LogLevel, "silent">): LogFn =>
    LEVEL_VALUES[level] >= threshold ? logFn(LEVEL_VALUES[level], bindings, write) : noop;
  return {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    fatal: at("fatal"),
    child(extra: object): Logger {
      const json = JSON.stringify(extra, replacer);
      return makeLogger(threshold, json.length > 2 ? `${bindings},${json.slice(1, -1)}` : bindings, write);
    },
  };
}

/** `write` defaults to stdout (synchronous for files and pipes on Linux, as pino's default is). */
export function createLogger(level: LogLevel, write: Write = (line) => process.stdout.write(line)): Logger {
  return makeLogger(LEVEL_VALUES[level], `,"component":"tether-sidecar"`, write);
}

let nextId = 0;
/** Connection ids, unique per process: every log line about a connection carries one. */
export function nextConnectionId(prefix: "d" | "u"): string {
  nextId++;
  return `${prefix}${nextId}`;
}
