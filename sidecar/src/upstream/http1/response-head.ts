// A response head as the upstream sent it: its bytes and where each header line's name and value
// are in them. The proxy relays a head by copying those bytes (names lower-cased, hop-by-hop lines
// left out) into the downstream response, so a plain response costs no string per header; the
// name/value strings are made only for the few paths that read them (the decision cache, interim
// responses, tests).
//
// A head is valid only during the parser's callback that hands it over: its bytes may be the
// connection's shared read buffer, and the parser reuses the object for the next response.

/** Field flags: the line goes on to the client (not hop-by-hop, not a repeated Content-Length). */
export const RELAYED = 1;
/** The line is in `list()` (everything but a repeated Content-Length). */
export const LISTED = 2;

/** Words per header line in `fields`: name start and end, value start and end, flags. */
const STRIDE = 5;
const EMPTY = Buffer.alloc(0);

export class ResponseHead {
  /** The head's bytes (a view: see above). */
  bytes: Buffer = EMPTY;
  /** STRIDE numbers per header line, offsets into `bytes`; the value is without surrounding whitespace. */
  readonly fields: number[] = [];
  /** Header lines in `fields`. */
  count = 0;
  /** A Date header is relayed. */
  hasDate = false;
  /** A Content-Length header is relayed. */
  hasLength = false;

  /** Starts a new head over `bytes`. */
  reset(bytes: Buffer): void {
    this.bytes = bytes;
    this.count = 0;
    this.hasDate = false;
    this.hasLength = false;
  }

  add(nameStart: number, nameEnd: number, valueStart: number, valueEnd: number, flags: number): void {
    const f = this.fields;
    const at = this.count * STRIDE;
    f[at] = nameStart;
    f[at + 1] = nameEnd;
    f[at + 2] = valueStart;
    f[at + 3] = valueEnd;
    f[at + 4] = flags;
    this.count++;
  }

  /** The header lines as a flat list of lower-case names and values (hop-by-hop ones included). */
  list(): string[] {
    return this.strings(LISTED);
  }

  /** The header lines that go on to the client, as a flat list of lower-case names and values. */
  relayedList(): string[] {
    return this.strings(RELAYED);
  }

  private strings(flag: number): string[] {
    const out: string[] = [];
    const f = this.fields;
    const b = this.bytes;
    for (let i = 0; i < this.count * STRIDE; i += STRIDE) {
      if (((f[i + 4] as number) & flag) === 0) continue;
      out.push(b.toString("latin1", f[i], f[i + 1]).toLowerCase(), b.toString("latin1", f[i + 2], f[i + 3]));
    }
    return out;
  }

  /** Bytes the relayed lines take written as `name: value\r\n`. */
  relayedLength(): number {
    const f = this.fields;
    let n = 0;
    for (let i = 0; i < this.count * STRIDE; i += STRIDE) {
      if (((f[i + 4] as number) & RELAYED) === 0) continue;
      n += (f[i + 1] as number) - (f[i] as number) + (f[i + 3] as number) - (f[i + 2] as number) + 4;
    }
    return n;
  }

  /**
   * Writes the relayed lines as `name: value\r\n` (names lower-cased, as Envoy's HTTP/1 codec sends
   * them) into `target` from `at`; returns the offset after the last one.
   */
  writeRelayed(target: Buffer, at: number): number {
    const f = this.fields;
    const b = this.bytes;
    let o = at;
    for (let i = 0; i < this.count * STRIDE; i += STRIDE) {
      if (((f[i + 4] as number) & RELAYED) === 0) continue;
      const nameEnd = f[i + 1] as number;
      for (let j = f[i] as number; j < nameEnd; j++) {
        const c = b[j] as number;
        target[o++] = c >= 65 && c <= 90 ? c + 32 : c;
      }
      target[o++] = 58; // :
      target[o++] = 32;
      const valueEnd = f[i + 3] as number;
      for (let j = f[i + 2] as number; j < valueEnd; j++) target[o++] = b[j] as number;
      target[o++] = 13;
      target[o++] = 10;
    }
    return o;
  }
}
