// Secret material is never shown by /config_dump: Envoy prints "[redacted]" in place of the inline
// content of fields its protos mark sensitive, and so does Tether.

export const REDACTED = "[redacted]";

/**
 * Envoy's sensitive fields that hold DataSources (or lists of them): a TLS private key, a key
 * password, session ticket keys, an HMAC secret, and the generic secret of an SDS Secret.
 */
const SENSITIVE_DATA_SOURCES = new Set([
  "private_key",
  "password",
  "session_ticket_keys",
  "keys",
  "hmac_secret",
  "secret",
]);

/** DataSource fields that carry the content itself (a filename or variable name is not secret). */
const INLINE_FIELDS = ["inline_string", "inline_bytes"] as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function redactDataSource(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactDataSource);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if ((INLINE_FIELDS as readonly string[]).includes(key)) out[key] = REDACTED;
    // session_ticket_keys is a message with a `keys` list of DataSources.
    else if (SENSITIVE_DATA_SOURCES.has(key)) out[key] = redactDataSource(inner);
    else out[key] = inner;
  }
  return out;
}

/** A copy of `config` with the inline content of every sensitive DataSource replaced by "[redacted]". */
export function redactSecrets(config: unknown): unknown {
  if (Array.isArray(config)) return config.map(redactSecrets);
  if (!isRecord(config)) return config;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    out[key] = SENSITIVE_DATA_SOURCES.has(key) ? redactDataSource(value) : redactSecrets(value);
  }
  return out;
}
