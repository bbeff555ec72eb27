// Byte-level pieces both HTTP/1.1 parsers share (the downstream request parser and the upstream
// response parser): what a token is, whitespace, header names compared without a string, and the
// options of a Connection value.

/** Characters of a token (RFC 9110 §5.6.2), by byte: a field name or a method is one. */
export const TOKEN_CHARS = ((): Uint8Array => {
  const table = new Uint8Array(256);
  for (const c of "!#$%&'*+-.^_`|~") table[c.charCodeAt(0)] = 1;
  for (let c = 48; c <= 57; c++) table[c] = 1;
  for (let c = 65; c <= 90; c++) table[c] = 1;
  for (let c = 97; c <= 122; c++) table[c] = 1;
  return table;
})();

/** SP or HTAB: optional whitespace around a field value or a list element. */
export function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * Whether the bytes in `buf` from `at` (as many as `name` has) are `name` (lower-case letters,
 * digits and "-") in any case. The only bytes that OR 0x20 to a lower-case letter, a digit or "-"
 * are that character, its upper case and (for "-") a CR, which no name or value holds.
 */
export function isName(buf: Buffer, at: number, name: Buffer): boolean {
  for (let i = 0; i < name.length; i++) if (((buf[at + i] as number) | 0x20) !== name[i]) return false;
  return true;
}

export const CONNECTION_CLOSE = 1;
export const CONNECTION_KEEP_ALIVE = 2;
export const CONNECTION_UPGRADE = 4;

const CLOSE = Buffer.from("close");
const KEEP_ALIVE = Buffer.from("keep-alive");
const UPGRADE = Buffer.from("upgrade");

/**
 * The `close`, `keep-alive` and `upgrade` options among a Connection value's comma-separated ones
 * (from `from` to `to` in `buf`), in any case, as CONNECTION_* bits.
 */
export function connectionOptions(buf: Buffer, from: number, to: number): number {
  let options = 0;
  let at = from;
  while (at < to) {
    let end = at;
    while (end < to && buf[end] !== 44 /* , */) end++;
    let s = at;
    let e = end;
    while (s < e && isOws(buf[s] as number)) s++;
    while (e > s && isOws(buf[e - 1] as number)) e--;
    const n = e - s;
    if (n === 5 && isName(buf, s, CLOSE)) options |= CONNECTION_CLOSE;
    else if (n === 10 && isName(buf, s, KEEP_ALIVE)) options |= CONNECTION_KEEP_ALIVE;
    else if (n === 7 && isName(buf, s, UPGRADE)) options |= CONNECTION_UPGRADE;
    at = end + 1;
  }
  return options;
}
