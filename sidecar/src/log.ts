import { pino, type Logger } from "pino";

export type { Logger };

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { component: "tether-sidecar" } });
}

let nextId = 0;
/** Connection ids, unique per process: every log line about a connection carries one. */
export function nextConnectionId(prefix: "d" | "u"): string {
  nextId++;
  return `${prefix}${nextId}`;
}
