// Errors the upstream pool raises before a byte of the request left for the upstream: the request
// as it stands (or as the route rewrote it) cannot be sent. No host is to blame and every host would
// refuse it the same way, so they are answered locally, never retried, never counted against a host.

/** The code of a request refused at dispatch (upstream/http1/request-head.ts). */
const REFUSED_AT_DISPATCH: ReadonlySet<string> = new Set(["TETHER_ERR_UPSTREAM_REQUEST_INVALID"]);

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
