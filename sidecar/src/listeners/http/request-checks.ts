// What the listener refuses in a request head before any routing, with Envoy's status codes, and
// the absolute-form request target (RFC 9112 §3.2.2) turned into an authority and an origin-form path.
import type { DownstreamRequest as IncomingMessage } from "./server/request.ts";

/** A local reply for a request the listener will not route; the connection is closed after it. */
export interface Rejection {
  readonly status: number;
  readonly text: string;
}

const TOO_MANY_HEADERS: Rejection = { status: 431, text: "too many request headers" };
const DUPLICATE_HOST: Rejection = { status: 400, text: "multiple host headers" };
const TRANSFER_ENCODING: Rejection = { status: 501, text: "unsupported transfer encoding" };

/**
 * Scans the raw header list once: more than `maxHeaders` headers → 431 (Node's parser refuses them
 * too; this keeps the limit when a reload raised it for a connection opened before); two Host
 * headers → 400 (RFC 9112 §3.2); a Transfer-Encoding other than `chunked` alone → 501, as Envoy.
 */
export function rejectRequestHead(raw: readonly string[], maxHeaders: number): Rejection | undefined {
  if (raw.length / 2 > maxHeaders) return TOO_MANY_HEADERS;
  let hosts = 0;
  let transferEncoding: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? "";
    if (name.length === 4 && name.toLowerCase() === "host") hosts++;
    else if (name.length === 17 && name.toLowerCase() === "transfer-encoding") {
      const value = raw[i + 1] ?? "";
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding},${value}`;
    }
  }
  if (hosts > 1) return DUPLICATE_HOST;
  if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== "chunked") {
    return TRANSFER_ENCODING;
  }
  return undefined;
}

/** An absolute-form target split for routing and for the upstream request. */
export interface AbsoluteTarget {
  readonly authority: string;
  /** Origin-form: the path and query ("/" when the target has none). */
  readonly path: string;
}

const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)([^#]*)/i;

/**
 * `http://host[:port]/path?query` → {authority, path}; undefined for an origin-form target ("/…",
 * "*"); "invalid" for another scheme, an empty authority or one with userinfo.
 */
export function absoluteTarget(url: string): AbsoluteTarget | "invalid" | undefined {
  if (url.startsWith("/") || url === "*") return undefined;
  const m = ABSOLUTE_FORM.exec(url);
  const authority = m?.[1] ?? "";
  if (m === null || authority === "" || authority.includes("@")) return "invalid";
  const rest = m[2] ?? "";
  return { authority, path: rest.startsWith("/") ? rest : `/${rest}` };
}

const INVALID_TARGET: Rejection = { status: 400, text: "invalid request target" };

/**
 * An absolute-form target (`GET http://host/path`) becomes origin-form: the path goes upstream and
 * the target's authority replaces the Host header, for routing and upstream (RFC 9112 §3.2.2).
 */
export function toOriginForm(req: IncomingMessage): Rejection | undefined {
  const target = absoluteTarget(req.url);
  if (target === undefined) return undefined;
  if (target === "invalid") return INVALID_TARGET;
  req.url = target.path;
  const raw = req.rawHeaders;
  let replaced = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? "";
    if (name.length === 4 && name.toLowerCase() === "host") {
      raw[i + 1] = target.authority;
      replaced = true;
    }
  }
  if (!replaced) raw.push("host", target.authority);
  // req.headers is built from the raw list on first use: built already, it is kept in step.
  req.headers.host = target.authority;
  return undefined;
}

const HEADERS_TOO_LARGE: Rejection = { status: 431, text: "request headers too large" };
const BAD_REQUEST: Rejection = { status: 400, text: "Bad Request" };

/**
 * Whether a request asking to switch protocols (its Upgrade header's value) is refused: every
 * upgrade is, as Envoy without upgrade_configs refuses it (403, upgrade_failed), except an h2c
 * offer, which Envoy's HTTP/1 codec drops to serve the request as HTTP/1.1.
 */
export function refusedUpgrade(upgrade: string | undefined): boolean {
  return upgrade !== undefined && upgrade.trim().toLowerCase() !== "h2c";
}

/** The reply to a parse error of Node's: 431 / 501 where they apply, else 400 (malformed). */
export function clientErrorReply(code: string | undefined): Rejection {
  if (code === "HPE_HEADER_OVERFLOW") return HEADERS_TOO_LARGE;
  if (code === "HPE_INVALID_TRANSFER_ENCODING") return TRANSFER_ENCODING;
  return BAD_REQUEST;
}
