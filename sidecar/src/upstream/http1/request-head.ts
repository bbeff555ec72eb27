// The request head the upstream client writes: built and checked once, when the request is handed
// to the pool, so a request that cannot be sent is refused before any host sees it.

/** A request refused before a byte left for the upstream (answered locally, never retried). */
export class UpstreamRequestError extends Error {
  readonly code = "TETHER_ERR_UPSTREAM_REQUEST_INVALID";

  constructor(message: string) {
    super(message);
    this.name = "UpstreamRequestError";
  }
}

/** A streamed request body as the client reads it: the downstream request's events and flow control. */
export interface RequestBodyStream {
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "end" | "close", listener: () => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  removeListener(event: "data", listener: (chunk: Buffer) => void): unknown;
  removeListener(event: "end" | "close", listener: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** What the proxy asks the pool to send. */
export interface UpstreamRequest {
  readonly method: string;
  /** The request target as sent (origin-form). */
  readonly path: string;
  /** Name/value pairs, hop-by-hop headers and Content-Length already removed. */
  readonly headers: readonly string[];
  /**
   * How many leading entries of `headers` are known good: read by the downstream parser, which
   * refuses a name that is not a token and a value with CR, LF, NUL or another control character.
   * Only the entries after them are checked here.
   */
  readonly checkedHeaders?: number;
  /**
   * The method and path are the downstream parser's (a method from its table; a target it read,
   * which holds no space or control character): not checked again here.
   */
  readonly checkedTarget?: boolean;
  /** The body: none, whole (replayable), or streamed once from the downstream request. */
  readonly body: Buffer | RequestBodyStream | null;
  /** The length the downstream declared for a streamed body; undefined: chunked. */
  readonly contentLength: number | undefined;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Bytes a request target may not hold (Node's own HTTP client refuses them too). */
const BAD_PATH = /[^\u0021-\u00ff]/;
/** A CR, LF or NUL would end the header early: header injection. */
const BAD_VALUE = /[\r\n\0]/;
/** Methods whose request without a body still says Content-Length: 0 (RFC 9110 §8.6). */
const PAYLOAD_METHODS: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH"]);

/**
 * The head up to (not including) the Connection header and the blank line, which depend on the
 * connection that sends it. Throws UpstreamRequestError for a request that cannot be sent.
 */
export function requestHead(req: UpstreamRequest, defaultHost: string): string {
  const { method, path, headers, body } = req;
  if (req.checkedTarget !== true) {
    if (!TOKEN.test(method)) throw new UpstreamRequestError("invalid request method");
    if (path.length === 0 || BAD_PATH.test(path)) throw new UpstreamRequestError("invalid request path");
  }
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let host = false;
  const checked = req.checkedHeaders ?? 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] ?? "";
    const value = headers[i + 1] ?? "";
    if (name.length === 4 && name.toLowerCase() === "host") {
      if (host) throw new UpstreamRequestError("duplicate host header");
      host = true;
    }
    if (i >= checked) {
      if (!TOKEN.test(name)) throw new UpstreamRequestError("invalid header name");
      if (BAD_VALUE.test(value)) throw new UpstreamRequestError(`invalid ${name} header`);
    }
    head += `${name}: ${value}\r\n`;
  }
  if (!host) head += `host: ${defaultHost}\r\n`;
  if (body === null) {
    if (PAYLOAD_METHODS.has(method)) head += "content-length: 0\r\n";
  } else if (Buffer.isBuffer(body)) {
    head += `content-length: ${body.length}\r\n`;
  } else if (req.contentLength !== undefined) {
    head += `content-length: ${req.contentLength}\r\n`;
  } else {
    head += "transfer-encoding: chunked\r\n";
  }
  return head;
}
