// A strict HTTP/1.1 response parser for the upstream client (RFC 9112). It reads one response per
// request: status line and headers, then the body framed by Content-Length, chunked coding or the
// connection's close. Anything that could make two parties disagree on where a response ends (the
// request-smuggling family) is an error, and a connection whose framing is in doubt is never reused.

/** Why a response could not be read; the connection that carried it is closed. */
export class UpstreamProtocolError extends Error {
  readonly code = "TETHER_ERR_UPSTREAM_PROTOCOL";

  constructor(message: string) {
    super(`malformed upstream response: ${message}`);
    this.name = "UpstreamProtocolError";
  }
}

/** What the parser reports; the connection implements it (no closures per response). */
export interface ResponseSink {
  /** A 1xx response (never 101: that is an error, no upgrade is ever asked for). */
  onInterim(status: number, headers: string[]): void;
  /** The final response head; `contentLength` is -1 unless Content-Length frames the body. */
  onHead(status: number, headers: string[], contentLength: number): void;
  onBody(chunk: Buffer): void;
  /** The response is complete; `reusable` when the connection may carry another request. */
  onComplete(reusable: boolean): void;
}

/** Where the parser is in a response (a plain number: compared on every read). */
const State = {
  Head: 0,
  Length: 1,
  ChunkSize: 2,
  ChunkData: 3,
  ChunkDataEnd: 4,
  Trailers: 5,
  UntilClose: 6,
  Done: 7,
} as const;

/** Longest chunk-size line (size and extensions) accepted. */
const MAX_CHUNK_LINE = 4096;
/** Content-Length and chunk sizes stay below 2^53 (15 decimal / 13 hex digits). */
const MAX_LENGTH_DIGITS = 15;
const MAX_HEX_DIGITS = 13;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");
const EMPTY = Buffer.alloc(0);

interface HeadFields {
  readonly headers: string[];
  contentLength: string | undefined;
  transferEncoding: string | undefined;
  connection: string;
}

export class ResponseParser {
  private readonly sink: ResponseSink;
  private readonly maxHeadBytes: number;
  private state: number = State.Done;
  /** Bytes of an unfinished head, size line or trailer section, kept across reads. */
  private partial: Buffer = EMPTY;
  private remaining = 0;
  private trailerBytes = 0;
  private noBody = false;
  private keepAlive = false;
  private halted = false;
  /** The server's Keep-Alive: timeout hint in seconds, or -1. */
  keepAliveHintS = -1;

  constructor(sink: ResponseSink, maxHeadBytes: number) {
    this.sink = sink;
    this.maxHeadBytes = maxHeadBytes;
  }

  /** Expect the response to a new request (`head`: to a HEAD request, so no body). */
  reset(head: boolean): void {
    this.state = State.Head;
    this.partial = EMPTY;
    this.noBody = head;
    this.halted = false;
    this.keepAliveHintS = -1;
  }

  /** Stop delivering: the exchange was abandoned inside a callback. */
  halt(): void {
    this.halted = true;
  }

  /** True while the body runs until the connection closes. */
  get untilClose(): boolean {
    return this.state === State.UntilClose;
  }

  /** True while no byte of the response has been read. */
  get idle(): boolean {
    return this.state === State.Head && this.partial.length === 0;
  }

  /** Reads `chunk`; returns an error when the response is malformed (the caller closes). */
  execute(chunk: Buffer): UpstreamProtocolError | undefined {
    let at = 0;
    const end = chunk.length;
    while (at < end && !this.halted) {
      switch (this.state) {
        case State.Head: {
          const r = this.readHead(chunk, at);
          if (typeof r !== "number") return r;
          if (r < 0) return undefined;
          at = r;
          // A body-less response (HEAD, 204, 304, length 0) is complete with its head.
          if (this.bodyless()) {
            this.complete(at < end);
            return undefined;
          }
          break;
        }
        case State.Length: {
          const n = Math.min(this.remaining, end - at);
          this.remaining -= n;
          const last = this.remaining === 0;
          if (last) this.state = State.Done;
          this.sink.onBody(at === 0 && n === end ? chunk : chunk.subarray(at, at + n));
          at += n;
          if (last) {
            this.complete(at < end);
            return undefined;
          }
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, end - at);
          this.remaining -= n;
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          this.sink.onBody(chunk.subarray(at, at + n));
          at += n;
          break;
        }
        case State.UntilClose:
          this.sink.onBody(at === 0 ? chunk : chunk.subarray(at));
          return undefined;
        case State.Done:
          return new UpstreamProtocolError("data after the end of the response");
        default: {
          const r = this.readLine(chunk, at);
          if (typeof r !== "number") return r;
          if (r < 0) return undefined;
          at = r;
          if (this.state === State.Done) {
            this.complete(at < end);
            return undefined;
          }
        }
      }
    }
    return undefined;
  }

  /** The connection closed: completes a close-delimited body, else the response was cut short. */
  finish(): UpstreamProtocolError | undefined {
    if (this.state === State.UntilClose) {
      this.state = State.Done;
      this.sink.onComplete(false);
      return undefined;
    }
    return new UpstreamProtocolError("connection closed before the response was complete");
  }

  /** Read through a method so TypeScript does not narrow `state` across the head's callbacks. */
  private bodyless(): boolean {
    return this.state === State.Done;
  }

  private complete(trailingBytes: boolean): void {
    this.state = State.Done;
    if (this.halted) return;
    this.partial = EMPTY;
    // Bytes after the response we asked for: the server and we disagree on framing.
    this.sink.onComplete(this.keepAlive && !trailingBytes);
  }

  /** Returns the offset after the head, -1 when more bytes are needed, or an error. */
  private readHead(chunk: Buffer, at: number): number | UpstreamProtocolError {
    let buf = chunk;
    let from = at;
    const carried = this.partial.length;
    if (carried > 0) {
      buf = Buffer.concat([this.partial, chunk.subarray(at)]);
      from = 0;
    }
    // The terminator may straddle the previous read: look from 3 bytes before the new data.
    const idx = buf.indexOf(HEAD_END, carried > 3 ? carried - 3 : from);
    if (idx === -1) {
      if (buf.length - from > this.maxHeadBytes)
        return new UpstreamProtocolError(`response head larger than ${this.maxHeadBytes} bytes`);
      this.partial = carried > 0 ? buf : Buffer.from(chunk.subarray(at));
      return -1;
    }
    if (idx + 4 - from > this.maxHeadBytes)
      return new UpstreamProtocolError(`response head larger than ${this.maxHeadBytes} bytes`);
    this.partial = EMPTY;
    const err = this.parseHead(buf.toString("latin1", from, idx));
    if (err !== undefined) return err;
    // Offset in `chunk`: the head ended `idx + 4 - carried` bytes into the new data.
    return carried > 0 ? at + idx + 4 - carried : idx + 4;
  }

  private parseHead(text: string): UpstreamProtocolError | undefined {
    let eol = text.indexOf("\r\n");
    if (eol === -1) eol = text.length;
    const status = statusOf(text, eol);
    if (status < 0)
      return new UpstreamProtocolError(`bad status line ${JSON.stringify(text.slice(0, Math.min(eol, 64)))}`);
    const http10 = text.charCodeAt(7) === 48; /* 0 */
    const fields = this.readFields(text, eol + 2);
    if (fields instanceof UpstreamProtocolError) return fields;
    if (status < 200) {
      if (status === 101)
        return new UpstreamProtocolError("101 Switching Protocols without an upgrade request");
      this.state = State.Head;
      this.sink.onInterim(status, fields.headers);
      return undefined;
    }
    this.keepAlive = http10
      ? hasToken(fields.connection, "keep-alive")
      : !hasToken(fields.connection, "close");
    const err = this.frame(status, http10, fields);
    if (err !== undefined) return err;
    this.sink.onHead(status, fields.headers, this.state === State.Length ? this.remaining : -1);
    return undefined;
  }

  /**
   * The header lines from offset `from` of the head: lower-cased name/value pairs and the fields
   * that frame the message. One pass over the head's characters, no array of lines.
   */
  private readFields(text: string, from: number): HeadFields | UpstreamProtocolError {
    const f: HeadFields = {
      headers: [],
      contentLength: undefined,
      transferEncoding: undefined,
      connection: "",
    };
    const end = text.length;
    // Names are sliced from the head lower-cased once: a latin1 head keeps its length, and a
    // flat string lower-cases in V8's fast path where each sliced name would go through its runtime.
    const lowered = text.toLowerCase();
    let at = from;
    while (at < end) {
      const c0 = text.charCodeAt(at);
      if (c0 === 32 || c0 === 9) return new UpstreamProtocolError("obsolete line folding in a header");
      let colon = at;
      // A CR or the head's end stops the name too (neither is a token character).
      while (colon < end && TOKEN_CHARS[text.charCodeAt(colon)] === 1) colon++;
      if (colon === at || text.charCodeAt(colon) !== 58 /* : */) {
        const lineEnd = text.indexOf("\r\n", at);
        return badName(text, at, lineEnd === -1 ? end : lineEnd);
      }
      const lineEnd = valueEnd(text, colon + 1, end);
      if (lineEnd < 0)
        return new UpstreamProtocolError(`control character in header ${text.slice(at, colon)}`);
      let vs = colon + 1;
      let ve = lineEnd;
      while (vs < ve && isOws(text.charCodeAt(vs))) vs++;
      while (ve > vs && isOws(text.charCodeAt(ve - 1))) ve--;
      const lower = lowered.slice(at, colon);
      const value = text.slice(vs, ve);
      at = lineEnd + 2;
      if (lower === "content-length") {
        if (!isDigits(value) || value.length > MAX_LENGTH_DIGITS)
          return new UpstreamProtocolError(`bad content-length ${JSON.stringify(value.slice(0, 32))}`);
        if (f.contentLength !== undefined) {
          if (Number(f.contentLength) !== Number(value))
            return new UpstreamProtocolError("conflicting content-length headers");
          continue;
        }
        f.contentLength = value;
      } else if (lower === "transfer-encoding") {
        f.transferEncoding = f.transferEncoding === undefined ? value : `${f.transferEncoding},${value}`;
      } else if (lower === "connection") {
        f.connection = f.connection === "" ? value.toLowerCase() : `${f.connection},${value.toLowerCase()}`;
      } else if (lower === "keep-alive") {
        this.keepAliveHintS = keepAliveTimeout(value);
      }
      f.headers.push(lower, value);
    }
    return f;
  }

  /** How the final response's body is delimited (RFC 9112 §6.3). */
  private frame(status: number, http10: boolean, f: HeadFields): UpstreamProtocolError | undefined {
    if (this.noBody || status === 204 || status === 304) {
      this.state = State.Done;
      return undefined;
    }
    const te = f.transferEncoding;
    if (te !== undefined) {
      if (f.contentLength !== undefined)
        return new UpstreamProtocolError("both content-length and transfer-encoding");
      if (http10) return new UpstreamProtocolError("transfer-encoding in an HTTP/1.0 response");
      if (te.trim().toLowerCase() !== "chunked")
        return new UpstreamProtocolError(`unsupported transfer-encoding ${JSON.stringify(te.slice(0, 64))}`);
      this.state = State.ChunkSize;
      this.trailerBytes = 0;
    } else if (f.contentLength !== undefined) {
      this.remaining = Number(f.contentLength);
      this.state = this.remaining === 0 ? State.Done : State.Length;
    } else {
      this.state = State.UntilClose;
      this.keepAlive = false;
    }
    return undefined;
  }

  /** A chunk-size line, the CRLF after chunk data, or a trailer line. */
  private readLine(chunk: Buffer, at: number): number | UpstreamProtocolError {
    let buf = chunk;
    let from = at;
    const carried = this.partial.length;
    if (carried > 0) {
      buf = Buffer.concat([this.partial, chunk.subarray(at)]);
      from = 0;
    }
    const idx = buf.indexOf(CRLF, from);
    const limit = this.state === State.Trailers ? this.maxHeadBytes - this.trailerBytes : MAX_CHUNK_LINE;
    if (idx === -1) {
      if (buf.length - from > limit) return new UpstreamProtocolError("chunk-size or trailer line too long");
      this.partial = carried > 0 ? buf : Buffer.from(chunk.subarray(at));
      return -1;
    }
    if (idx - from > limit) return new UpstreamProtocolError("chunk-size or trailer line too long");
    this.partial = EMPTY;
    const line = buf.toString("latin1", from, idx);
    const next = carried > 0 ? at + idx + 2 - carried : idx + 2;
    if (this.state === State.ChunkDataEnd) {
      if (line.length !== 0) return new UpstreamProtocolError("chunk data longer than its size");
      this.state = State.ChunkSize;
      return next;
    }
    if (this.state === State.Trailers) {
      this.trailerBytes += line.length + 2;
      if (line.length === 0) {
        this.state = State.Done;
        return next;
      }
      const c0 = line.charCodeAt(0);
      const colon = line.indexOf(":");
      if (c0 === 32 || c0 === 9 || colon <= 0 || !TOKEN.test(line.slice(0, colon)) || hasCtl(line))
        return new UpstreamProtocolError("bad trailer line");
      return next;
    }
    const size = chunkSize(line);
    if (size < 0)
      return new UpstreamProtocolError(`bad chunk size line ${JSON.stringify(line.slice(0, 32))}`);
    if (size === 0) this.state = State.Trailers;
    else {
      this.state = State.ChunkData;
      this.remaining = size;
    }
    return next;
  }
}

/**
 * Where the header value starting at `from` ends: at its line's CRLF, or at `end` (the head's last
 * line); -1 when a control character comes first (a CR not followed by LF is one). One pass finds
 * the line's end and checks the value.
 */
function valueEnd(text: string, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 32 ? c === 127 : c !== 9) return c === 13 && text.charCodeAt(i + 1) === 10 ? i : -1;
  }
  return end;
}

/** `1*HEXDIG [ BWS ";" chunk-ext ]`, or -1. */
function chunkSize(line: string): number {
  let i = 0;
  while (i < line.length && isHex(line.charCodeAt(i))) i++;
  if (i === 0 || i > MAX_HEX_DIGITS) return -1;
  if (i < line.length) {
    let j = i;
    while (j < line.length && (line.charCodeAt(j) === 32 || line.charCodeAt(j) === 9)) j++;
    if (line.charCodeAt(j) !== 59 /* ; */ || hasCtl(line)) return -1;
  }
  return parseInt(line.slice(0, i), 16);
}

/**
 * The status code of a status line ending at `eol` (`HTTP/1.x NNN[ reason]`), or -1. The reason
 * phrase may hold any character but a control one.
 */
function statusOf(text: string, eol: number): number {
  if (eol < 12 || !text.startsWith("HTTP/1.")) return -1;
  const minor = text.charCodeAt(7);
  if ((minor !== 48 && minor !== 49) || text.charCodeAt(8) !== 32) return -1;
  const d0 = text.charCodeAt(9) - 48;
  const d1 = text.charCodeAt(10) - 48;
  const d2 = text.charCodeAt(11) - 48;
  if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return -1;
  if (eol > 12 && (text.charCodeAt(12) !== 32 || hasCtl(text, 13, eol))) return -1;
  return d0 * 100 + d1 * 10 + d2;
}

/** The error for a header line whose name is empty, has no colon after it, or is not a token. */
function badName(text: string, at: number, lineEnd: number): UpstreamProtocolError {
  const colon = text.indexOf(":", at);
  if (colon <= at || colon >= lineEnd)
    return new UpstreamProtocolError("header line without a name and colon");
  return new UpstreamProtocolError(
    `bad header name ${JSON.stringify(text.slice(at, Math.min(colon, at + 64)))}`,
  );
}

/** Characters of a token (RFC 9110 §5.6.2), by char code: a field name is one. */
const TOKEN_CHARS = ((): Uint8Array => {
  const table = new Uint8Array(256);
  for (const c of "!#$%&'*+-.^_`|~") table[c.charCodeAt(0)] = 1;
  for (let c = 48; c <= 57; c++) table[c] = 1;
  for (let c = 65; c <= 90; c++) table[c] = 1;
  for (let c = 97; c <= 122; c++) table[c] = 1;
  return table;
})();

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

function isDigits(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Control characters other than HTAB in `text` (from `from` to `to`): never part of a field value or reason phrase. */
function hasCtl(text: string, from = 0, to = text.length): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127) return true;
  }
  return false;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** Whether the comma-separated, lower-cased `list` holds `token`. */
function hasToken(list: string, token: string): boolean {
  if (list === token) return true;
  if (list.indexOf(",") === -1) return list.trim() === token;
  for (const part of list.split(",")) if (part.trim() === token) return true;
  return false;
}

/** The `timeout=N` of a Keep-Alive header, in seconds, or -1. */
function keepAliveTimeout(value: string): number {
  // The common `timeout=N[, max=M]` read without a regular expression.
  if (value.startsWith("timeout=")) {
    let i = 8;
    while (i < value.length && value.charCodeAt(i) >= 48 && value.charCodeAt(i) <= 57) i++;
    if (i > 8 && i <= 17) return Number(value.slice(8, i));
  }
  const m = /(?:^|[,;\s])timeout\s*=\s*"?([0-9]{1,9})/i.exec(value);
  return m === null ? -1 : Number(m[1]);
}
