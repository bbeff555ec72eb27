// A downstream response written straight to the socket: the head is built once (status line, the
// caller's flat header list or a proxied response's header bytes, then Date / Connection / framing
// as node:http adds them), sent with the first body bytes in one write. Only the oldest open
// response of a connection is ever written: a pipelined request is handed on once the responses
// before it have gone out.
import { EventEmitter } from "node:events";
import { reasonPhrase } from "../../../http-node.ts";
import type { ResponseHead } from "../../../upstream/pool.ts";
import type { DownstreamRequest } from "./request.ts";

/** What a response needs from its connection. */
export interface ResponseSink {
  /** Writes bytes of the response at the head of the line; false when the socket's buffer is full. */
  writeOut(
    res: DownstreamResponse,
    head: string | Buffer | undefined,
    body: Buffer | string | undefined,
    tail: string | undefined,
    final: boolean,
  ): boolean;
  destroyConnection(): void;
}

/** Content-Length / Transfer-Encoding / Connection / Date present in a header list (lower-case check). */
const HAS_LENGTH = 1;
const HAS_TE = 2;
const HAS_CONNECTION = 4;
const HAS_DATE = 8;
const CONNECTION_CLOSE = 16;

/**
 * Told when a response closes: its last byte went to the kernel, or its connection went away. The
 * connection's tracker and the stream answering the request are one each, in fields read once per
 * response, where two "close" listeners would cost an addListener each and an emit over a copied
 * listener array.
 */
export interface ResponseObserver {
  onResponseClose(res: DownstreamResponse): void;
  /** A timeout of the connection ends the request in progress: the stream answers it (408). */
  onDownstreamTimeout?(text: string): void;
}

let cachedDate = "";
let cachedDateAt = 0;

/** The Date header's value, renewed once a second as node:http does. */
function httpDate(): string {
  const now = Date.now();
  if (now - cachedDateAt >= 1000 || cachedDate === "") {
    cachedDateAt = now - (now % 1000);
    cachedDate = new Date(now).toUTCString();
  }
  return cachedDate;
}

/** Whether header `name` is `target` (lower-case); `lower`: `name` is known to be lower-case. */
function isName(name: string, lower: boolean, target: string): boolean {
  return (lower ? name : name.toLowerCase()) === target;
}

function nameFlags(name: string, value: string, lower: boolean): number {
  switch (name.length) {
    case 4:
      return isName(name, lower, "date") ? HAS_DATE : 0;
    case 10:
      if (!isName(name, lower, "connection")) return 0;
      return /(?:^|,)\s*close\s*(?:,|$)/i.test(value) ? HAS_CONNECTION | CONNECTION_CLOSE : HAS_CONNECTION;
    case 14:
      return isName(name, lower, "content-length") ? HAS_LENGTH : 0;
    case 17:
      return isName(name, lower, "transfer-encoding") ? HAS_TE : 0;
    default:
      return 0;
  }
}

/** `HTTP/1.1 NNN Reason\r\n` as bytes, by status, made on first use. */
const statusLines: (Buffer | undefined)[] = [];

function statusLine(status: number): Buffer {
  let line = statusLines[status];
  if (line === undefined) {
    line = Buffer.from(`HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`, "latin1");
    statusLines[status] = line;
  }
  return line;
}

/** Node's check for a Link value in early hints (a URI reference in angle brackets, with params). */
const LINK =
  /^<[^>]*>(?:\s*;\s*[^;"\s]+(?:=(")?[^;"\s]*\1)?)*(?:\s*,\s*<[^>]*>(?:\s*;\s*[^;"\s]+(?:=(")?[^;"\s]*\2)?)*)*$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** The usual end of a head (Date given, keep-alive, framed), as one constant string. */
const KEEP_ALIVE_TAIL_LINES = "Connection: keep-alive\r\n";
const KEEP_ALIVE_TAIL = "Connection: keep-alive\r\n\r\n";
const KEEP_ALIVE_TAIL_BYTES = Buffer.from(KEEP_ALIVE_TAIL, "latin1");

export class DownstreamResponse extends EventEmitter {
  readonly req: DownstreamRequest;
  statusCode = 200;
  /** Keep the connection open after this response (false: `Connection: close`, then the socket ends). */
  shouldKeepAlive: boolean;
  headersSent = false;
  /** end() was called. */
  writableEnded = false;
  /** The last byte went to the kernel. */
  writableFinished = false;
  destroyed = false;
  /** The socket ends after this response (decided when its head is written). */
  closesConnection = false;
  /** Told first when the response closes (the connection's bookkeeping). */
  tracker: ResponseObserver | undefined = undefined;
  /** The stream answering the request: told last when the response closes, after "close". */
  stream: ResponseObserver | undefined = undefined;
  private readonly sink: ResponseSink;
  private readonly http10: boolean;
  private hasBody: boolean;
  private chunked = false;
  private head: string | Buffer | undefined;
  private headerList: readonly string[] | undefined;
  /** A proxied response's head (writeRelayedHead), and where its header lines end in it. */
  private relayedHead: Buffer | undefined;
  private relayedEnd = 0;

  constructor(req: DownstreamRequest, sink: ResponseSink, keepAlive: boolean) {
    super();
    this.req = req;
    this.sink = sink;
    this.shouldKeepAlive = keepAlive;
    this.http10 = req.httpVersion === "1.0";
    this.hasBody = req.method !== "HEAD";
  }

  /**
   * The status line and headers; `headers` is a flat name/value list or an object. The first
   * `checked` entries of a list come from the upstream response parser: their values were already
   * refused for control characters (the same rule as here) and their names are lower-case.
   */
  writeHead(
    status: number,
    headers?: readonly string[] | Record<string, string | number>,
    checked = 0,
  ): this {
    if (this.headersSent) throw new Error("writeHead after the response head was sent");
    this.statusCode = status;
    if (status === 204 || status === 304) this.hasBody = false;
    let list: readonly string[];
    if (headers === undefined) list = [];
    else if (Array.isArray(headers)) list = headers as readonly string[];
    else {
      const flat: string[] = [];
      for (const [k, v] of Object.entries(headers as Record<string, string | number>))
        flat.push(k, String(v));
      list = flat;
    }
    this.headerList = list;
    let text = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`;
    let flags = 0;
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i] as string;
      const value = list[i + 1] as string;
      const parsed = i < checked;
      if (!parsed && BAD_VALUE.test(value)) throw new Error(`invalid character in header ${name}`);
      flags |= nameFlags(name, value, parsed);
      text += `${name}: ${value}\r\n`;
    }
    this.head = text + this.headTail(flags);
    this.headersSent = true;
    return this;
  }

  /**
   * The head of a proxied response: the status line, the upstream's header lines copied as bytes
   * (hop-by-hop ones left out, see upstream/http1/response-head.ts), `setCookie` when the route's
   * hash policy sets one, then Date / Connection / framing as writeHead adds them.
   */
  writeRelayedHead(status: number, upstream: ResponseHead, setCookie: string | undefined): this {
    if (this.headersSent) throw new Error("writeHead after the response head was sent");
    this.statusCode = status;
    if (status === 204 || status === 304) this.hasBody = false;
    let cookie = "";
    if (setCookie !== undefined) {
      if (BAD_VALUE.test(setCookie)) throw new Error("invalid character in header set-cookie");
      cookie = `set-cookie: ${setCookie}\r\n`;
    }
    const tail = this.headTail((upstream.hasDate ? HAS_DATE : 0) | (upstream.hasLength ? HAS_LENGTH : 0));
    const line = statusLine(status);
    const head = Buffer.allocUnsafe(line.length + upstream.relayedLength() + cookie.length + tail.length);
    head.set(line, 0);
    let at = upstream.writeRelayed(head, line.length);
    if (cookie !== "") at += head.write(cookie, at, "latin1");
    this.relayedEnd = at;
    if (tail === KEEP_ALIVE_TAIL) head.set(KEEP_ALIVE_TAIL_BYTES, at);
    else head.write(tail, at, "latin1");
    this.relayedHead = head;
    this.head = head;
    this.headersSent = true;
    return this;
  }

  /**
   * What follows the header lines given (`flags`: which of Date, Connection and the framing headers
   * they hold): Date, Connection and Transfer-Encoding as node:http adds them, and the blank line.
   */
  private headTail(flags: number): string {
    let text = "";
    if ((flags & HAS_DATE) === 0) text += `Date: ${httpDate()}\r\n`;
    // node:http's rules: keep-alive needs a framed body (length or chunked); HTTP/1.0 is never chunked.
    const framed = (flags & (HAS_LENGTH | HAS_TE)) !== 0 || !this.hasBody || !this.http10;
    if ((flags & HAS_CONNECTION) === 0) {
      if (this.shouldKeepAlive && framed) text += "Connection: keep-alive\r\n";
      else {
        this.closesConnection = true;
        text += "Connection: close\r\n";
      }
    } else if ((flags & CONNECTION_CLOSE) !== 0 || !this.shouldKeepAlive) this.closesConnection = true;
    if ((flags & (HAS_LENGTH | HAS_TE)) === 0 && this.hasBody) {
      if (this.http10) this.closesConnection = true;
      else {
        this.chunked = true;
        text += "Transfer-Encoding: chunked\r\n";
      }
    }
    return text === KEEP_ALIVE_TAIL_LINES ? KEEP_ALIVE_TAIL : `${text}\r\n`;
  }

  /** A response header as written (first value), for the access log. */
  getHeader(name: string): string | undefined {
    const list = this.headerList;
    if (list !== undefined) {
      for (let i = 0; i < list.length; i += 2)
        if ((list[i] as string).toLowerCase() === name) return list[i + 1];
      return undefined;
    }
    const relayed = this.relayedHead;
    if (relayed === undefined) return undefined;
    // `name: value` lines after the status line, names lower-case.
    const lines = relayed.toString("latin1", 0, this.relayedEnd).split("\r\n");
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i] as string;
      if (l.length > name.length && l.startsWith(name) && l.charCodeAt(name.length) === 58 /* : */)
        return l.slice(name.length + 2);
    }
    return undefined;
  }

  write(chunk: Buffer | string): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    return this.send(chunk, false);
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded || this.destroyed) return this;
    if (!this.headersSent) {
      const length = chunk === undefined ? 0 : Buffer.byteLength(chunk);
      this.writeHead(this.statusCode, ["Content-Length", String(length)]);
    }
    this.writableEnded = true;
    this.send(chunk, true);
    return this;
  }

  private send(chunk: Buffer | string | undefined, final: boolean): boolean {
    const head = this.head;
    this.head = undefined;
    const body = this.hasBody && chunk !== undefined && chunk.length > 0 ? chunk : undefined;
    if (!this.chunked) return this.sink.writeOut(this, head, body, undefined, final);
    if (body === undefined)
      return this.sink.writeOut(this, head, final ? "0\r\n\r\n" : undefined, undefined, final);
    const size = `${Buffer.byteLength(body).toString(16)}\r\n`;
    return this.sink.writeOut(
      this,
      head === undefined
        ? size
        : typeof head === "string"
          ? head + size
          : Buffer.concat([head, Buffer.from(size, "latin1")]),
      body,
      final ? "\r\n0\r\n\r\n" : "\r\n",
      final,
    );
  }

  /** An interim 102 Processing. */
  writeProcessing(): void {
    this.interim("HTTP/1.1 102 Processing\r\n\r\n");
  }

  /** An interim 103 Early Hints; as node:http, only with a valid Link. */
  writeEarlyHints(hints: Record<string, string | string[]>): void {
    const link = hints["link"];
    const links = link === undefined ? [] : Array.isArray(link) ? link : [link];
    if (links.length === 0 || links.some((l) => !LINK.test(l)))
      throw new Error("early hints need a valid link header");
    let text = `HTTP/1.1 103 Early Hints\r\nLink: ${links.join(", ")}\r\n`;
    for (const [name, value] of Object.entries(hints)) {
      if (name === "link") continue;
      for (const v of Array.isArray(value) ? value : [value]) {
        if (BAD_VALUE.test(v)) throw new Error(`invalid character in header ${name}`);
        text += `${name}: ${v}\r\n`;
      }
    }
    this.interim(`${text}\r\n`);
  }

  /** `HTTP/1.1 100 Continue`, for a request that expects it. */
  writeContinue(): void {
    this.interim("HTTP/1.1 100 Continue\r\n\r\n");
  }

  private interim(text: string): void {
    if (this.headersSent || this.destroyed) return;
    this.sink.writeOut(this, undefined, text, undefined, false);
  }

  /** The response closed (sent, or its connection went away): the tracker, "close", then the stream. */
  closed(): void {
    const tracker = this.tracker;
    const stream = this.stream;
    this.tracker = undefined;
    this.stream = undefined;
    tracker?.onResponseClose(this);
    this.emit("close");
    stream?.onResponseClose(this);
  }

  /** Drops the connection (a response cut short, as node:http's res.destroy()). */
  destroy(): void {
    if (this.destroyed) return;
    this.sink.destroyConnection();
  }
}
