// HPACK (RFC 7541), the header compression of HTTP/2, as the ADS client needs it:
// - a full decoder (static and dynamic table, Huffman-coded strings, table size updates), since a
//   server may use every representation;
// - an encoder that writes each header as a literal without indexing (never indexed for
//   credentials), which every decoder must accept and which keeps the server's table out of it.
// Header names and values are kept as latin1 strings: one character per octet, as HPACK counts.

export class HpackError extends Error {}

/** RFC 7541 Appendix A. Index 1 is the first entry. */
const STATIC: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ...[
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
  ].map((name) => [name, name === "accept-encoding" ? "gzip, deflate" : ""] as const),
];

/**
 * The Huffman code's length in bits for each octet 0-255, then for EOS (RFC 7541 Appendix B). The
 * code is canonical (codes assigned in order of length, then of symbol), so the lengths define it.
 */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28,
  28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7,
  8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19,
  13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13,
  28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21,
  22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23,
  22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25,
  25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];
const EOS = 256;
const MAX_CODE_LENGTH = 30;

/** The canonical code, per length: its first code, and where its symbols start in `symbols`. */
interface Huffman {
  readonly firstCode: number[];
  readonly firstIndex: number[];
  readonly count: number[];
  readonly symbols: number[];
}
let huffman: Huffman | undefined;

function huffmanTable(): Huffman {
  if (huffman !== undefined) return huffman;
  const count = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  for (const length of HUFFMAN_LENGTHS) count[length] = (count[length] ?? 0) + 1;
  const symbols = HUFFMAN_LENGTHS.map((length, symbol) => [length, symbol] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .map(([, symbol]) => symbol);
  const firstCode = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  const firstIndex = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  let code = 0;
  let index = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    firstCode[length] = code;
    firstIndex[length] = index;
    const n = count[length] ?? 0;
    code = (code + n) * 2;
    index += n;
  }
  return (huffman = { firstCode, firstIndex, count, symbols });
}

/** Decodes a Huffman-coded string (its padding must be at most 7 bits, all ones). */
export function huffmanDecode(bytes: Uint8Array): string {
  const { firstCode, firstIndex, count, symbols } = huffmanTable();
  const out: number[] = [];
  let code = 0;
  let length = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      length++;
      const offset = code - (firstCode[length] as number);
      if (offset >= 0 && offset < (count[length] as number)) {
        const symbol = symbols[(firstIndex[length] as number) + offset] as number;
        if (symbol === EOS) throw new HpackError("Huffman-coded string contains EOS");
        out.push(symbol);
        code = 0;
        length = 0;
      } else if (length >= MAX_CODE_LENGTH) {
        throw new HpackError("invalid Huffman code");
      }
    }
  }
  if (length > 7 || code !== 2 ** length - 1) throw new HpackError("invalid Huffman padding");
  return Buffer.from(out).toString("latin1");
}

/** HPACK's integer with an N-bit prefix (RFC 7541 §5.1), bounded to 2^28. */
function readInteger(block: Uint8Array, pos: number, prefixBits: number): [number, number] {
  const max = (1 << prefixBits) - 1;
  let value = (block[pos] as number) & max;
  pos++;
  if (value < max) return [value, pos];
  for (let shift = 0; ; shift += 7) {
    if (pos >= block.length) throw new HpackError("truncated integer");
    if (shift > 21) throw new HpackError("integer too large");
    const byte = block[pos++] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, pos];
  }
}

function readString(block: Uint8Array, pos: number): [string, number] {
  if (pos >= block.length) throw new HpackError("truncated string");
  const huffmanCoded = ((block[pos] as number) & 0x80) !== 0;
  const [length, start] = readInteger(block, pos, 7);
  if (start + length > block.length) throw new HpackError("truncated string");
  const raw = block.subarray(start, start + length);
  const text = huffmanCoded ? huffmanDecode(raw) : Buffer.from(raw).toString("latin1");
  return [text, start + length];
}

/** One connection's decoder: its dynamic table lives as long as the connection. */
export class HpackDecoder {
  /** Newest first. */
  private readonly dynamic: [string, string][] = [];
  private size = 0;
  private maxSize: number;
  /** What our SETTINGS_HEADER_TABLE_SIZE allows the encoder (4096 unless we said otherwise). */
  private readonly limit: number;
  /** The most octets (names + values + 32 each) one header list may hold. */
  private readonly maxListSize: number;

  constructor(limit = 4096, maxListSize = 65536) {
    this.limit = limit;
    this.maxSize = limit;
    this.maxListSize = maxListSize;
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError("index 0");
    if (index <= STATIC.length) return STATIC[index - 1] as readonly [string, string];
    const entry = this.dynamic[index - STATIC.length - 1];
    if (entry === undefined) throw new HpackError(`index ${index} is not in the table`);
    return entry;
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const [name, value] = this.dynamic.pop() as [string, string];
      this.size -= name.length + value.length + 32;
    }
  }

  private add(name: string, value: string): void {
    this.dynamic.unshift([name, value]);
    this.size += name.length + value.length + 32;
    this.evict();
  }

  /** One header block (HEADERS and its CONTINUATIONs, put together) as [name, value] pairs. */
  decode(block: Uint8Array): [string, string][] {
    const headers: [string, string][] = [];
    let listSize = 0;
    let pos = 0;
    while (pos < block.length) {
      const first = block[pos] as number;
      let name: string;
      let value: string;
      if (first & 0x80) {
        let index: number;
        [index, pos] = readInteger(block, pos, 7);
        [name, value] = this.entry(index);
      } else if ((first & 0xe0) === 0x20) {
        // A dynamic table size update: only before the block's first header.
        if (headers.length > 0) throw new HpackError("table size update after a header");
        let size: number;
        [size, pos] = readInteger(block, pos, 5);
        if (size > this.limit) throw new HpackError(`table size ${size} over the ${this.limit} allowed`);
        this.maxSize = size;
        this.evict();
        continue;
      } else {
        // Literals: with incremental indexing (01), without indexing (0000) or never indexed (0001).
        const indexed = (first & 0xc0) === 0x40;
        let index: number;
        [index, pos] = readInteger(block, pos, indexed ? 6 : 4);
        if (index === 0) [name, pos] = readString(block, pos);
        else name = this.entry(index)[0];
        [value, pos] = readString(block, pos);
        if (indexed) this.add(name, value);
      }
      listSize += name.length + value.length + 32;
      if (listSize > this.maxListSize) throw new HpackError(`header list over ${this.maxListSize} octets`);
      headers.push([name, value]);
    }
    return headers;
  }
}

function writeInteger(out: number[], value: number, prefixBits: number, flags: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

/**
 * A header block: every header a literal with a literal name, never indexed when `sensitive` says
 * so (intermediaries must not compress credentials), else without indexing. Names and values are
 * written as latin1 octets.
 */
export function encodeHeaders(
  headers: readonly (readonly [string, string])[],
  sensitive: (name: string) => boolean = () => false,
): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    out.push(sensitive(name) ? 0x10 : 0x00);
    for (const text of [name, value]) {
      const bytes = Buffer.from(text, "latin1");
      writeInteger(out, bytes.length, 7, 0x00);
      for (const b of bytes) out.push(b);
    }
  }
  return Buffer.from(out);
}
