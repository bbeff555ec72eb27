// Route hash_policy → a request hash for RING_HASH clusters, as Envoy: policies in order, results
// combined (rotate-left, xor), `terminal` stops at the first policy that produced a hash. A cookie
// policy with a ttl creates the cookie when the request has none (value from the client address,
// so parallel requests of one client agree) and the response sets it.
/** What a hash policy reads from a request. */
export interface HashedRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>> & { readonly cookie?: string };
  readonly socket: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined };
}
import type { HashPolicyConfig } from "@tether/envoy";
import { combineHashes, hash32 } from "../../upstream/ring.ts";

export interface RequestHash {
  readonly hash: number | undefined;
  /** A Set-Cookie value to add to the response. */
  readonly setCookie: string | undefined;
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    const v = part.slice(eq + 1).trim();
    return v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1) : v;
  }
  return undefined;
}

function headerText(req: HashedRequest, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(",") : v;
}

export function requestHash(policies: readonly HashPolicyConfig[], req: HashedRequest): RequestHash {
  let hash: number | undefined;
  let setCookie: string | undefined;
  for (const p of policies) {
    let part: number | undefined;
    if (p.header !== undefined) {
      const v = headerText(req, p.header.header_name);
      if (v !== undefined) part = hash32(v);
    } else if (p.cookie !== undefined) {
      let v = cookieValue(req.headers.cookie, p.cookie.name);
      if (v === undefined && p.cookie.ttl !== undefined) {
        v = hash32(`${req.socket.remoteAddress ?? ""}:${req.socket.remotePort ?? 0}`)
          .toString(16)
          .padStart(8, "0");
        const path = p.cookie.path === undefined ? "" : `; Path=${p.cookie.path}`;
        // Whole seconds; under 1 s none (Max-Age=0 would make the browser drop the cookie at once).
        const seconds = Math.floor(p.cookie.ttl / 1000);
        const maxAge = seconds > 0 ? `; Max-Age=${seconds}` : "";
        setCookie = `${p.cookie.name}="${v}"${maxAge}${path}; HttpOnly`;
      }
      if (v !== undefined) part = hash32(v);
    } else if (p.connection_properties?.source_ip === true) {
      part = hash32(req.socket.remoteAddress ?? "");
    }
    if (part === undefined) continue;
    hash = combineHashes(hash, part);
    if (p.terminal) break;
  }
  return { hash, setCookie };
}
