// Reads one HTTP/1.x response to a health check off a connection that may carry the next check:
// the status, then the body by its framing (Content-Length, chunked, or none for 1xx/204/304), so
// the connection is known to be idle again at its end. A response whose body runs until the close,
// or that says `connection: close`, ends the check at its headers and the connection is not reused.

/** The response head (status line and headers) may not exceed this. */
export const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;

export type ResponseOutcome =
  | { readonly kind: "response"; readonly status: number; readonly reusable: boolean }
  | { readonly kind: "malformed"; readonly message: string };

type Framing =
  | { readonly kind: "head" }
  | { readonly kind: "length"; remaining: number }
  | { readonly kind: "chunk-size" }
  | { readonly kind: "chunk-data"; remaining: number }
  | { readonly kind: "trailers" };

const CRLF = "\r\n";

export class HealthCheckResponseReader {
  /** True once any byte of a response arrived (a kept connection that fails before is just stale). */
  started = false;
  private buf = "";
  private state: Framing = { kind: "head" };
  private status = 0;
  private keepAlive = false;

  /** Feeds bytes; returns the outcome once the response is complete (or cannot be read). */
  push(chunk: Buffer): ResponseOutcome | undefined {
    this.started = true;
    this.buf += chunk.toString("latin1");
    for (;;) {
      const step = this.step();
      if (step !== "more") return step === "wait" ? undefined : step;
    }
  }

  private step(): ResponseOutcome | "more" | "wait" {
    switch (this.state.kind) {
      case "head":
        return this.head();
      case "length": {
        const take = Math.min(this.state.remaining, this.buf.length);
        this.state.remaining -= take;
        this.buf = this.buf.slice(take);
        return this.state.remaining === 0 ? this.complete() : "wait";
      }
      case "chunk-size": {
        const eol = this.buf.indexOf(CRLF);
        if (eol === -1) return this.buf.length > 1024 ? malformed("chunk size line too long") : "wait";
        const size = Number.parseInt(this.buf.slice(0, eol).split(";")[0] ?? "", 16);
        if (!Number.isFinite(size) || size < 0) return malformed("bad chunk size");
        this.buf = this.buf.slice(eol + 2);
        this.state = size === 0 ? { kind: "trailers" } : { kind: "chunk-data", remaining: size + 2 };
        return "more";
      }
      case "chunk-data": {
        const take = Math.min(this.state.remaining, this.buf.length);
        this.state.remaining -= take;
        this.buf = this.buf.slice(take);
        if (this.state.remaining > 0) return "wait";
        this.state = { kind: "chunk-size" };
        return "more";
      }
      case "trailers": {
        const eol = this.buf.indexOf(CRLF);
        if (eol === -1)
          return this.buf.length > MAX_RESPONSE_HEAD_BYTES ? malformed("trailers too long") : "wait";
        this.buf = this.buf.slice(eol + 2);
        return eol === 0 ? this.complete() : "more";
      }
    }
  }

  private head(): ResponseOutcome | "more" | "wait" {
    const end = this.buf.indexOf(CRLF + CRLF);
    if (end === -1) {
      if (this.buf.length <= MAX_RESPONSE_HEAD_BYTES) return "wait";
      return malformed(`no complete response head in the first ${MAX_RESPONSE_HEAD_BYTES} bytes`);
    }
    const [statusLine = "", ...lines] = this.buf.slice(0, end).split(CRLF);
    this.buf = this.buf.slice(end + 4);
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(statusLine);
    if (m === null) return malformed(`bad status line ${JSON.stringify(statusLine.slice(0, 64))}`);
    this.status = Number(m[2]);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const connection = (headers.get("connection") ?? "").toLowerCase();
    this.keepAlive = m[1] === "1" ? !connection.includes("close") : connection.includes("keep-alive");
    const noBody = this.status < 200 || this.status === 204 || this.status === 304;
    const length = headers.get("content-length");
    if (noBody) return this.complete();
    if ((headers.get("transfer-encoding") ?? "").toLowerCase().endsWith("chunked")) {
      this.state = { kind: "chunk-size" };
      return "more";
    }
    if (length !== undefined && /^\d+$/.test(length)) {
      this.state = { kind: "length", remaining: Number(length) };
      return "more";
    }
    // The body runs until the server closes: the answer is known, the connection is not reusable.
    this.keepAlive = false;
    return this.complete();
  }

  private complete(): ResponseOutcome {
    // Bytes past the end of the response: the connection is out of step, do not reuse it.
    return { kind: "response", status: this.status, reusable: this.keepAlive && this.buf.length === 0 };
  }
}

function malformed(message: string): ResponseOutcome {
  return { kind: "malformed", message };
}
