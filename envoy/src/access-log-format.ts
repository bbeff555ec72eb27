// Envoy's access log format: command operators (%START_TIME%, %REQ(X?Y):Z%, %RESPONSE_CODE%, …)
// compiled once into a list of parts, then evaluated per request or connection. Text formats write
// "-" for a value that is not set; JSON formats (v3 json_format, typed) write numbers for the numeric
// operators when an operator is a whole value, null for a value not set, strings otherwise.

/** What one request (HTTP) or downstream connection (TCP) tells the access log. */
export interface AccessLogEntry {
  /** Epoch milliseconds when the request (or connection) started. */
  readonly startTimeMs: number;
  /** "HTTP/1.1" (HTTP) or undefined (TCP). */
  readonly protocol: string | undefined;
  /** undefined for TCP; 0 when no response was started (the client went away). */
  readonly responseCode: number | undefined;
  readonly responseFlags: string | undefined;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly durationMs: number;
  /** "ip:port" of the upstream host that served (or was last tried). */
  readonly upstreamHost: string | undefined;
  readonly upstreamCluster: string | undefined;
  readonly upstreamAttempts: number;
  readonly routeName: string | undefined;
  readonly connectionId: number | undefined;
  readonly downstreamRemoteAddress: string | undefined;
  readonly downstreamLocalAddress: string | undefined;
  /** A request header (lower-case name; `:method`, `:path`, `:authority`, `:scheme` too); undefined for TCP. */
  requestHeader(name: string): string | undefined;
  responseHeader(name: string): string | undefined;
}

type Value = string | number | undefined;
type Operator = (e: AccessLogEntry) => Value;

interface OperatorPart {
  readonly op: Operator;
  /** Renders a number in JSON when the operator is the whole value. */
  readonly numeric: boolean;
  /** Written even in JSON when not set (PROTOCOL writes "-"). */
  readonly dashInJson: boolean;
}
type Part = string | OperatorPart;

export class AccessLogFormatError extends Error {}

function withoutPort(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const i = address.lastIndexOf(":");
  return i < 0 ? address : address.slice(0, i).replace(/^\[|\]$/g, "");
}

function portOf(address: string | undefined): number | undefined {
  if (address === undefined) return undefined;
  const n = Number(address.slice(address.lastIndexOf(":") + 1));
  return Number.isInteger(n) ? n : undefined;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

/**
 * START_TIME's strftime subset, in UTC: %Y %m %d %H %M %S %y %j %e %T %F %z %Z %s, Envoy's %f /
 * %1f…%9f (fraction digits) and %E3S… (seconds with n fraction digits), %% for a percent sign.
 */
function startTimeFormatter(format: string | undefined): (ms: number) => string {
  if (format === undefined || format === "") {
    // Envoy's default: %Y-%m-%dT%H:%M:%E3SZ, e.g. 2016-04-15T20:17:00.310Z
    return (ms) => new Date(ms).toISOString();
  }
  const tokens = format.split(/(%E[1-9]S|%[1-9]?f|%.)/).filter((t) => t !== "");
  for (const t of tokens) {
    if (t.startsWith("%") && !/^(%E[1-9]S|%[1-9]?f|%[YmdHMSyjeTFzZs%])$/.test(t)) {
      throw new AccessLogFormatError(`START_TIME: unsupported specifier ${t}`);
    }
  }
  return (ms) => {
    const d = new Date(ms);
    const nanos = (ms % 1000) * 1_000_000;
    const fraction = (digits: number): string => String(nanos).padStart(9, "0").slice(0, digits);
    let out = "";
    for (const t of tokens) {
      if (!t.startsWith("%")) {
        out += t;
        continue;
      }
      const c = t[t.length - 1];
      if (t.startsWith("%E")) {
        out += `${pad(d.getUTCSeconds())}.${fraction(Number(t[2]))}`;
        continue;
      }
      if (c === "f") {
        out += fraction(t.length === 3 ? Number(t[1]) : 9);
        continue;
      }
      switch (c) {
        case "Y":
          out += String(d.getUTCFullYear());
          break;
        case "y":
          out += pad(d.getUTCFullYear() % 100);
          break;
        case "m":
          out += pad(d.getUTCMonth() + 1);
          break;
        case "d":
          out += pad(d.getUTCDate());
          break;
        case "e":
          out += String(d.getUTCDate()).padStart(2, " ");
          break;
        case "H":
          out += pad(d.getUTCHours());
          break;
        case "M":
          out += pad(d.getUTCMinutes());
          break;
        case "S":
          out += pad(d.getUTCSeconds());
          break;
        case "j":
          out += pad(Math.floor((ms - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1, 3);
          break;
        case "T":
          out += `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
          break;
        case "F":
          out += `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
          break;
        case "z":
          out += "+0000";
          break;
        case "Z":
          out += "UTC";
          break;
        case "s":
          out += String(Math.floor(ms / 1000));
          break;
        default:
          out += "%";
      }
    }
    return out;
  };
}

/** `X?Y` → a lookup of X, else Y; `:Z` truncates to Z characters. */
function headerOperator(
  arg: string | undefined,
  maxLength: number | undefined,
  get: (e: AccessLogEntry, name: string) => string | undefined,
  command: string,
): Operator {
  if (arg === undefined || arg === "")
    throw new AccessLogFormatError(`${command} needs a header name: ${command}(X?Y)`);
  const [main = "", alt] = arg.toLowerCase().split("?");
  return (e) => {
    const v = get(e, main) ?? (alt === undefined ? undefined : get(e, alt));
    return v === undefined || maxLength === undefined ? v : v.slice(0, maxLength);
  };
}

const SIMPLE: Record<string, { op: Operator; numeric?: boolean; dashInJson?: boolean }> = {
  PROTOCOL: { op: (e) => e.protocol, dashInJson: true },
  RESPONSE_CODE: { op: (e) => e.responseCode, numeric: true },
  RESPONSE_FLAGS: { op: (e) => e.responseFlags ?? "-" },
  BYTES_RECEIVED: { op: (e) => e.bytesReceived, numeric: true },
  BYTES_SENT: { op: (e) => e.bytesSent, numeric: true },
  DURATION: { op: (e) => e.durationMs, numeric: true },
  UPSTREAM_HOST: { op: (e) => e.upstreamHost },
  UPSTREAM_CLUSTER: { op: (e) => e.upstreamCluster },
  UPSTREAM_REQUEST_ATTEMPT_COUNT: { op: (e) => e.upstreamAttempts, numeric: true },
  ROUTE_NAME: { op: (e) => e.routeName },
  CONNECTION_ID: { op: (e) => e.connectionId },
  DOWNSTREAM_REMOTE_ADDRESS: { op: (e) => e.downstreamRemoteAddress },
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: { op: (e) => withoutPort(e.downstreamRemoteAddress) },
  DOWNSTREAM_REMOTE_PORT: { op: (e) => portOf(e.downstreamRemoteAddress) },
  DOWNSTREAM_LOCAL_ADDRESS: { op: (e) => e.downstreamLocalAddress },
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: { op: (e) => withoutPort(e.downstreamLocalAddress) },
  DOWNSTREAM_LOCAL_PORT: { op: (e) => portOf(e.downstreamLocalAddress) },
};

/** The operators this formatter knows, for documentation and errors. */
export const SUPPORTED_OPERATORS: readonly string[] = [
  "START_TIME",
  "REQ",
  "REQUEST_HEADER",
  "RESP",
  "RESPONSE_HEADER",
  ...Object.keys(SIMPLE),
];

// %COMMAND%, %COMMAND(arg)%, %COMMAND(arg):N%
const OPERATOR = /%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%/g;

function compileOperator(command: string, arg: string | undefined, max: string | undefined): OperatorPart {
  const maxLength = max === undefined ? undefined : Number(max);
  switch (command) {
    case "START_TIME": {
      const f = startTimeFormatter(arg);
      return { op: (e) => f(e.startTimeMs), numeric: false, dashInJson: false };
    }
    case "REQ":
    case "REQUEST_HEADER":
      return {
        op: headerOperator(arg, maxLength, (e, n) => e.requestHeader(n), command),
        numeric: false,
        dashInJson: false,
      };
    case "RESP":
    case "RESPONSE_HEADER":
      return {
        op: headerOperator(arg, maxLength, (e, n) => e.responseHeader(n), command),
        numeric: false,
        dashInJson: false,
      };
  }
  const simple = SIMPLE[command];
  if (simple === undefined) {
    throw new AccessLogFormatError(
      `unsupported command operator %${command}% (supported: ${SUPPORTED_OPERATORS.join(", ")})`,
    );
  }
  if (arg !== undefined) throw new AccessLogFormatError(`%${command}% takes no argument`);
  return { op: simple.op, numeric: simple.numeric === true, dashInJson: simple.dashInJson === true };
}

function compileTemplate(template: string): Part[] {
  const parts: Part[] = [];
  let last = 0;
  for (const m of template.matchAll(OPERATOR)) {
    if (m.index > last) parts.push(template.slice(last, m.index));
    parts.push(compileOperator(m[1] ?? "", m[2], m[3]));
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push(template.slice(last));
  return parts;
}

function text(parts: readonly Part[], e: AccessLogEntry): string {
  let out = "";
  for (const p of parts) {
    if (typeof p === "string") out += p;
    else {
      const v = p.op(e);
      out += v === undefined || v === "" ? "-" : String(v);
    }
  }
  return out;
}

/** Envoy's default format (the newline is part of it). */
export const DEFAULT_TEXT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n';

export type JsonFormat = { readonly [key: string]: string | JsonFormat };
type CompiledJson = readonly { key: string; parts?: Part[]; nested?: CompiledJson }[];

function compileJson(format: JsonFormat, path: string): CompiledJson {
  return Object.entries(format).map(([key, value]) => {
    if (typeof value !== "string") return { key, nested: compileJson(value, `${path}.${key}`) };
    try {
      return { key, parts: compileTemplate(value) };
    } catch (err) {
      throw new AccessLogFormatError(`${path}.${key}: ${(err as Error).message}`);
    }
  });
}

function jsonValue(parts: Part[], e: AccessLogEntry): string | number | null {
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only !== undefined && typeof only !== "string") {
    const v = only.op(e);
    if (v === undefined || v === "") return only.dashInJson ? "-" : null;
    return only.numeric && typeof v === "number" ? v : String(v);
  }
  return text(parts, e);
}

function jsonObject(c: CompiledJson, e: AccessLogEntry): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, parts, nested } of c)
    out[key] = parts !== undefined ? jsonValue(parts, e) : jsonObject(nested ?? [], e);
  return out;
}

/** A compiled log_format: text (as written, Envoy adds no newline) or JSON (one object per line). */
export interface AccessLogFormatter {
  format(e: AccessLogEntry): string;
}

export function textFormatter(template: string): AccessLogFormatter {
  const parts = compileTemplate(template);
  return { format: (e) => text(parts, e) };
}

export function jsonFormatter(format: JsonFormat): AccessLogFormatter {
  const compiled = compileJson(format, "json_format");
  return { format: (e) => JSON.stringify(jsonObject(compiled, e)) + "\n" };
}
