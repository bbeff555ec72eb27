// A strict HTTP/1.1 request parser for the downstream side, in JavaScript: one resumable pass over the
// bytes of each read, so a request's head costs no call from C++ into JavaScript per callback and no
// string but the ones the request keeps (method, target, header names and values).
//
// It is as strict as llhttp is under node:http (no lenient flags), which it replaces; the test suite
// checks it against llhttp itself, case by case and on mutated requests (request-parser.test.ts):
// - the request line is `METHOD SP+ target SP+ HTTP/x.y CRLF`, with a method llhttp knows, a target
//   in origin-form (`/…`), asterisk-form (`*…`), absolute-form (`scheme://authority[/ or ?…]`) or,
//   for CONNECT, authority-form, of visible ASCII only; CR and LF must come as a pair, everywhere;
// - a header name is a token, followed by `:` at once; a value holds HTAB, visible ASCII and
//   obs-text (0x80–0xFF) only; a line starting with whitespace (obs-fold) is an error;
// - Content-Length is digits only, once; Transfer-Encoding must end with `chunked` and nothing may
//   follow it; a request with both is an error (the request-smuggling family);
// - chunk sizes are hex without whitespace, chunk extensions are `;name[=token|"quoted"]`, the CRLF
//   after each chunk's data is required, trailer lines follow the header rules (and are dropped);
// - after a request that does not keep the connection alive, any byte but CR / LF is an error
//   (HPE_CLOSED_CONNECTION); after CONNECT, or an upgrade request, nothing more is read.
// Errors carry llhttp's codes (the listener's reply depends on HPE_HEADER_OVERFLOW and
// HPE_INVALID_TRANSFER_ENCODING). Where it is stricter than llhttp, on purpose: a request line
// without a version (HTTP/0.9), an RTSP/ or ICE/ protocol, a target byte llhttp lets through only
// in authority-form (LF), lengths past 2^53 − 1, PRI (the HTTP/2 preface) and an upgrade request
// whose Transfer-Encoding does not end in `chunked` (llhttp takes it as bodiless) are refused; a
// head is refused (431) once more than 2 × the limit + 64 KiB of it is kept across reads (llhttp
// keeps no bytes, and counts neither whitespace nor delimiters against the limit).

import {
  CONNECTION_CLOSE,
  CONNECTION_KEEP_ALIVE,
  CONNECTION_UPGRADE,
  connectionOptions,
  isName,
  isOws,
  TOKEN_CHARS as TOKEN,
} from "../../../http1-bytes.ts";

/** What the parser reports: the HTTP/1 session implements it. */
export interface RequestSink {
  /** A message's first byte was read (CR and LF between messages begin none). */
  onMessageBegin(): void;
  /** The head of a request. `headers` is the raw name/value list, names as sent, values trimmed. */
  onHeadersComplete(
    major: number,
    minor: number,
    headers: string[],
    method: string,
    url: string,
    upgrade: boolean,
    keepAlive: boolean,
  ): void;
  /** Body bytes, valid during the call only when they are a view of a shared read buffer. */
  onBody(chunk: Buffer): void;
  onMessageComplete(): void;
}

/** A request that cannot be read; `code` is llhttp's name for the problem. */
export class RequestParseError extends Error {
  readonly code: string;
  readonly reason: string;
  /** Bytes of the read consumed before the error. */
  bytesParsed: number;

  constructor(code: string, reason: string, bytesParsed = 0) {
    super(`Parse Error: ${reason}`);
    this.name = "RequestParseError";
    this.code = code;
    this.reason = reason;
    this.bytesParsed = bytesParsed;
  }
}

/** The methods llhttp accepts in an HTTP/1.x request line (node:_http_common's `methods`). */
export const REQUEST_METHODS: readonly string[] = [
  "DELETE",
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "COPY",
  "LOCK",
  "MKCOL",
  "MOVE",
  "PROPFIND",
  "PROPPATCH",
  "SEARCH",
  "UNLOCK",
  "BIND",
  "REBIND",
  "UNBIND",
  "ACL",
  "REPORT",
  "MKACTIVITY",
  "CHECKOUT",
  "MERGE",
  "M-SEARCH",
  "NOTIFY",
  "SUBSCRIBE",
  "UNSUBSCRIBE",
  "PATCH",
  "PURGE",
  "MKCALENDAR",
  "LINK",
  "UNLINK",
  "SOURCE",
  "QUERY",
];
const METHOD_SET = new Map(REQUEST_METHODS.map((m) => [m, m]));

// Where the parser is (plain numbers: compared on every byte).
const S_START = 0; // before a request line: CR and LF are skipped
const S_METHOD = 1;
const S_AFTER_METHOD = 2; // spaces before the target
const S_URL = 3;
const S_AFTER_URL = 4; // spaces before the version
const S_VERSION = 5; // up to the CR
const S_VERSION_LF = 6;
const S_LINE = 7; // at the start of a header (or trailer) line
const S_NAME = 8;
const S_VALUE_OWS = 9;
const S_VALUE = 10;
const S_VALUE_LF = 11;
const S_HEAD_END_LF = 12;
// The blank line after a head / a trailer section was read (left at once for the next state).
const S_HEAD_DONE = 23;
const S_TRAILERS_DONE = 24;
const S_LENGTH = 13;
const S_CHUNK_SIZE = 14;
const S_CHUNK_EXT = 15;
const S_CHUNK_SIZE_LF = 16;
const S_CHUNK_DATA = 17;
const S_CHUNK_DATA_CR = 18;
const S_CHUNK_DATA_LF = 19;
const S_CLOSED = 20; // after a request that closes the connection: only CR and LF may follow
const S_STOPPED = 21; // after CONNECT or an upgrade: the bytes are not HTTP
const S_FAILED = 22;

// Chunk extension sub-states.
const X_START = 0; // after ";"
const X_NAME = 1;
const X_VALUE_START = 2; // after "="
const X_VALUE = 3;
const X_QUOTED = 4;
const X_QUOTED_ESCAPE = 5;
const X_QUOTED_END = 6;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;

/** A chunk's extensions (their names and values) longer than this are refused, as Node limits llhttp's. */
const MAX_CHUNK_EXTENSION = 16 * 1024;

// Where the check of a target's form is (it resumes when a read ends inside the target).
const T_START = 0;
const T_SCHEME = 1;
const T_SLASH1 = 2; // after "scheme:"
const T_SLASH2 = 3;
const T_AUTHORITY = 4;
const T_REST = 5; // a path (or what follows the authority): any visible byte

/** Chunk sizes and Content-Length stay at or below 2^53 − 1 (exact in a number). */
const MAX_LENGTH = Number.MAX_SAFE_INTEGER;

/** Bytes by class, one table lookup per byte. */
function table(pick: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = pick(c) ? 1 : 0;
  return t;
}
/** A field value's bytes (HTAB, visible ASCII, obs-text), CR excluded. */
const VALUE = table((c) => c === HTAB || (c >= 32 && c !== 127));
/** A request target's bytes: visible ASCII. */
const TARGET = table((c) => c > 32 && c < 127);
/** An authority's bytes, as llhttp's URL parser takes them. */
const AUTHORITY = table((c) => c > 32 && c < 127 && !'"#<>\\^`{|}'.includes(String.fromCharCode(c)));
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[65 + c] = 10 + c;
  HEX[97 + c] = 10 + c;
}
/** A quoted-string's bytes in a chunk extension: HTAB, visible ASCII but `"` and `\`, obs-text. */
const QUOTED = table((c) => c === HTAB || (c >= 32 && c !== 127 && c !== 34 && c !== 92));
/** An escaped byte in a quoted-string. */
const ESCAPABLE = table((c) => c === HTAB || (c >= 32 && c !== 127));

interface Latin1Slicer {
  latin1Slice(start: number, end: number): string;
}

function latin1(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as Latin1Slicer).latin1Slice(start, end);
}

const NAMES = {
  upgrade: Buffer.from("upgrade"),
  connection: Buffer.from("connection"),
  contentLength: Buffer.from("content-length"),
  transferEncoding: Buffer.from("transfer-encoding"),
  chunked: Buffer.from("chunked"),
};

/** Header names the parser acts on: told apart by length, then by their bytes. */
const F_OTHER = 0;
const F_CONTENT_LENGTH = 1;
const F_TRANSFER_ENCODING = 2;
const F_CONNECTION = 3;
const F_UPGRADE = 4;

function fieldKind(buf: Buffer, at: number, end: number): number {
  switch (end - at) {
    case 7:
      return isName(buf, at, NAMES.upgrade) ? F_UPGRADE : F_OTHER;
    case 10:
      return isName(buf, at, NAMES.connection) ? F_CONNECTION : F_OTHER;
    case 14:
      return isName(buf, at, NAMES.contentLength) ? F_CONTENT_LENGTH : F_OTHER;
    case 17:
      return isName(buf, at, NAMES.transferEncoding) ? F_TRANSFER_ENCODING : F_OTHER;
    default:
      return F_OTHER;
  }
}

const EMPTY = Buffer.alloc(0);
const HTTP_VERSION = [72, 84, 84, 80, 47, -1, 46, -1]; // "HTTP/" DIGIT "." DIGIT

/** Whether `buf` from `start` to `end` begins one of the methods (a read ended inside it). */
function methodPrefix(buf: Buffer, start: number, end: number): boolean {
  const n = end - start;
  for (const m of REQUEST_METHODS) {
    if (m.length < n) continue;
    let k = 0;
    while (k < n && m.charCodeAt(k) === buf[start + k]) k++;
    if (k === n) return true;
  }
  return false;
}

/** Where `buf` from `start` to `end` stops beginning `HTTP/x.y` (a read ended inside it), or -1. */
function versionMismatch(buf: Buffer, start: number, end: number): number {
  for (let k = 0; k < end - start && k < 8; k++) {
    const want = HTTP_VERSION[k] as number;
    const c = buf[start + k] as number;
    if (want === -1 ? c < 48 || c > 57 : c !== want) return k;
  }
  return -1;
}

export class RequestParser {
  private readonly sink: RequestSink;
  /** Head bytes counted as node:http counts them (target, names, values); HPE_HEADER_OVERFLOW at this. */
  private readonly maxHeaderSize: number;
  private state = S_START;
  private error: RequestParseError | undefined;

  // ---- the head being read ----------------------------------------------------------------------
  /**
   * A head split over reads is copied here, the bytes of the read it ended in included; offsets
   * below are into it then. Otherwise they are into the read being parsed.
   */
  private carry: Buffer = EMPTY;
  private carried = 0;
  /** Where the scan of a carried head resumes. */
  private scanFrom = 0;
  private headStart = 0;
  private urlStart = 0;
  private urlEnd = 0;
  private versionStart = 0;
  private lineStart = 0;
  private nameEnd = 0;
  private valueStart = 0;
  /** End of the value's last byte that is not whitespace. */
  private valueEnd = 0;
  /** Header name/value offsets, four per header. */
  private fields = new Int32Array(64);
  private fieldCount = 0;
  private counted = 0;
  /** How far the target's form was checked, and where that check is. */
  private targetAt = 0;
  private targetPhase = T_START;
  private inTrailers = false;
  private method = "";
  private major = 0;
  private minor = 0;
  // What the fields said so far.
  private contentLength = -1;
  private hasTransferEncoding = false;
  /** The last Transfer-Encoding coding seen is `chunked` (nothing may follow it). */
  private chunked = false;
  /** The Connection options seen (CONNECTION_* bits). */
  private connection = 0;
  private hasUpgrade = false;
  private keepAlive = true;
  private upgrade = false;

  // ---- the body ----------------------------------------------------------------------------------
  private remaining = 0;
  private extState = X_START;
  /** Bytes of the chunk extensions being read (names and values). */
  private extBytes = 0;
  /** A hex digit of the chunk size was read. */
  private sizeSeen = false;

  constructor(sink: RequestSink, maxHeaderSize: number) {
    this.sink = sink;
    this.maxHeaderSize = maxHeaderSize;
  }

  /** A message has begun and not ended (the connection closing now would cut it short). */
  get inMessage(): boolean {
    const s = this.state;
    return s !== S_START && s !== S_CLOSED && s !== S_STOPPED && s !== S_FAILED;
  }

  /**
   * Parses one read. Returns the bytes consumed (fewer than `data` holds once the connection's
   * HTTP ends: after CONNECT or an upgrade), or the error; after an error nothing more is parsed.
   */
  execute(data: Buffer): number | RequestParseError {
    if (this.state === S_FAILED) return this.error as RequestParseError;
    const end = data.length;
    let i = 0;
    while (i < end) {
      const state = this.state;
      if (state <= S_HEAD_END_LF) i = this.head(data, i, end);
      else if (state === S_LENGTH || state === S_CHUNK_DATA) i = this.body(data, i, end);
      else if (state === S_CLOSED) i = this.afterClose(data, i, end);
      else if (state === S_STOPPED) return i;
      else if (state !== S_FAILED) i = this.readChunkFraming(data, i, end);
      if (this.state === S_FAILED) return this.fail(i);
    }
    return end;
  }

  /** Head bytes from `i` (a request's, or a trailer section's); returns where the read is now. */
  private head(data: Buffer, from: number, end: number): number {
    let i = from;
    if (this.state === S_START) {
      while (i < end && (data[i] === CR || data[i] === LF)) i++;
      if (i === end) return end;
      this.startMessage(i);
      this.sink.onMessageBegin();
    }
    // At a line's start (a trailer section that begins with this read) the line starts here.
    if (this.state === S_LINE && this.carried === 0) this.lineStart = i;
    const next = this.carried > 0 ? this.continueHead(data) : this.readHead(data, i, end);
    return next < 0 ? end : next;
  }

  /** Body bytes from `i`: a Content-Length body's, or a chunk's data. */
  private body(data: Buffer, i: number, end: number): number {
    const n = Math.min(this.remaining, end - i);
    this.remaining -= n;
    if (this.state === S_LENGTH) {
      this.sink.onBody(i === 0 && n === end ? data : data.subarray(i, i + n));
      if (this.remaining === 0) this.completeMessage();
    } else {
      this.sink.onBody(data.subarray(i, i + n));
      if (this.remaining === 0) this.state = S_CHUNK_DATA_CR;
    }
    return i + n;
  }

  /** After a message that closes the connection: CR and LF are skipped, anything else is an error. */
  private afterClose(data: Buffer, from: number, end: number): number {
    let i = from;
    while (i < end && (data[i] === CR || data[i] === LF)) i++;
    if (i < end) this.setError("HPE_CLOSED_CONNECTION", "Data after `Connection: close`");
    return i;
  }

  /** The connection ended: an error when a message was cut short (llhttp's HPE_INVALID_EOF_STATE). */
  finish(): RequestParseError | undefined {
    if (this.state === S_FAILED) return undefined;
    if (!this.inMessage) return undefined;
    this.setError("HPE_INVALID_EOF_STATE", "Invalid EOF state");
    return this.error;
  }

  private fail(at: number): RequestParseError {
    const err = this.error as RequestParseError;
    err.bytesParsed = at;
    return err;
  }

  private setError(code: string, reason: string): void {
    if (this.state === S_FAILED) return;
    this.state = S_FAILED;
    this.error = new RequestParseError(code, reason);
    this.carry = EMPTY;
    this.carried = 0;
  }

  private startMessage(at: number): void {
    this.state = S_METHOD;
    this.headStart = at;
    this.lineStart = at;
    this.fieldCount = 0;
    this.counted = 0;
    this.inTrailers = false;
    this.contentLength = -1;
    this.hasTransferEncoding = false;
    this.chunked = false;
    this.connection = 0;
    this.hasUpgrade = false;
  }

  /**
   * A head that began in an earlier read: this read's bytes are appended to the carried ones and
   * the scan goes on where it stopped. Returns the offset in `data` after the head, -1 when more
   * is needed, or -2 on an error.
   */
  private continueHead(data: Buffer): number {
    const before = this.carried;
    if (this.carryTooLong(before + data.length)) return -2;
    let carry = this.carry;
    if (before + data.length > carry.length) {
      const grown = Buffer.allocUnsafe(Math.max(carry.length * 2, before + data.length));
      carry.copy(grown, 0, 0, before);
      carry = grown;
      this.carry = grown;
    }
    data.copy(carry, before);
    const total = before + data.length;
    const next = this.scanHead(carry, this.scanFrom, total);
    if (next === -1) {
      this.carried = total;
      this.scanFrom = total;
      return -1;
    }
    if (next < 0) return -2;
    this.carried = 0;
    this.carry = this.carry.length > 16 * 1024 ? EMPTY : this.carry;
    return next - before;
  }

  /** A head in the read being parsed, from `at`. Returns as continueHead does. */
  private readHead(data: Buffer, at: number, end: number): number {
    const next = this.scanHead(data, at, end);
    if (next !== -1) return next;
    // Split over reads: its bytes so far are kept, offsets moved to the copy.
    const start = this.inTrailers ? this.lineStart : this.headStart;
    const length = end - start;
    if (this.carryTooLong(length)) return -2;
    if (this.carry.length < length || this.carry.length === 0)
      this.carry = Buffer.allocUnsafe(Math.max(1024, length * 2));
    data.copy(this.carry, 0, start, end);
    this.rebase(start);
    this.carried = length;
    this.scanFrom = length;
    return -1;
  }

  /**
   * Whether `bytes` of an unfinished head are more than are kept across reads (then it is refused). Delimiters and whitespace are not counted
   * against the head's limit (as node:http counts), so without this a head of blank-valued lines
   * could grow without bound; past it the head is refused (431), where llhttp, which keeps no bytes,
   * would go on reading.
   */
  private carryTooLong(bytes: number): boolean {
    if (bytes <= 2 * this.maxHeaderSize + 64 * 1024) return false;
    this.setError("HPE_HEADER_OVERFLOW", "Header overflow");
    return true;
  }

  /** Moves every head offset back by `by` (the head's bytes were copied to the carry buffer). */
  private rebase(by: number): void {
    this.headStart -= by;
    this.urlStart -= by;
    this.urlEnd -= by;
    this.targetAt -= by;
    this.versionStart -= by;
    this.lineStart -= by;
    this.nameEnd -= by;
    this.valueStart -= by;
    this.valueEnd -= by;
    const f = this.fields;
    for (let k = 0; k < this.fieldCount * 4; k++) f[k] = (f[k] as number) - by;
  }

  /**
   * The head's bytes in `buf` from `from` to `end`, resuming in the state the last scan left.
   * Returns the offset after the head's blank line, -1 when the bytes ran out, or -2 on an error.
   */
  private scanHead(buf: Buffer, from: number, end: number): number {
    let i = from;
    while (i < end) {
      const state = this.state;
      i = state < S_LINE ? this.requestLine(buf, i, end) : this.fieldLine(buf, i, end);
      if (this.state === S_FAILED) return -2;
      if (this.state > S_HEAD_END_LF) {
        // The blank line: the head is complete (or the trailer section).
        this.headComplete(buf);
        return i;
      }
    }
    return this.outOfBytes(buf, i) ? -1 : -2;
  }

  /** Request line bytes from `i`, in the current state; returns where the scan is now. */
  private requestLine(buf: Buffer, from: number, end: number): number {
    let i = from;
    switch (this.state) {
      case S_METHOD:
        while (i < end && TOKEN[buf[i] as number] === 1) i++;
        if (i === end) return i;
        if (buf[i] !== SP || !this.readMethod(buf, this.headStart, i)) {
          this.setError("HPE_INVALID_METHOD", "Invalid method encountered");
          return i;
        }
        this.state = S_AFTER_METHOD;
        return i + 1;
      case S_AFTER_METHOD:
        while (i < end && buf[i] === SP) i++;
        if (i < end) {
          this.urlStart = i;
          this.targetAt = i;
          this.targetPhase = T_START;
          this.state = S_URL;
        }
        return i;
      case S_URL:
        return this.target(buf, i, end);
      case S_AFTER_URL:
        while (i < end && buf[i] === SP) i++;
        if (i < end) {
          this.versionStart = i;
          this.state = S_VERSION;
        }
        return i;
      case S_VERSION:
        while (i < end && buf[i] !== CR && i - this.versionStart < 9) i++;
        if (i === end) return i;
        if (this.readVersion(buf, this.versionStart, i)) this.state = S_VERSION_LF;
        return i + 1;
      default:
        // S_VERSION_LF
        if (buf[i] !== LF) {
          this.setError("HPE_LF_EXPECTED", "Missing expected LF after version");
          return i;
        }
        this.lineStart = i + 1;
        this.state = S_LINE;
        return i + 1;
    }
  }

  /** Target bytes from `i`: visible ASCII up to the space, then its form is checked. */
  private target(buf: Buffer, from: number, end: number): number {
    let i = from;
    while (i < end && TARGET[buf[i] as number] === 1) i++;
    if (i === end) return i;
    if (buf[i] !== SP) {
      this.setError("HPE_INVALID_URL", "Invalid characters in url");
      return i;
    }
    this.urlEnd = i;
    const phase = this.checkTarget(buf, i) ? this.targetPhase : T_START;
    if (phase !== T_REST && phase !== T_AUTHORITY) {
      this.setError("HPE_INVALID_URL", "Invalid url");
      return i;
    }
    // node:http counts the target against the head's limit as soon as it is read.
    this.counted += i - this.urlStart;
    if (this.counted >= this.maxHeaderSize) {
      this.setError("HPE_HEADER_OVERFLOW", "Header overflow");
      return i;
    }
    this.state = S_AFTER_URL;
    return i + 1;
  }

  /** Header (or trailer) line bytes from `i`, in the current state; returns where the scan is now. */
  private fieldLine(buf: Buffer, from: number, end: number): number {
    let i = from;
    switch (this.state) {
      case S_LINE: {
        const c = buf[i] as number;
        if (c === CR) this.state = S_HEAD_END_LF;
        else if (TOKEN[c] === 1) {
          this.lineStart = i;
          this.state = S_NAME;
          return i;
        } else
          // A line starting with whitespace is obs-fold (or, first, a space after the start line).
          this.setError(
            "HPE_INVALID_HEADER_TOKEN",
            c === SP || c === HTAB
              ? "Unexpected whitespace at the start of a header line"
              : "Invalid header field char",
          );
        return i + 1;
      }
      case S_NAME:
        while (i < end && TOKEN[buf[i] as number] === 1) i++;
        if (i === end) return i;
        if (buf[i] !== 58 /* : */) {
          this.setError("HPE_INVALID_HEADER_TOKEN", "Invalid header token");
          return i;
        }
        this.nameEnd = i;
        // node:http counts a name against the head's limit as soon as it is read.
        this.counted += i - this.lineStart;
        if (this.counted >= this.maxHeaderSize) {
          this.setError("HPE_HEADER_OVERFLOW", "Header overflow");
          return i;
        }
        this.state = S_VALUE_OWS;
        return i + 1;
      case S_VALUE_OWS:
        while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
        if (i < end) {
          this.valueStart = i;
          this.valueEnd = i;
          this.state = S_VALUE;
        }
        return i;
      case S_VALUE:
        return this.value(buf, i, end);
      case S_VALUE_LF:
        return this.valueLf(buf, i);
      default:
        // S_HEAD_END_LF
        if (buf[i] !== LF) this.setError("HPE_LF_EXPECTED", "Missing expected LF after headers");
        else this.state = this.inTrailers ? S_TRAILERS_DONE : S_HEAD_DONE;
        return i + 1;
    }
  }

  /** Value bytes from `i` up to the line's CR (trailing whitespace noted, not kept). */
  private value(buf: Buffer, from: number, end: number): number {
    let i = from;
    let last = this.valueEnd;
    let c = 0;
    while (i < end) {
      c = buf[i] as number;
      if (VALUE[c] === 0) break;
      i++;
      if (c !== SP && c !== HTAB) last = i;
    }
    this.valueEnd = last;
    if (i === end) return i;
    if (c !== CR) {
      if (!this.framingErrorBefore(buf, i))
        this.setError(
          c === LF ? "HPE_CR_EXPECTED" : "HPE_INVALID_HEADER_TOKEN",
          c === LF ? "Missing expected CR after header value" : "Invalid header value char",
        );
      return i;
    }
    this.state = S_VALUE_LF;
    return i + 1;
  }

  /** The LF that ends a header line: the field is complete. */
  private valueLf(buf: Buffer, i: number): number {
    if (buf[i] !== LF) {
      if (this.framingErrorBefore(buf, i - 1)) return i;
      // node:http counts the value before llhttp finds the missing LF.
      if (this.counted + this.pendingCount(i) >= this.maxHeaderSize)
        this.setError("HPE_HEADER_OVERFLOW", "Header overflow");
      else this.setError("HPE_LF_EXPECTED", "Missing expected LF after header value");
      return i;
    }
    if (!this.field(buf, i - 1)) return i;
    this.lineStart = i + 1;
    this.state = S_LINE;
    return i + 1;
  }

  /**
   * The read ended inside the head. What came so far must be able to begin a valid request line
   * (llhttp finds a bad byte as soon as it reads it), and it already counts against the limit.
   * False on an error.
   */
  private outOfBytes(buf: Buffer, i: number): boolean {
    const state = this.state;
    if (state === S_METHOD && !methodPrefix(buf, this.headStart, i)) {
      this.setError("HPE_INVALID_METHOD", "Invalid method encountered");
      return false;
    }
    if (state === S_URL && !this.checkTarget(buf, i)) {
      this.setError("HPE_INVALID_URL", "Invalid url");
      return false;
    }
    if (state === S_VERSION) {
      const bad = versionMismatch(buf, this.versionStart, i);
      if (bad >= 0) {
        this.setError(
          bad < 5 ? "HPE_INVALID_CONSTANT" : "HPE_INVALID_VERSION",
          bad < 5 ? "Expected HTTP/" : "Invalid HTTP version",
        );
        return false;
      }
    }
    if (this.counted + this.pendingCount(i) >= this.maxHeaderSize) {
      this.setError("HPE_HEADER_OVERFLOW", "Header overflow");
      return false;
    }
    return true;
  }

  /**
   * What node:http has counted of the part being read when the bytes stop at `i`: the target so
   * far, a name so far, or a value so far (a complete name is in `counted` already; delimiters and
   * leading whitespace are not counted).
   */
  private pendingCount(i: number): number {
    switch (this.state) {
      case S_URL:
        return i - this.urlStart;
      case S_NAME:
        return i - this.lineStart;
      case S_VALUE:
        return i - this.valueStart;
      case S_VALUE_LF:
        // The CR is not the value's.
        return i - 1 - this.valueStart;
      default:
        return 0;
    }
  }

  /** The method from `start` to `end`: one llhttp knows (the common ones without a string). */
  private readMethod(buf: Buffer, start: number, end: number): boolean {
    const n = end - start;
    if (n === 3 && buf[start] === 71 && buf[start + 1] === 69 && buf[start + 2] === 84) {
      this.method = "GET";
      return true;
    }
    if (
      n === 4 &&
      buf[start] === 80 &&
      buf[start + 1] === 79 &&
      buf[start + 2] === 83 &&
      buf[start + 3] === 84
    ) {
      this.method = "POST";
      return true;
    }
    if (n === 0 || n > 11) return false;
    const known = METHOD_SET.get(latin1(buf, start, end));
    if (known === undefined) return false;
    this.method = known;
    return true;
  }

  /**
   * Checks the target's form (its bytes are visible ASCII already) from where the last check
   * stopped up to `end`: origin-form (`/…`) and asterisk-form (`*…`) take any byte after the first;
   * absolute-form is letters, "://", then an authority up to a "/" or "?"; CONNECT's target is an
   * authority. False on a byte the form may not hold there. Resumable, so a target that arrives a
   * byte at a time is read once.
   */
  private checkTarget(buf: Buffer, end: number): boolean {
    let k = this.targetAt;
    let phase = this.targetPhase;
    const connect = this.method === "CONNECT";
    if (phase === T_START && k < end) {
      const c0 = buf[k] as number;
      phase = connect ? T_AUTHORITY : c0 === 47 /* / */ || c0 === 42 /* * */ ? T_REST : T_SCHEME;
    }
    for (; k < end && phase !== T_REST; k++) {
      const c = buf[k] as number;
      if (phase === T_AUTHORITY) {
        if (!connect && (c === 47 || c === 63) /* ? */) phase = T_REST;
        else if (AUTHORITY[c] === 0) return false;
      } else if (phase === T_SCHEME) {
        if ((c | 0x20) >= 97 && (c | 0x20) <= 122) continue;
        if (c !== 58 /* : */ || k === this.urlStart) return false;
        phase = T_SLASH1;
      } else {
        if (c !== 47) return false;
        phase = phase === T_SLASH1 ? T_SLASH2 : T_AUTHORITY;
      }
    }
    this.targetAt = phase === T_REST ? end : k;
    this.targetPhase = phase;
    return true;
  }

  /** `HTTP/x.y` from `start` to `end` (the CR), x.y one of 0.9, 1.0, 1.1, 2.0 as llhttp allows. */
  private readVersion(buf: Buffer, start: number, end: number): boolean {
    if (
      end - start < 5 ||
      buf[start] !== 72 ||
      buf[start + 1] !== 84 ||
      buf[start + 2] !== 84 ||
      buf[start + 3] !== 80 ||
      buf[start + 4] !== 47
    ) {
      this.setError("HPE_INVALID_CONSTANT", "Expected HTTP/");
      return false;
    }
    const major = (buf[start + 5] as number) - 48;
    const minor = (buf[start + 7] as number) - 48;
    if (end - start !== 8 || buf[start + 6] !== 46 || major < 0 || major > 9 || minor < 0 || minor > 9) {
      this.setError(
        "HPE_INVALID_VERSION",
        end - start > 8 ? "Expected CRLF after version" : "Invalid HTTP version",
      );
      return false;
    }
    const v = major * 10 + minor;
    if (v !== 9 && v !== 10 && v !== 11 && v !== 20) {
      this.setError("HPE_INVALID_VERSION", "Invalid HTTP version");
      return false;
    }
    this.major = major;
    this.minor = minor;
    return true;
  }

  /**
   * A header (or trailer) line ended (its CR at `cr`): counted, and for the head recorded and read
   * for the fields that frame the message. False on an error.
   */
  private field(buf: Buffer, cr: number): boolean {
    const nameStart = this.lineStart;
    const nameEnd = this.nameEnd;
    const vs = this.valueStart;
    const ve = this.valueEnd;
    // What the value means first: llhttp finds a bad framing value while it reads it, before
    // node:http counts the value (at its end) against the limit (the name counted at its colon).
    const kind = fieldKind(buf, nameStart, nameEnd);
    if (!(this.inTrailers ? this.trailer(kind, buf, vs, ve) : this.framing(kind, buf, vs, ve, cr)))
      return false;
    // node:http counts the value from its first byte to the line's end, trailing whitespace in.
    this.counted += cr - vs;
    if (this.counted >= this.maxHeaderSize) {
      this.setError("HPE_HEADER_OVERFLOW", "Header overflow");
      return false;
    }
    if (this.inTrailers) return true;
    const n = this.fieldCount;
    let f = this.fields;
    if (n * 4 + 4 > f.length) {
      const grown = new Int32Array(f.length * 2);
      grown.set(f);
      f = grown;
      this.fields = grown;
    }
    f[n * 4] = nameStart;
    f[n * 4 + 1] = nameEnd;
    f[n * 4 + 2] = vs;
    f[n * 4 + 3] = ve;
    this.fieldCount = n + 1;
    return true;
  }

  /**
   * What a head field of `kind` with the value from `vs` to `ve` (the line's CR at `cr`) says about
   * the message's framing and connection. False on an error.
   */
  private framing(kind: number, buf: Buffer, vs: number, ve: number, cr: number): boolean {
    switch (kind) {
      case F_CONTENT_LENGTH:
        return this.readContentLength(buf, vs, ve);
      case F_TRANSFER_ENCODING:
        return this.readTransferEncoding(buf, vs, ve, cr);
      case F_CONNECTION:
        this.connection |= connectionOptions(buf, vs, ve);
        return true;
      case F_UPGRADE:
        // An empty Upgrade asks for nothing (llhttp's rule).
        if (ve > vs) this.hasUpgrade = true;
        return true;
      default:
        return true;
    }
  }

  /**
   * A header line breaks off at `at` (a byte no value may hold): if it is a framing field whose value
   * up to there is already wrong, that is the error, as llhttp reads such a value byte by byte.
   */
  private framingErrorBefore(buf: Buffer, at: number): boolean {
    const kind = fieldKind(buf, this.lineStart, this.nameEnd);
    if (kind !== F_CONTENT_LENGTH && kind !== F_TRANSFER_ENCODING) return false;
    const vs = this.valueStart;
    let ve = at;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    if (ve === vs) return false;
    if (this.inTrailers) return !this.trailer(kind, buf, vs, ve);
    return !this.framing(kind, buf, vs, ve, at);
  }

  /**
   * A trailer line: dropped (as Envoy drops request trailers), but what llhttp refuses in one is
   * refused here too (framing fields), and `Connection: close` in one closes the connection after
   * the message, as llhttp reads it.
   */
  private trailer(kind: number, buf: Buffer, vs: number, ve: number): boolean {
    switch (kind) {
      case F_CONTENT_LENGTH:
        this.setError("HPE_INVALID_CONTENT_LENGTH", "Content-Length can't be present with Transfer-Encoding");
        return false;
      case F_TRANSFER_ENCODING:
        this.setError("HPE_INVALID_TRANSFER_ENCODING", "Invalid `Transfer-Encoding` header value");
        return false;
      case F_CONNECTION:
        this.connection |= connectionOptions(buf, vs, ve);
        return true;
      default:
        return true;
    }
  }

  private readContentLength(buf: Buffer, vs: number, ve: number): boolean {
    if (this.contentLength >= 0) {
      this.setError("HPE_UNEXPECTED_CONTENT_LENGTH", "Duplicate Content-Length");
      return false;
    }
    if (this.hasTransferEncoding) {
      this.setError("HPE_INVALID_CONTENT_LENGTH", "Content-Length can't be present with Transfer-Encoding");
      return false;
    }
    if (vs === ve) {
      this.setError("HPE_INVALID_CONTENT_LENGTH", "Empty Content-Length");
      return false;
    }
    let n = 0;
    for (let k = vs; k < ve; k++) {
      const d = (buf[k] as number) - 48;
      if (d < 0 || d > 9) {
        this.setError("HPE_INVALID_CONTENT_LENGTH", "Invalid character in Content-Length");
        return false;
      }
      n = n * 10 + d;
      if (n > MAX_LENGTH) {
        this.setError("HPE_INVALID_CONTENT_LENGTH", "Content-Length overflow");
        return false;
      }
    }
    this.contentLength = n;
    return true;
  }

  /**
   * Transfer-Encoding values, in order across lines: `chunked` must be the last coding, and nothing
   * (not even a comma) may follow it.
   */
  private readTransferEncoding(buf: Buffer, vs: number, ve: number, cr: number): boolean {
    if (this.contentLength >= 0) {
      this.setError(
        "HPE_INVALID_TRANSFER_ENCODING",
        "Transfer-Encoding can't be present with Content-Length",
      );
      return false;
    }
    if (vs === ve) {
      this.setError("HPE_INVALID_TRANSFER_ENCODING", "Empty Transfer-Encoding");
      return false;
    }
    this.hasTransferEncoding = true;
    let k = vs;
    while (k < ve) {
      if (this.chunked) {
        this.setError("HPE_INVALID_TRANSFER_ENCODING", "Invalid `Transfer-Encoding` header value");
        return false;
      }
      let e = k;
      while (e < ve && buf[e] !== 44 /* , */) e++;
      let s = k;
      let t = e;
      while (s < t && isOws(buf[s] as number)) s++;
      while (t > s && isOws(buf[t - 1] as number)) t--;
      this.chunked = t - s === 7 && isName(buf, s, NAMES.chunked);
      if (this.chunked && e < ve) {
        // A comma after `chunked`, even with nothing behind it.
        this.setError("HPE_INVALID_TRANSFER_ENCODING", "Invalid `Transfer-Encoding` header value");
        return false;
      }
      k = e + 1;
    }
    // llhttp takes trailing spaces after the last `chunked` but not a tab: then it is another coding.
    if (this.chunked) for (let t = ve; t < cr; t++) if (buf[t] === HTAB) this.chunked = false;
    return true;
  }

  /** The head (or the trailer section) ended: the request goes to the sink, then its body is read. */
  private headComplete(buf: Buffer): void {
    if (this.inTrailers) {
      this.completeMessage();
      return;
    }
    if (this.hasTransferEncoding && !this.chunked) {
      this.setError("HPE_INVALID_TRANSFER_ENCODING", "Request has invalid `Transfer-Encoding`");
      return;
    }
    const f = this.fields;
    const n = this.fieldCount;
    const headers: string[] = new Array<string>(n * 2);
    for (let k = 0; k < n; k++) {
      headers[k * 2] = latin1(buf, f[k * 4] as number, f[k * 4 + 1] as number);
      headers[k * 2 + 1] = latin1(buf, f[k * 4 + 2] as number, f[k * 4 + 3] as number);
    }
    const url = latin1(buf, this.urlStart, this.urlEnd);
    const method = this.method;
    const connect = method === "CONNECT";
    const major = this.major;
    const minor = this.minor;
    // llhttp's rule: HTTP/1.1 (and later minors) unless `close`; others only with `keep-alive`.
    const connection = this.connection;
    this.keepAlive =
      major > 0 && minor > 0
        ? (connection & CONNECTION_CLOSE) === 0
        : (connection & CONNECTION_KEEP_ALIVE) !== 0;
    this.upgrade = connect || (this.hasUpgrade && (connection & CONNECTION_UPGRADE) !== 0);
    if (connect) this.state = S_STOPPED;
    else if (this.chunked) {
      this.state = S_CHUNK_SIZE;
      this.sizeSeen = false;
      this.remaining = 0;
    } else if (this.contentLength > 0) {
      this.state = S_LENGTH;
      this.remaining = this.contentLength;
    } else this.state = S_START;
    this.sink.onHeadersComplete(major, minor, headers, method, url, this.upgrade, this.keepAlive);
    if (this.state === S_FAILED) return;
    if (connect) {
      this.sink.onMessageComplete();
      return;
    }
    if (this.state === S_START) this.completeMessage();
  }

  /** The message's last byte was read. */
  private completeMessage(): void {
    // A trailer may have said `Connection: close`.
    if (this.inTrailers && (this.connection & CONNECTION_CLOSE) !== 0) this.keepAlive = false;
    this.state = this.upgrade ? S_STOPPED : this.keepAlive ? S_START : S_CLOSED;
    this.sink.onMessageComplete();
  }

  /** Chunk sizes, extensions and the CRLFs around chunk data. Returns the offset reached. */
  private readChunkFraming(buf: Buffer, from: number, end: number): number {
    let i = from;
    while (i < end) {
      const c = buf[i] as number;
      switch (this.state) {
        case S_CHUNK_SIZE: {
          const d = HEX[c] as number;
          if (d >= 0) {
            this.remaining = this.remaining * 16 + d;
            if (this.remaining > MAX_LENGTH) {
              this.setError("HPE_INVALID_CHUNK_SIZE", "Chunk size overflow");
              return i;
            }
            this.sizeSeen = true;
            i++;
            continue;
          }
          if (!this.sizeSeen) {
            this.setError("HPE_INVALID_CHUNK_SIZE", "Invalid character in chunk size");
            return i;
          }
          if (c === CR) this.state = S_CHUNK_SIZE_LF;
          else if (c === 59 /* ; */) {
            this.state = S_CHUNK_EXT;
            this.extState = X_START;
            this.extBytes = 0;
          } else if (c === LF) {
            this.setError("HPE_CR_EXPECTED", "Missing expected CR after chunk size");
            return i;
          } else {
            this.setError("HPE_INVALID_CHUNK_SIZE", "Invalid character in chunk size");
            return i;
          }
          i++;
          continue;
        }
        case S_CHUNK_EXT:
          if (!this.chunkExtension(c)) return i;
          i++;
          continue;
        case S_CHUNK_SIZE_LF: {
          if (c !== LF) {
            this.setError("HPE_LF_EXPECTED", "Missing expected LF after chunk size");
            return i;
          }
          i++;
          this.sizeSeen = false;
          if (this.remaining === 0) {
            // The last chunk: trailer lines follow, read like header lines (and dropped).
            this.inTrailers = true;
            // node:http counts a trailer section afresh.
            this.counted = 0;
            this.lineStart = i;
            this.state = S_LINE;
            return i;
          }
          this.state = S_CHUNK_DATA;
          return i;
        }
        case S_CHUNK_DATA_CR:
          if (c !== CR) {
            this.setError(
              c === LF ? "HPE_CR_EXPECTED" : "HPE_STRICT",
              c === LF ? "Missing expected CR after chunk data" : "Expected LF after chunk data",
            );
            return i;
          }
          this.state = S_CHUNK_DATA_LF;
          i++;
          continue;
        case S_CHUNK_DATA_LF:
          if (c !== LF) {
            this.setError("HPE_STRICT", "Expected LF after chunk data");
            return i;
          }
          this.state = S_CHUNK_SIZE;
          this.remaining = 0;
          i++;
          continue;
        default:
          return i;
      }
    }
    return i;
  }

  /**
   * One byte of a chunk extension (`;name[=token|"quoted"]`, repeated; as llhttp takes them, an
   * empty name and `;;` too). False on an error.
   */
  private chunkExtension(c: number): boolean {
    const x = this.extState;
    // Names and values count (node:http's count, per chunk), not the ";" and "=" between them.
    const separator = (c === 59 /* ; */ || c === 61) /* = */ && (x < X_QUOTED || x === X_QUOTED_END);
    if (!separator && ++this.extBytes > MAX_CHUNK_EXTENSION) {
      this.setError("HPE_CHUNK_EXTENSIONS_OVERFLOW", "Chunk extensions overflow");
      return false;
    }
    const named = x === X_START || x === X_NAME;
    if (x >= X_QUOTED) {
      if (this.quotedExtension(c)) return true;
    } else if (TOKEN[c] === 1) {
      this.extState = named ? X_NAME : X_VALUE;
      return true;
    } else if (c === 59 /* ; */) {
      this.extState = X_START;
      return true;
    } else if (c === 61 /* = */ && named) {
      this.extState = X_VALUE_START;
      return true;
    } else if (c === 34 /* " */ && x === X_VALUE_START) {
      this.extState = X_QUOTED;
      return true;
    } else if (c === CR && x !== X_START) return this.extensionsEnd();
    this.setError(c === LF ? "HPE_CR_EXPECTED" : "HPE_STRICT", "Invalid character in chunk extensions");
    return false;
  }

  /** One byte of a quoted chunk extension value, or of what may follow it. False when it may not. */
  private quotedExtension(c: number): boolean {
    switch (this.extState) {
      case X_QUOTED:
        if (c === 34 /* " */) this.extState = X_QUOTED_END;
        else if (c === 92 /* \ */) this.extState = X_QUOTED_ESCAPE;
        else return QUOTED[c] === 1;
        return true;
      case X_QUOTED_ESCAPE:
        this.extState = X_QUOTED;
        return ESCAPABLE[c] === 1;
      default:
        // X_QUOTED_END
        if (c === 59) {
          this.extState = X_START;
          return true;
        }
        return c === CR && this.extensionsEnd();
    }
  }

  private extensionsEnd(): boolean {
    this.state = S_CHUNK_SIZE_LF;
    return true;
  }
}
