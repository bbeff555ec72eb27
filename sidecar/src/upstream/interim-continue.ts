// undici's HTTP/1 parser hands a 1xx response to the dispatch handler (onResponseStart with a status
// below 200, then the final response) except 100 Continue, which it takes for a broken response: it
// destroys the connection and fails the request. A server may send 100 unasked (RFC 9110 §15.2: a
// client must accept 1xx responses it did not expect), and Envoy without proxy_100_continue drops an
// upstream 100 and waits for the final response. So the parser is taught to skip a 100 the same way.
// Its class is private to undici: it is reached once, through the first upstream connection's parser.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { kParser, kRunning } = require("undici/lib/core/symbols.js") as {
  kParser: symbol;
  kRunning: symbol;
};

/** The fields of undici's llhttp Parser this file reads and resets. */
interface Http1Parser {
  llhttp: unknown;
  socket: { destroyed: boolean };
  client: Record<symbol, unknown>;
  statusCode: number;
  headers: unknown[];
  headersSize: number;
  onHeadersComplete: (
    this: Http1Parser,
    statusCode: number,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ) => number;
}

let taught = false;

function isHttp1Parser(value: unknown): value is Http1Parser {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Partial<Http1Parser>;
  return (
    typeof p.onHeadersComplete === "function" &&
    p.llhttp !== undefined &&
    typeof p.statusCode === "number" &&
    Array.isArray(p.headers) &&
    typeof p.headersSize === "number"
  );
}

/**
 * Call right after undici took `socket` (its parser is attached synchronously, before any byte is
 * read). Patches the parser class once; later calls cost one check. Another parser (undici's optional
 * milo one) is left as it is.
 */
export function skipInterimContinue(socket: object): void {
  if (taught) return;
  const parser = (socket as Record<symbol, unknown>)[kParser];
  if (!isHttp1Parser(parser)) return;
  taught = true;
  const proto = Object.getPrototypeOf(parser) as Http1Parser;
  const original = proto.onHeadersComplete;
  proto.onHeadersComplete = function onHeadersComplete(
    this: Http1Parser,
    statusCode: number,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number {
    // A 100 with no request in flight is a broken response; undici's own handling stays for it.
    if (statusCode !== 100 || this.socket.destroyed || this.client[kRunning] === 0) {
      return original.call(this, statusCode, upgrade, shouldKeepAlive);
    }
    // As undici does for its other 1xx: no body, state reset when the message completes.
    this.statusCode = statusCode;
    this.headers = [];
    this.headersSize = 0;
    return 1;
  };
}
