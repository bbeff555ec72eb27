// One gRPC bidirectional stream (the ADS method) on its own HTTP/2 connection (RFC 9113), spoken
// here on a `net` socket (or a `tls` one): the client preface and SETTINGS, one stream's HEADERS and
// DATA with flow control both ways, CONTINUATION, PING (answered, and sent as keepalive), GOAWAY
// and RST_STREAM, with HPACK from hpack.ts. gRPC on top: length-prefixed protobuf messages, the
// status in trailers. Doing it here keeps node:http2 (and the node:http, node:assert, node:crypto …
// it loads: ~10 MB of RSS in a bare process) and @grpc/grpc-js out of every sidecar; node:tls is
// loaded only for a TLS control plane.
import type { Socket } from "node:net";
import type { ConnectionOptions, PeerCertificate } from "node:tls";
import { HpackDecoder, HpackError, encodeHeaders } from "./hpack.ts";
import { ADS_METHOD_PATH, decodeResponse, encodeRequest } from "./wire.ts";
import type { DiscoveryRequest, DiscoveryResponse } from "./wire.ts";

export interface StreamEvents {
  /** The server answered with gRPC response headers: the stream is up. */
  onOpen(): void;
  onMessage(response: DiscoveryResponse): void;
  /**
   * The stream is over (once), with why. `refused`: the TCP connect itself was refused (no server
   * listens at the address it reached), so no stream was ever open.
   */
  onClose(reason: string, refused: boolean): void;
}

export interface StreamOptions {
  readonly host: string;
  readonly port: number;
  /** A PING every `timeMs` (0: none); no answer within `timeoutMs` ends the connection. */
  readonly keepalive: { readonly timeMs: number; readonly timeoutMs: number };
  /** The TCP connect must finish within this (a vanished server's address drops SYNs: no refusal). */
  readonly connectTimeoutMs: number;
  readonly userAgent: string;
  /** TLS: the chain verified against `ca` (PEM); `sni` sent; the SANs checked against `verifyName`. */
  readonly tls?:
    | { readonly ca: string; readonly sni?: string | undefined; readonly verifyName?: string | undefined }
    | undefined;
  /** Extra request headers: gRPC call metadata such as `authorization` (lower-case names). */
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface AdsStreamHandle {
  write(request: DiscoveryRequest): void;
  /** Ends the stream and its connection; onClose is not called after this. */
  cancel(): void;
}

/** gRPC status names for logs (google.rpc.Code). */
const STATUS = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** HTTP/2 error codes (RFC 9113 §7), for logs. */
const H2_ERRORS = [
  "NO_ERROR",
  "PROTOCOL_ERROR",
  "INTERNAL_ERROR",
  "FLOW_CONTROL_ERROR",
  "SETTINGS_TIMEOUT",
  "STREAM_CLOSED",
  "FRAME_SIZE_ERROR",
  "REFUSED_STREAM",
  "CANCEL",
  "COMPRESSION_ERROR",
  "CONNECT_ERROR",
  "ENHANCE_YOUR_CALM",
  "INADEQUATE_SECURITY",
  "HTTP_1_1_REQUIRED",
];

/** A gRPC message frame longer than this ends the stream (Envoy's default max is 4 MiB too). */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

// Frame types and flags (RFC 9113 §6).
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PUSH_PROMISE = 0x5;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** The largest frame payload we accept: HTTP/2's default SETTINGS_MAX_FRAME_SIZE, never raised. */
const MAX_FRAME = 16_384;
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** What we let the server send before it must wait for a WINDOW_UPDATE: a whole maximal message. */
const RECEIVE_WINDOW = MAX_MESSAGE_BYTES + 5;
/** The most octets one header list (response headers or trailers) may decode to. */
const MAX_HEADER_LIST = 65_536;
/** The one stream this connection carries (the first a client opens). */
const STREAM = 1;
/** Frames in a row that carry nothing (empty DATA or CONTINUATION) before the peer counts as hostile. */
const MAX_EMPTY_FRAMES = 1000;
/** Bytes we may have written and the server not read (our ACKs, PINGs, requests). */
const MAX_BACKLOG = 8 * 1024 * 1024;
/** Request bytes that may wait for the server's flow-control window before we give up on it. */
const MAX_PENDING = 64 * 1024 * 1024;
/** Informational (1xx) answers we skip before the response; more is a flood. */
const MAX_INFORMATIONAL = 8;

class ProtocolError extends Error {}

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return payload.length === 0 ? header : Buffer.concat([header, payload]);
}

function settingsPayload(settings: readonly (readonly [number, number])[]): Buffer {
  const out = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, value], i) => {
    out.writeUInt16BE(id, 6 * i);
    out.writeUInt32BE(value, 6 * i + 2);
  });
  return out;
}

function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment, 0);
  return frame(WINDOW_UPDATE, 0, streamId, payload);
}

function statusText(headers: ReadonlyMap<string, string>): string | undefined {
  const code = headers.get("grpc-status");
  if (code === undefined) return undefined;
  const message = headers.get("grpc-message");
  let details: string;
  try {
    details = message === undefined ? "" : decodeURIComponent(message);
  } catch {
    details = message ?? "";
  }
  return `${STATUS[Number(code)] ?? code}${details === "" ? "" : `: ${details}`}`;
}

/** A frame's payload without its padding (PADDED flag: the first octet says how much). */
function unpadded(flags: number, payload: Buffer): Buffer {
  if ((flags & PADDED) === 0) return payload;
  const pad = payload[0];
  if (pad === undefined || pad >= payload.length) throw new ProtocolError("padding longer than the frame");
  return payload.subarray(1, payload.length - pad);
}

class GrpcStream implements AdsStreamHandle {
  private readonly events: StreamEvents;
  private readonly socket: Socket;
  private readonly hpack = new HpackDecoder(4096, MAX_HEADER_LIST);
  private closed = false;
  private connected = false;
  private readonly connectDeadline: NodeJS.Timeout;
  private readonly pingTimer: NodeJS.Timeout | undefined;
  private pingDeadline: NodeJS.Timeout | undefined;
  /** Bytes read and not yet a whole frame: the chunks as they came, joined once a frame is whole. */
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** Frames in a row that carried nothing. */
  private emptyFrames = 0;
  private sawSettings = false;
  /** A header block being put together from HEADERS + CONTINUATION frames (copied in). */
  private headerBlock: { bytes: Buffer; size: number; endStream: boolean } | undefined;
  /** False until the response headers came; after them, the trailers are next. */
  private responded = false;
  /** The next gRPC message's 5-byte prefix as it fills; then its body, allocated at its length. */
  private readonly prefix = Buffer.alloc(5);
  private prefixFilled = 0;
  private body: Buffer | undefined;
  private bodyFilled = 0;
  /** Requests' bytes waiting for window in `pending`. */
  private pendingBytes = 0;
  /** Control frames (ACKs, WINDOW_UPDATEs) answered while reading a chunk: written once, after it. */
  private replies: Buffer[] | undefined;
  private informational = 0;
  // Flow control: what we may still send (connection, stream), and what we consumed unannounced.
  private sendWindow = DEFAULT_WINDOW;
  private streamSendWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = MAX_FRAME;
  private unannounced = 0;
  /** DATA waiting for window: gRPC-framed requests, in order. */
  private pending: Buffer[] = [];
  /** What is written once connected: the preface, our SETTINGS, a WINDOW_UPDATE, the HEADERS. */
  private readonly opening: Buffer[];

  constructor(options: StreamOptions, events: StreamEvents) {
    this.events = events;
    const host = options.host;
    const tls = options.tls;
    if (tls === undefined) {
      const net = process.getBuiltinModule("node:net");
      this.socket = net.connect({ host, port: options.port });
      this.socket.once("connect", () => {
        this.onConnect();
      });
    } else {
      const tlsModule = process.getBuiltinModule("node:tls");
      const connectOptions: ConnectionOptions = {
        host,
        port: options.port,
        ca: tls.ca,
        ALPNProtocols: ["h2"],
        ...(tls.sni === undefined ? {} : { servername: tls.sni }),
        // As Envoy: the name checked is the SAN matcher's, never the address dialled.
        checkServerIdentity: (_host: string, cert: PeerCertificate) =>
          tls.verifyName === undefined ? undefined : tlsModule.checkServerIdentity(tls.verifyName, cert),
      };
      const socket = tlsModule.connect(connectOptions);
      this.socket = socket;
      socket.once("secureConnect", () => {
        // gRPC over TLS is HTTP/2 chosen by ALPN (RFC 9113 §3.2); a server that did not choose it
        // would read our frames as garbage.
        if (socket.alpnProtocol !== "h2") {
          this.close(`the server did not agree to HTTP/2 over TLS (ALPN: ${String(socket.alpnProtocol)})`);
          return;
        }
        this.onConnect();
      });
    }
    this.socket.setNoDelay(true);
    // With TLS, the connect event comes after the handshake: the deadline bounds both.
    this.connectDeadline = setTimeout(() => {
      this.close(`connect timeout after ${options.connectTimeoutMs} ms`);
    }, options.connectTimeoutMs);
    this.socket.on("data", (chunk: Buffer) => {
      this.onData(chunk);
    });
    this.socket.on("error", (err: NodeJS.ErrnoException) => {
      this.close(`connection error: ${err.message}`, !this.connected && err.code === "ECONNREFUSED");
    });
    this.socket.on("close", () => {
      this.close("connection closed");
    });
    // Keepalive: an operator gone without a FIN would otherwise leave the stream hanging forever.
    const { timeMs, timeoutMs } = options.keepalive;
    if (timeMs > 0) {
      this.pingTimer = setInterval(() => {
        if (this.closed || !this.connected || this.pingDeadline !== undefined) return;
        this.pingDeadline = setTimeout(() => {
          this.close(`no keepalive answer within ${timeoutMs} ms`);
        }, timeoutMs);
        this.send(frame(PING, 0, 0, Buffer.alloc(8)));
      }, timeMs);
      this.pingTimer.unref();
    }

    const authority = `${host.includes(":") ? `[${host}]` : host}:${options.port}`;
    const headers: [string, string][] = [
      [":method", "POST"],
      [":scheme", tls === undefined ? "http" : "https"],
      [":path", ADS_METHOD_PATH],
      [":authority", authority],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ["grpc-accept-encoding", "identity"],
      ["user-agent", options.userAgent],
      ...Object.entries(options.metadata ?? {}),
    ];
    const block = encodeHeaders(headers, (name) => name === "authorization");
    // The preface, our settings (no server push, a window for a whole message, a header list limit),
    // the connection's window raised to match, then the request's headers: all written on connect.
    this.opening = [
      PREFACE,
      frame(
        SETTINGS,
        0,
        0,
        settingsPayload([
          [0x2, 0], // SETTINGS_ENABLE_PUSH
          [0x4, RECEIVE_WINDOW], // SETTINGS_INITIAL_WINDOW_SIZE
          [0x6, MAX_HEADER_LIST], // SETTINGS_MAX_HEADER_LIST_SIZE
        ]),
      ),
      windowUpdate(0, RECEIVE_WINDOW - DEFAULT_WINDOW),
      ...this.headerFrames(block),
    ];
  }

  /** HEADERS, and CONTINUATION frames when the block is larger than the server takes in one. */
  private headerFrames(block: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    for (let at = 0; at === 0 || at < block.length; at += this.peerMaxFrame) {
      const part = block.subarray(at, at + this.peerMaxFrame);
      const last = at + this.peerMaxFrame >= block.length;
      frames.push(frame(at === 0 ? HEADERS : CONTINUATION, last ? END_HEADERS : 0, STREAM, part));
    }
    return frames;
  }

  private onConnect(): void {
    if (this.closed) return;
    this.connected = true;
    clearTimeout(this.connectDeadline);
    this.send(Buffer.concat(this.opening));
    this.flush();
  }

  write(request: DiscoveryRequest): void {
    if (this.closed) return;
    const message = encodeRequest(request);
    const framed = Buffer.alloc(5 + message.length);
    framed.writeUInt32BE(message.length, 1);
    message.copy(framed, 5);
    this.pending.push(framed);
    this.pendingBytes += framed.length;
    if (this.connected) this.flush();
    // Requests wait for the server's window; a server that never grants it would make them pile up.
    // (Closed on the next tick: the caller of write() hears of it as of any other close.)
    if (this.pendingBytes > MAX_PENDING) {
      const held = this.pendingBytes;
      process.nextTick(() => {
        this.close(`the server's flow-control window has held back ${held} bytes of requests`);
      });
    }
  }

  /** Writes to the server (batched while a chunk is being read); see checkBacklog. */
  private send(bytes: Buffer): void {
    if (this.replies !== undefined) {
      this.replies.push(bytes);
      return;
    }
    this.socket.write(bytes);
    this.checkBacklog();
  }

  /**
   * A server that keeps sending (PINGs, SETTINGS, responses) but does not read our answers would
   * pile them up in memory without end: past MAX_BACKLOG written and unread the connection ends.
   */
  private checkBacklog(): void {
    const queued = this.socket.writableLength;
    if (!this.closed && queued > MAX_BACKLOG) {
      this.close(`the server does not read what we send (${queued} bytes queued)`);
    }
  }

  /** Sends what the windows allow of the pending requests, in DATA frames. */
  private flush(): void {
    while (this.pending.length > 0 && !this.closed) {
      const next = this.pending[0] as Buffer;
      const size = Math.min(next.length, this.sendWindow, this.streamSendWindow, this.peerMaxFrame);
      if (size <= 0) return; // wait for a WINDOW_UPDATE
      this.socket.write(frame(DATA, 0, STREAM, next.subarray(0, size)));
      this.sendWindow -= size;
      this.streamSendWindow -= size;
      this.pendingBytes -= size;
      if (size === next.length) this.pending.shift();
      else this.pending[0] = next.subarray(size);
    }
  }

  cancel(): void {
    if (this.closed) return;
    this.stop();
    if (this.connected) {
      const code = Buffer.alloc(4);
      code.writeUInt32BE(8, 0); // CANCEL
      this.socket.end(frame(RST_STREAM, 0, STREAM, code));
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
  }

  /** Timers off, no further events. */
  private stop(): void {
    this.closed = true;
    clearTimeout(this.connectDeadline);
    clearInterval(this.pingTimer);
    clearTimeout(this.pingDeadline);
  }

  private close(reason: string, refused = false): void {
    if (this.closed) return;
    this.stop();
    this.socket.destroy();
    this.events.onClose(reason, refused);
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    // What the frames of this chunk ask us to answer goes out in one write after it: a flood of
    // PINGs costs its bytes, not a write each.
    this.replies = [];
    try {
      while (!this.closed && this.chunkBytes >= 9) {
        // The 9-byte frame header in one piece (a trickle may have split it).
        if ((this.chunks[0] as Buffer).length < 9) this.chunks = [Buffer.concat(this.chunks)];
        const head = this.chunks[0] as Buffer;
        const length = head.readUIntBE(0, 3);
        const type = head[3] as number;
        // A server speaks first with SETTINGS; anything else (an HTTP/1.1 answer, a TLS alert) is
        // not HTTP/2.
        if (!this.sawSettings && type !== SETTINGS) {
          throw new ProtocolError(
            `the server did not answer with HTTP/2 (first bytes ${JSON.stringify(head.subarray(0, 9).toString("latin1"))})`,
          );
        }
        if (length > MAX_FRAME) throw new ProtocolError(`a frame of ${length} bytes (at most ${MAX_FRAME})`);
        if (this.chunkBytes < 9 + length) return;
        // The frame is whole: joined once (not at every chunk of a trickle).
        const all = this.chunks.length === 1 ? head : Buffer.concat(this.chunks, this.chunkBytes);
        const rest = all.subarray(9 + length);
        this.chunks = rest.length === 0 ? [] : [rest];
        this.chunkBytes = rest.length;
        const flags = all[4] as number;
        const streamId = all.readUInt32BE(5) & 0x7fff_ffff;
        this.onFrame(type, flags, streamId, all.subarray(9, 9 + length));
      }
    } catch (err) {
      // Whatever the server sent, it ends this connection, never the process.
      const kind = err instanceof ProtocolError || err instanceof HpackError ? "protocol error" : "error";
      this.close(`HTTP/2 ${kind}: ${(err as Error).message}`);
    } finally {
      const replies = this.replies;
      this.replies = undefined;
      if (!this.closed && replies.length > 0)
        this.send(replies.length === 1 ? (replies[0] as Buffer) : Buffer.concat(replies));
    }
  }

  /** Counts frames that carry nothing; a long run of them is a flood, not a conversation. */
  private countEmpty(empty: boolean): void {
    this.emptyFrames = empty ? this.emptyFrames + 1 : 0;
    if (this.emptyFrames > MAX_EMPTY_FRAMES)
      throw new ProtocolError(`more than ${MAX_EMPTY_FRAMES} empty frames in a row`);
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.headerBlock !== undefined && type !== CONTINUATION)
      throw new ProtocolError("a header block interrupted by another frame");
    switch (type) {
      case SETTINGS:
        this.onSettings(flags, streamId, payload);
        return;
      case HEADERS:
        this.onStreamFrame(streamId, "HEADERS");
        this.onHeadersFrame(flags, payload);
        return;
      case CONTINUATION:
        if (this.headerBlock === undefined || streamId !== STREAM)
          throw new ProtocolError("CONTINUATION without HEADERS");
        this.countEmpty(payload.length === 0 && (flags & END_HEADERS) === 0);
        this.onHeaderFragment(flags, payload);
        return;
      case DATA:
        this.onStreamFrame(streamId, "DATA");
        this.onDataFrame(flags, payload);
        return;
      case WINDOW_UPDATE:
        this.onWindowUpdate(streamId, payload);
        return;
      case PING:
        this.onPing(flags, streamId, payload);
        return;
      case RST_STREAM:
        if (streamId === STREAM) {
          const code = payload.length === 4 ? payload.readUInt32BE(0) : -1;
          this.close(`the server reset the stream (${H2_ERRORS[code] ?? String(code)})`);
        }
        return;
      case GOAWAY:
        this.onGoaway(payload);
        return;
      case PUSH_PROMISE:
        throw new ProtocolError("PUSH_PROMISE, though push was disabled");
      default:
        // PRIORITY, and frame types this client does not know, are ignored (RFC 9113 §5.5).
        return;
    }
  }

  private onHeadersFrame(flags: number, payload: Buffer): void {
    let fragment = unpadded(flags, payload);
    if (flags & PRIORITY_FLAG) fragment = fragment.subarray(5);
    const endStream = (flags & END_STREAM) !== 0;
    if (flags & END_HEADERS) {
      this.onHeaders(this.hpack.decode(fragment), endStream);
    } else {
      // Continued: the fragments are copied into one buffer of the header list's limit.
      this.headerBlock = { bytes: Buffer.alloc(MAX_HEADER_LIST), size: 0, endStream };
      this.onHeaderFragment(flags, fragment);
    }
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    if (payload.length !== 8 || streamId !== 0) throw new ProtocolError("a malformed PING");
    if (flags & ACK) {
      clearTimeout(this.pingDeadline);
      this.pingDeadline = undefined;
    } else {
      this.send(frame(PING, ACK, 0, payload));
    }
  }

  private onGoaway(payload: Buffer): void {
    const code = payload.length >= 8 ? payload.readUInt32BE(4) : -1;
    const debug = payload.subarray(8).toString("latin1");
    const why = code === 0 ? "" : `, ${H2_ERRORS[code] ?? String(code)}${debug === "" ? "" : `: ${debug}`}`;
    this.close(`the server closed the connection (GOAWAY${why})`);
  }

  private onStreamFrame(streamId: number, what: string): void {
    if (streamId !== STREAM) throw new ProtocolError(`${what} on stream ${streamId}, which was never opened`);
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0 || payload.length % 6 !== 0) throw new ProtocolError("a malformed SETTINGS frame");
    this.sawSettings = true;
    if (flags & ACK) return;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (id === 0x4) {
        if (value > MAX_WINDOW) throw new ProtocolError(`SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
        // A change applies to the open stream's window at once (RFC 9113 §6.9.2).
        this.streamSendWindow += value - this.peerInitialWindow;
        this.peerInitialWindow = value;
      } else if (id === 0x5) {
        if (value < MAX_FRAME || value > 2 ** 24 - 1)
          throw new ProtocolError(`SETTINGS_MAX_FRAME_SIZE ${value}`);
        this.peerMaxFrame = value;
      } else if (id === 0x2 && value > 1) {
        throw new ProtocolError(`SETTINGS_ENABLE_PUSH ${value}`);
      }
      // HEADER_TABLE_SIZE: our encoder indexes nothing. MAX_CONCURRENT_STREAMS: we open one.
    }
    this.send(frame(SETTINGS, ACK, 0));
    this.flush();
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ProtocolError("a malformed WINDOW_UPDATE");
    const increment = payload.readUInt32BE(0) & 0x7fff_ffff;
    if (increment === 0) throw new ProtocolError("a WINDOW_UPDATE of 0");
    if (streamId === 0) {
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ProtocolError("the connection window over 2^31-1");
    } else if (streamId === STREAM) {
      this.streamSendWindow += increment;
      if (this.streamSendWindow > MAX_WINDOW) throw new ProtocolError("the stream window over 2^31-1");
    }
    this.flush();
  }

  private onHeaderFragment(flags: number, fragment: Buffer): void {
    const block = this.headerBlock as { bytes: Buffer; size: number; endStream: boolean };
    if (block.size + fragment.length > MAX_HEADER_LIST)
      throw new ProtocolError(`a header block over ${MAX_HEADER_LIST} bytes`);
    fragment.copy(block.bytes, block.size);
    block.size += fragment.length;
    if ((flags & END_HEADERS) === 0) return;
    this.headerBlock = undefined;
    this.onHeaders(this.hpack.decode(block.bytes.subarray(0, block.size)), block.endStream);
  }

  /** A whole header block: the response's headers, then its trailers. */
  private onHeaders(list: readonly [string, string][], endStream: boolean): void {
    const headers = new Map<string, string>();
    for (const [name, value] of list) {
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    if (!this.responded) {
      const status = headers.get(":status") ?? "";
      // An informational answer (1xx) comes before the real one: skipped, a few of them.
      if (!endStream && /^1\d\d$/.test(status)) {
        if (++this.informational > MAX_INFORMATIONAL)
          throw new ProtocolError(`more than ${MAX_INFORMATIONAL} informational (1xx) answers`);
        return;
      }
      this.responded = true;
      const grpcStatus = statusText(headers); // a trailers-only answer: the call failed at once
      if (grpcStatus !== undefined) this.close(grpcStatus);
      else if (status !== "200") this.close(`HTTP status ${status === "" ? "(none)" : status}`);
      else if (endStream) this.close("stream ended without a status");
      else this.events.onOpen();
      return;
    }
    if (!endStream) throw new ProtocolError("trailers without END_STREAM");
    this.close(statusText(headers) ?? "stream ended without a status");
  }

  private onDataFrame(flags: number, payload: Buffer): void {
    if (!this.responded) throw new ProtocolError("DATA before the response headers");
    const endStream = (flags & END_STREAM) !== 0;
    const data = unpadded(flags, payload);
    // Padding alone carries nothing either.
    this.countEmpty(data.length === 0 && !endStream);
    // Flow control counts the whole payload, padding included; announce it back in large steps.
    this.unannounced += payload.length;
    if (this.unannounced >= RECEIVE_WINDOW / 4) {
      this.send(Buffer.concat([windowUpdate(0, this.unannounced), windowUpdate(STREAM, this.unannounced)]));
      this.unannounced = 0;
    }
    let at = 0;
    while (!this.closed && at < data.length) {
      if (this.body === undefined) {
        const n = Math.min(5 - this.prefixFilled, data.length - at);
        data.copy(this.prefix, this.prefixFilled, at, at + n);
        this.prefixFilled += n;
        at += n;
        if (this.prefixFilled < 5) break;
        if (this.prefix[0] !== 0) {
          this.close("compressed gRPC messages are not supported");
          return;
        }
        const length = this.prefix.readUInt32BE(1);
        if (length > MAX_MESSAGE_BYTES) {
          this.close(`a message of ${length} bytes is over the ${MAX_MESSAGE_BYTES} limit`);
          return;
        }
        // The message's own buffer, filled by copying: however the server splits it into frames,
        // it costs its length once.
        this.body = Buffer.allocUnsafe(length);
        this.bodyFilled = 0;
      } else {
        const n = Math.min(this.body.length - this.bodyFilled, data.length - at);
        data.copy(this.body, this.bodyFilled, at, at + n);
        this.bodyFilled += n;
        at += n;
      }
      if (this.body.length === this.bodyFilled) this.deliver(this.body);
    }
    if (!this.closed && endStream) this.close("stream ended without a status");
  }

  private deliver(message: Buffer): void {
    this.body = undefined;
    this.prefixFilled = 0;
    let response: DiscoveryResponse;
    try {
      response = decodeResponse(message);
    } catch (err) {
      this.close(`undecodable DiscoveryResponse: ${(err as Error).message}`);
      return;
    }
    this.events.onMessage(response);
  }
}

export function openAdsStream(options: StreamOptions, events: StreamEvents): AdsStreamHandle {
  return new GrpcStream(options, events);
}
