// The two things the sidecar takes from node:http, without loading it. node:http brings its client,
// agent, server and perf modules along (~1.4 MB of resident memory in every sidecar); the sidecar
// serves and relays HTTP with its own code, so node:http is loaded only where it is still the
// client (a decision cache's notification stream), where node:http2 (the xDS client) loads it, or
// when the user sets --max-http-header-size.

/** Reason phrases by status code, as node:http's STATUS_CODES has them. */
export const STATUS_REASONS: Readonly<Record<number, string>> = {
  100: "Continue",
  101: "Switching Protocols",
  102: "Processing",
  103: "Early Hints",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  207: "Multi-Status",
  208: "Already Reported",
  226: "IM Used",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  305: "Use Proxy",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Payload Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  418: "I'm a Teapot",
  421: "Misdirected Request",
  422: "Unprocessable Entity",
  423: "Locked",
  424: "Failed Dependency",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  506: "Variant Also Negotiates",
  507: "Insufficient Storage",
  508: "Loop Detected",
  509: "Bandwidth Limit Exceeded",
  510: "Not Extended",
  511: "Network Authentication Required",
};

/** `status`'s reason phrase; "unknown" for a code without one (as the sidecar has always sent). */
export function reasonPhrase(status: number): string {
  return STATUS_REASONS[status] ?? "unknown";
}

/** Node's default for --max-http-header-size. */
const NODE_DEFAULT_MAX_HEADER_SIZE = 16 * 1024;

/**
 * Node's limit for an HTTP message head (`--max-http-header-size`, 16 KiB unless set on node's
 * command line or in NODE_OPTIONS): node:http is asked only when the flag is there.
 */
export function nodeMaxHeaderSize(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env["NODE_OPTIONS"],
): number {
  const flag = "--max-http-header-size";
  // Node takes a flag's name with "_" for "-" too (--max_http_header_size).
  const set = [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].some((a) => {
    const name = a.split("=")[0]?.replaceAll("_", "-");
    return name === flag;
  });
  if (!set) return NODE_DEFAULT_MAX_HEADER_SIZE;
  return process.getBuiltinModule("node:http").maxHeaderSize;
}
