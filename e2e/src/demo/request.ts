// One request from the demo image (`tether-demo request …`), for the end-to-end scenarios' single
// checks from inside a client pod: an HTTP request, or one verified TLS exchange with a demo TLS
// backend (through a broker).
//
//   request --url http://web.ns.svc:8000/app/orders [--method POST] [--header 'k: v']… [--data TEXT]
//           [--timeout-ms 30000]
//   request --url tls://broker.ns.svc:20001 --ca /etc/ca/ca.crt [--servername appserver.tether.test]
//
// Prints one JSON line: {"event":"response","status":…,"headers":{…},"body":<JSON or text>,"elapsedMs":…}
// or {"event":"tls","server":…,"subject":…,"fingerprint256":…,"elapsedMs":…}; exit 0. When no answer
// came back: {"event":"error","error":"…"} and exit 1. A bad flag exits 2 naming it.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { tlsExchange } from "./tls-client.ts";
import { describeError } from "./traffic.ts";

export class RequestConfigError extends Error {
  readonly code = "TETHER_ERR_DEMO_CONFIG";
  constructor(message: string) {
    super(`TETHER_ERR_DEMO_CONFIG: ${message}`);
    this.name = "RequestConfigError";
  }
}

export interface RequestOptions {
  readonly url: URL;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly data: string | null;
  readonly timeoutMs: number;
  readonly ca: string | null;
  readonly servername: string | null;
}

/** Parses the flags; throws RequestConfigError naming the bad flag. */
export function parseRequestArgs(
  argv: readonly string[],
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): RequestOptions {
  let values: {
    url?: string;
    method?: string;
    header?: string[];
    data?: string;
    "timeout-ms"?: string;
    ca?: string;
    servername?: string;
  };
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        url: { type: "string" },
        method: { type: "string" },
        header: { type: "string", multiple: true },
        data: { type: "string" },
        "timeout-ms": { type: "string" },
        ca: { type: "string" },
        servername: { type: "string" },
      },
      strict: true,
    }).values;
  } catch (error) {
    throw new RequestConfigError(error instanceof Error ? error.message : String(error));
  }
  const url = parseUrl(values.url);
  const timeoutMs = Number(values["timeout-ms"] ?? "30000");
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new RequestConfigError(
      `--timeout-ms: expected a positive integer, got ${values["timeout-ms"] ?? ""}`,
    );
  }
  const method = (values.method ?? (values.data === undefined ? "GET" : "POST")).toUpperCase();
  if (!/^[A-Z]+$/.test(method))
    throw new RequestConfigError(`--method: expected a method name, got ${method}`);
  const headers = parseHeaders(values.header ?? []);
  const tls = url.protocol === "tls:";
  if (tls && values.ca === undefined) throw new RequestConfigError("--ca: required for a tls:// URL");
  if (!tls && (values.ca !== undefined || values.servername !== undefined)) {
    throw new RequestConfigError("--ca/--servername: only for a tls:// URL");
  }
  let ca: string | null = null;
  if (values.ca !== undefined) {
    try {
      ca = readFile(values.ca);
    } catch (error) {
      throw new RequestConfigError(`--ca: cannot read ${values.ca}: ${describeError(error)}`);
    }
  }
  return {
    url,
    method,
    headers,
    data: values.data ?? null,
    timeoutMs,
    ca,
    servername: tls ? (values.servername ?? url.hostname) : null,
  };
}

function parseUrl(value: string | undefined): URL {
  let url: URL;
  try {
    url = new URL(value ?? "");
  } catch {
    throw new RequestConfigError(`--url: expected an http:// or tls:// URL, got ${value ?? "(none)"}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "tls:") {
    throw new RequestConfigError(`--url: expected an http:// or tls:// URL, got ${url.protocol}`);
  }
  return url;
}

function parseHeaders(values: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const header of values) {
    const colon = header.indexOf(":");
    if (colon <= 0) {
      throw new RequestConfigError(`--header: expected "name: value", got ${JSON.stringify(header)}`);
    }
    headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
  }
  return headers;
}

function contentTypeOf(data: string): string {
  try {
    JSON.parse(data);
    return "application/json";
  } catch {
    return "text/plain";
  }
}

/** Sends the request; resolves with the line to print and whether an answer came back. */
export async function sendRequest(
  options: RequestOptions,
): Promise<{ line: Record<string, unknown>; ok: boolean }> {
  const started = performance.now();
  const elapsedMs = (): number => Math.round((performance.now() - started) * 100) / 100;
  if (options.url.protocol === "tls:") {
    const result = await tlsExchange(
      {
        host: options.url.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: Number(options.url.port),
        ca: options.ca ?? "",
        servername: options.servername ?? options.url.hostname,
      },
      options.timeoutMs,
    );
    if (result.error !== null)
      return { line: { ...result, event: "error", elapsedMs: elapsedMs() }, ok: false };
    const { server, subject, fingerprint256 } = result;
    return { line: { event: "tls", server, subject, fingerprint256, elapsedMs: elapsedMs() }, ok: true };
  }
  const headers = { ...options.headers };
  if (options.data !== null && headers["content-type"] === undefined) {
    headers["content-type"] = contentTypeOf(options.data);
  }
  try {
    const response = await fetch(options.url, {
      method: options.method,
      headers,
      ...(options.data === null ? {} : { body: options.data }),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return {
      line: {
        event: "response",
        status: response.status,
        headers: Object.fromEntries(response.headers),
        body,
        elapsedMs: elapsedMs(),
      },
      ok: true,
    };
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    return {
      line: { event: "error", error: describeError(cause ?? error), elapsedMs: elapsedMs() },
      ok: false,
    };
  }
}

/** The command line: exit 2 naming a bad flag, 1 without an answer, 0 with one. */
export async function runRequestCli(argv: readonly string[]): Promise<void> {
  let options: RequestOptions;
  try {
    options = parseRequestArgs(argv);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const { line, ok } = await sendRequest(options);
  process.stdout.write(JSON.stringify(line) + "\n", () => process.exit(ok ? 0 : 1));
}
