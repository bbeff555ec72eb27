// A strict HTTP/1.1 response parser for the upstream client (RFC 9112). It reads one response per
// request: status line and headers, then the body framed by Content-Length, chunked coding or the
// connection's close. Anything that could make two parties disagree on where a response ends (the
// request-smuggling family) is an error, and a connection whose framing is in doubt is never reused.
import {
  CONNECTION_CLOSE,
  CONNECTION_KEEP_ALIVE,
  connectionOptions,
  isName,
  isOws,
  TOKEN_CHARS,
} from "../../http1-bytes.ts";
import { LISTED, RELAYED, ResponseHead } from "./response-head.ts";

/** Why a response could not be read; the connection that carried it is closed. */
export class UpstreamProtocolError extends Error {
  readonly code = "TETHER_ERR_UPSTREAM_PROTOCOL";

  constructor(message: string) {
    super(`malformed upstream response: ${message}`);
    this.name = "UpstreamProtocolError";
  }
}

/**
 * What the parser reports; the connection implements it (no closures per response). A head is valid
 * only during the call that hands it over (response-head.ts).
 */
export interface ResponseSink {
  /** A 1xx response (never 101: that is an error, no upgrade is ever asked for). */
  onInterim(status: number, head: ResponseHead): void;
  /** The final response head; `contentLength` is -1 unless Content-Length frames the body. */
  onHead(status: number, head: ResponseHead, contentLength: number): void;
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

/** Header names the parser acts on, told apart by length and then by their lower-cased bytes. */
const Field = {
  Other: 0,
  ContentLength: 1,
  TransferEncoding: 2,
  Connection: 3,
  KeepAlive: 4,
  /** Another hop-by-hop header: listed, never relayed. */
  HopByHop: 5,
  Date: 6,
} as const;

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
  /** The head being read (one object, reused for every response of the connection). */
  private readonly head = new ResponseHead();
  /** The head's Content-Length, or -1. */
  private contentLength = -1;
  private transferEncoding: string | undefined;
  /** The head's Connection values hold `close` / `keep-alive`. */
  private connectionClose = false;
  private connectionKeepAlive = false;

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
    const err = this.parseHead(buf, from, idx);
    if (err !== undefined) return err;
    // Offset in `chunk`: the head ended `idx + 4 - carried` bytes into the new data.
    return carried > 0 ? at + idx + 4 - carried : idx + 4;
  }

  /** The head in `buf` from `from` to `end` (its blank line excluded). */
  private parseHead(buf: Buffer, from: number, end: number): UpstreamProtocolError | undefined {
    let eol = from;
    while (eol < end && buf[eol] !== 13) eol++;
    const status = statusOf(buf, from, eol);
    if (status < 0)
      return new UpstreamProtocolError(
        `bad status line ${JSON.stringify(buf.toString("latin1", from, Math.min(eol, from + 64)))}`,
      );
    if (eol < end && buf[eol + 1] !== 10)
      return new UpstreamProtocolError("control character in the status line");
    const http10 = buf[from + 7] === 48; /* 0 */
    const head = this.head;
    head.reset(buf);
    const err = this.readFields(buf, eol + 2, end);
    if (err !== undefined) return err;
    if (status < 200) {
      if (status === 101)
        return new UpstreamProtocolError("101 Switching Protocols without an upgrade request");
      this.state = State.Head;
      this.sink.onInterim(status, head);
      return undefined;
    }
    this.keepAlive = http10 ? this.connectionKeepAlive : !this.connectionClose;
    const framing = this.frame(status, http10);
    if (framing !== undefined) return framing;
    this.sink.onHead(status, head, this.state === State.Length ? this.remaining : -1);
    return undefined;
  }

  /**
   * The header lines of `buf` from `from` to `end`: their places go into the head, and the fields
   * that frame the message into the parser. One pass over the bytes; no string unless a framing
   * field needs reading as one.
   */
  private readFields(buf: Buffer, from: number, end: number): UpstreamProtocolError | undefined {
    const head = this.head;
    this.contentLength = -1;
    this.transferEncoding = undefined;
    this.connectionClose = false;
    this.connectionKeepAlive = false;
    let at = from;
    while (at < end) {
      const c0 = buf[at];
      if (c0 === 32 || c0 === 9) return new UpstreamProtocolError("obsolete line folding in a header");
      let colon = at;
      // A CR or the head's end stops the name too (neither is a token character).
      while (colon < end && TOKEN_CHARS[buf[colon] as number] === 1) colon++;
      if (colon === at || buf[colon] !== 58 /* : */) return badName(buf, at, end);
      const lineEnd = valueEnd(buf, colon + 1, end);
      if (lineEnd < 0)
        return new UpstreamProtocolError(`control character in header ${buf.toString("latin1", at, colon)}`);
      let vs = colon + 1;
      let ve = lineEnd;
      while (vs < ve && isOws(buf[vs] as number)) vs++;
      while (ve > vs && isOws(buf[ve - 1] as number)) ve--;
      const flags = this.readField(fieldKind(buf, at, colon), buf, vs, ve);
      if (typeof flags !== "number") return flags;
      if (flags !== 0) head.add(at, colon, vs, ve, flags);
      at = lineEnd + 2;
    }
    return undefined;
  }

  /**
   * What a header line of `kind` with the value from `vs` to `ve` means for the framing; returns its
   * flags in the head (0: a repeated Content-Length, left out) or an error.
   */
  private readField(kind: number, buf: Buffer, vs: number, ve: number): number | UpstreamProtocolError {
    switch (kind) {
      case Field.ContentLength: {
        const n = decimal(buf, vs, ve);
        if (n < 0)
          return new UpstreamProtocolError(
            `bad content-length ${JSON.stringify(buf.toString("latin1", vs, Math.min(ve, vs + 32)))}`,
          );
        if (this.contentLength >= 0) {
          if (this.contentLength !== n)
            return new UpstreamProtocolError("conflicting content-length headers");
          return 0;
        }
        this.contentLength = n;
        this.head.hasLength = true;
        return RELAYED | LISTED;
      }
      case Field.TransferEncoding: {
        const value = buf.toString("latin1", vs, ve);
        this.transferEncoding =
          this.transferEncoding === undefined ? value : `${this.transferEncoding},${value}`;
        return LISTED;
      }
      case Field.Connection:
        this.readConnection(buf, vs, ve);
        return LISTED;
      case Field.KeepAlive:
        this.keepAliveHintS = keepAliveTimeout(buf.toString("latin1", vs, ve));
        return LISTED;
      case Field.HopByHop:
        return LISTED;
      case Field.Date:
        this.head.hasDate = true;
        return RELAYED | LISTED;
      default:
        return RELAYED | LISTED;
    }
  }

  /** The `close` and `keep-alive` options among a Connection value's comma-separated ones, in any case. */
  private readConnection(buf: Buffer, from: number, to: number): void {
    const options = connectionOptions(buf, from, to);
    if ((options & CONNECTION_CLOSE) !== 0) this.connectionClose = true;
    if ((options & CONNECTION_KEEP_ALIVE) !== 0) this.connectionKeepAlive = true;
  }

  /** How the final response's body is delimited (RFC 9112 §6.3). */
  private frame(status: number, http10: boolean): UpstreamProtocolError | undefined {
    if (this.noBody || status === 204 || status === 304) {
      this.state = State.Done;
      return undefined;
    }
    const te = this.transferEncoding;
    if (te !== undefined) {
      if (this.contentLength >= 0)
        return new UpstreamProtocolError("both content-length and transfer-encoding");
      if (http10) return new UpstreamProtocolError("transfer-encoding in an HTTP/1.0 response");
      if (te.trim().toLowerCase() !== "chunked")
        return new UpstreamProtocolError(`unsupported transfer-encoding ${JSON.stringify(te.slice(0, 64))}`);
      this.state = State.ChunkSize;
      this.trailerBytes = 0;
    } else if (this.contentLength >= 0) {
      this.remaining = this.contentLength;
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
 * Where the header value in `buf` starting at `from` ends: at its line's CRLF, or at `end` (the
 * head's last line); -1 when a control character comes first (a CR not followed by LF is one). One
 * pass finds the line's end and checks the value.
 */
function valueEnd(buf: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const c = buf[i] as number;
    if (c >= 32 ? c === 127 : c !== 9) return c === 13 && buf[i + 1] === 10 ? i : -1;
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
 * The status code of the status line in `buf` from `from` to `eol` (`HTTP/1.x NNN[ reason]`), or
 * -1. The reason phrase may hold any character but a control one.
 */
function statusOf(buf: Buffer, from: number, eol: number): number {
  if (eol - from < 12) return -1;
  for (let i = 0; i < 7; i++) if (buf[from + i] !== HTTP_1_DOT[i]) return -1;
  const minor = buf[from + 7];
  if ((minor !== 48 && minor !== 49) || buf[from + 8] !== 32) return -1;
  const d0 = (buf[from + 9] as number) - 48;
  const d1 = (buf[from + 10] as number) - 48;
  const d2 = (buf[from + 11] as number) - 48;
  if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return -1;
  if (eol - from > 12) {
    if (buf[from + 12] !== 32) return -1;
    for (let i = from + 13; i < eol; i++) {
      const c = buf[i] as number;
      if ((c < 32 && c !== 9) || c === 127) return -1;
    }
  }
  return d0 * 100 + d1 * 10 + d2;
}

const HTTP_1_DOT = Buffer.from("HTTP/1.", "latin1");

/** The error for a header line at `at` whose name is empty, has no colon after it, or is not a token. */
function badName(buf: Buffer, at: number, end: number): UpstreamProtocolError {
  let lineEnd = buf.indexOf(CRLF, at);
  if (lineEnd === -1 || lineEnd > end) lineEnd = end;
  const colon = buf.indexOf(58 /* : */, at);
  if (colon <= at || colon >= lineEnd)
    return new UpstreamProtocolError("header line without a name and colon");
  return new UpstreamProtocolError(
    `bad header name ${JSON.stringify(buf.toString("latin1", at, Math.min(colon, at + 64)))}`,
  );
}

/** Lower-case names the parser acts on, as bytes. */
const NAMES = {
  contentLength: Buffer.from("content-length"),
  transferEncoding: Buffer.from("transfer-encoding"),
  connection: Buffer.from("connection"),
  keepAlive: Buffer.from("keep-alive"),
  te: Buffer.from("te"),
  date: Buffer.from("date"),
  expect: Buffer.from("expect"),
  upgrade: Buffer.from("upgrade"),
  trailer: Buffer.from("trailer"),
  http2Settings: Buffer.from("http2-settings"),
  proxyConnection: Buffer.from("proxy-connection"),
};

/**
 * Which header the name from `at` to `end` is (hop-by-hop: connection, keep-alive,
 * proxy-connection, transfer-encoding, te, upgrade, trailer, expect, http2-settings).
 */
function fieldKind(buf: Buffer, at: number, end: number): number {
  switch (end - at) {
    case 2:
      return isName(buf, at, NAMES.te) ? Field.HopByHop : Field.Other;
    case 4:
      return isName(buf, at, NAMES.date) ? Field.Date : Field.Other;
    case 6:
      return isName(buf, at, NAMES.expect) ? Field.HopByHop : Field.Other;
    case 7:
      return isName(buf, at, NAMES.upgrade) || isName(buf, at, NAMES.trailer) ? Field.HopByHop : Field.Other;
    case 10:
      if (isName(buf, at, NAMES.connection)) return Field.Connection;
      return isName(buf, at, NAMES.keepAlive) ? Field.KeepAlive : Field.Other;
    case 14:
      if (isName(buf, at, NAMES.contentLength)) return Field.ContentLength;
      return isName(buf, at, NAMES.http2Settings) ? Field.HopByHop : Field.Other;
    case 16:
      return isName(buf, at, NAMES.proxyConnection) ? Field.HopByHop : Field.Other;
    case 17:
      return isName(buf, at, NAMES.transferEncoding) ? Field.TransferEncoding : Field.Other;
    default:
      return Field.Other;
  }
}

/** The decimal number in `buf` from `from` to `to` (1 to 15 digits, nothing else), or -1. */
function decimal(buf: Buffer, from: number, to: number): number {
  if (to === from || to - from > MAX_LENGTH_DIGITS) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = (buf[i] as number) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
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
