// The sidecar's identity on its ADS stream: the token file (--xds-token-file, a projected
// ServiceAccount token the kubelet rotates) as gRPC call metadata, read afresh at every connect.
import { readFileSync } from "node:fs";

/** `authorization: Bearer <token>` from the file as it is now; throws (naming the file) if unusable. */
export function bearerMetadata(path: string): Record<string, string> {
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new Error(`--xds-token-file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (token === "") throw new Error(`--xds-token-file ${path}: the file is empty`);
  // A header value may not hold spaces or control characters (HTTP/2 would refuse the request).
  if (!/^[\x21-\x7e]+$/.test(token))
    throw new Error(`--xds-token-file ${path}: not a token (spaces or non-ASCII characters inside)`);
  return { authorization: `Bearer ${token}` };
}
