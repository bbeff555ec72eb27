// One write on a plain TCP socket, handed to its libuv handle directly when nothing waits in front
// of it. This is what net.Socket does underneath `socket.write`; going there directly skips the
// stream bookkeeping around it (Writable's write, writeOrBuffer and onwrite, and a next-tick
// afterWrite per call), which is a measurable part of a proxied request's CPU (bench/RESULTS.md).
//
// Why it is safe to mix with `socket.write`, `end` and `destroy` on the same socket:
// - Order: the direct path is taken only while the socket has nothing buffered (or corked) and is
//   not connecting. libuv keeps a stream's writes in order and shuts a stream down only after its
//   queued writes, so a later `socket.write` or `socket.end` lands after this write.
// - Back-pressure: a direct write is always smaller than the socket's high-water mark, and while
//   one waits in libuv's queue the next goes through `socket.write`, which counts it and returns
//   false (then emits 'drain') as usual. A direct write returns true, as `socket.write` would have
//   for it; no 'drain' is owed for it.
// - Counts: `socket.bytesWritten` reads the handle's own counter, which includes these bytes.
// - Timeouts: the socket's timeout is refreshed on the write and on its completion, as net does.
// - Errors: a failed write destroys the socket with the errno error, as a failed `socket.write`.
// Anything else (TLS, a socket still connecting, a write in flight, a large write) goes through
// `socket.write` unchanged.
import type { Socket } from "node:net";
import { getSystemErrorName } from "node:util";

const IN_FLIGHT = Symbol("tether.directWriteInFlight");

/** A libuv write request (node's WriteWrap); `oncomplete` runs when an asynchronous write ends. */
interface WriteReq {
  handle: StreamWriteHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  socket: DirectSocket | null;
  /** The written Buffer, kept alive while libuv still reads from it. */
  buffer: Buffer | null;
  callback: WriteCallback | undefined;
}

interface StreamWriteHandle {
  writeBuffer(req: WriteReq, data: Buffer): number;
  writeLatin1String(req: WriteReq, data: string): number;
  /**
   * A direct write waits in libuv's queue. Kept on the handle, not the socket: every TCP handle has
   * the same shape, while sockets differ (each owner adds its own fields), so reading it stays cheap.
   */
  [IN_FLIGHT]?: boolean;
}

interface StreamBinding {
  WriteWrap: new () => WriteReq;
  /** Shared with C++: what the last write did. */
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

type DirectSocket = Socket & {
  _handle: (StreamWriteHandle & { isStreamBase?: boolean }) | null;
  _unrefTimer(): void;
  connecting: boolean;
  encrypted?: boolean;
};

/** Called once the bytes are with the kernel (next tick at the soonest), or with the write's error. */
export type WriteCallback = (err: Error | null) => void;

/** node's stream_wrap binding; null once it turned out not to be there. */
let binding: StreamBinding | null | undefined;
/**
 * node's stream_wrap binding (what net.Socket writes through), loaded at the first write: it cannot
 * be in the start-up snapshot. `process.binding` is deprecated in documentation only (DEP0111: a
 * warning only under --pending-deprecation); should a Node release stop offering this module, every
 * write goes through `socket.write` instead.
 */
function streamBinding(): StreamBinding | null {
  if (binding !== undefined) return binding;
  try {
    const b = (process as unknown as { binding(name: string): Partial<StreamBinding> }).binding(
      "stream_wrap",
    );
    binding =
      typeof b.WriteWrap === "function" &&
      b.streamBaseState instanceof Int32Array &&
      typeof b.kLastWriteWasAsync === "number"
        ? (b as StreamBinding)
        : null;
  } catch {
    binding = null;
  }
  return binding;
}

/** An errno from libuv as net reports it (`write EPIPE`, with code, errno and syscall). */
function writeError(status: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(status);
  const err: NodeJS.ErrnoException = new Error(`write ${code}`);
  err.code = code;
  err.errno = status;
  err.syscall = "write";
  return err;
}

function onDirectWriteComplete(this: WriteReq, status: number): void {
  const socket = this.socket;
  const cb = this.callback;
  this.socket = null;
  this.buffer = null;
  this.callback = undefined;
  if (socket === null) return;
  this.handle[IN_FLIGHT] = false;
  if (socket.destroyed) {
    cb?.(null);
    return;
  }
  if (status < 0) {
    const err = writeError(status);
    socket.destroy(err);
    cb?.(err);
    return;
  }
  socket._unrefTimer();
  cb?.(null);
}

/**
 * The request object for the next write. A write the kernel took whole never reaches libuv's queue
 * (node attaches its native request to the object only then), so the same object serves again; one
 * that went asynchronous (or failed) is left to libuv and a new one is made.
 */
let spareReq: WriteReq | undefined;

function newWriteReq(b: StreamBinding): WriteReq {
  const req = new b.WriteWrap();
  req.oncomplete = onDirectWriteComplete;
  req.socket = null;
  req.buffer = null;
  req.callback = undefined;
  return req;
}

function plainWrite(socket: Socket, data: Buffer | string, cb: WriteCallback | undefined): boolean {
  return cb === undefined
    ? socket.write(data, "latin1")
    : socket.write(data, "latin1", cb as (err?: Error | null) => void);
}

function callbackNT(cb: WriteCallback): void {
  cb(null);
}

/**
 * Writes `data` (a Buffer, or a latin1 string) on `socket`, as `socket.write(data, "latin1", cb)`
 * would, and returns what that would return.
 */
export function writeOut(socket: Socket, data: Buffer | string, cb?: WriteCallback): boolean {
  const s = socket as DirectSocket;
  const handle = s._handle;
  if (
    handle === null ||
    handle.isStreamBase !== true ||
    s.encrypted === true ||
    s.connecting ||
    s.destroyed ||
    s.writableEnded ||
    s.writableLength !== 0 ||
    handle[IN_FLIGHT] === true ||
    data.length >= s.writableHighWaterMark
  )
    return plainWrite(socket, data, cb);
  const b = streamBinding();
  if (b === null) return plainWrite(socket, data, cb);
  const req = (spareReq ??= newWriteReq(b));
  req.handle = handle;
  s._unrefTimer();
  const status =
    typeof data === "string" ? handle.writeLatin1String(req, data) : handle.writeBuffer(req, data);
  if (status !== 0) {
    spareReq = undefined;
    // As net: the socket is destroyed with the error; the callback hears it on the next tick.
    const err = writeError(status);
    s.destroy(err);
    if (cb !== undefined) process.nextTick(cb, err);
    return false;
  }
  if (b.streamBaseState[b.kLastWriteWasAsync] !== 0) {
    // Part of it waits in libuv's queue: the request is libuv's until it completes.
    spareReq = undefined;
    req.socket = s;
    req.callback = cb;
    if (typeof data !== "string") req.buffer = data;
    handle[IN_FLIGHT] = true;
  } else if (cb !== undefined) process.nextTick(callbackNT, cb);
  return true;
}
