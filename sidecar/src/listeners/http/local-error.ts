// Errors undici raises on this side before a byte of the request left for the upstream: the request
// as it stands (or as the route rewrote it) cannot be sent. No host is to blame and every host would
// refuse it the same way, so they are answered locally, never retried, never counted against a host.

/** undici's codes for a request refused at dispatch (InvalidArgumentError, NotSupportedError, ...). */
const REFUSED_AT_DISPATCH: ReadonlySet<string> = new Set([
  "UND_ERR_INVALID_ARG",
  "UND_ERR_NOT_SUPPORTED",
  "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH",
]);

export interface LocalErrorReply {
  readonly status: number;
  readonly text: string;
}

/**
 * The local reply for `err` when it is a request refused before sending, else undefined. The client is
 * at fault (400) unless the route rewrote the path and the path is what was refused (500: the route's
 * config made it).
 */
export function localDispatchError(err: unknown, pathRewritten: boolean): LocalErrorReply | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !REFUSED_AT_DISPATCH.has(code)) return undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (pathRewritten && message.includes("path")) {
    return {
      status: 500,
      text: `request could not be sent upstream: ${message} (after the route's rewrite)`,
    };
  }
  return { status: 400, text: `invalid request: ${message}` };
}
