// One read buffer for every plain TCP connection, upstream (net's `onread` option) and downstream (the
// HTTP session reads its socket's handle into it): each read lands in it and is parsed before the
// next read, so a body costs no Buffer of its own while it only passes through. A body chunk handed
// on from a read is a view of this buffer, valid until the next read: whoever keeps a chunk past the
// call that handed it over (a write that waits in a socket's queue, the decision cache, a request
// body held for its reader) keeps `retainable(chunk)`.

/** Bytes one read of a plain TCP connection may bring (libuv's usual read size). */
const READ_BUFFER_BYTES = 64 * 1024;

let shared: Buffer | undefined;

/** The shared read buffer: made at the first connection, not in the start-up snapshot. */
export function sharedReadBuffer(): Buffer {
  // Over its own ArrayBuffer (never a slice of Node's pool), so a view of it is told apart exactly.
  return (shared ??= Buffer.from(new ArrayBuffer(READ_BUFFER_BYTES)));
}

/** Whether `chunk` is a view of the shared read buffer (its bytes change with the next read). */
export function isSharedRead(chunk: Uint8Array): boolean {
  return shared !== undefined && chunk.buffer === shared.buffer;
}

/** `chunk` itself, or a copy when it is a view of the shared read buffer. */
export function retainable(chunk: Buffer): Buffer {
  return isSharedRead(chunk) ? Buffer.from(chunk) : chunk;
}
