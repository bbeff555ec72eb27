// Protocol buffers' wire format, the little the ADS client needs: a bounds-checked reader of tags,
// varints, fixed-width numbers and length-delimited fields, and a writer of the same. No descriptor
// is involved here (see decode.ts for the table-driven decoding of Envoy's messages).

/** The wire types of the encoding: varint, 64-bit, length-delimited, group start/end, 32-bit. */
export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
export const SGROUP = 3;
export const EGROUP = 4;
export const I32 = 5;

export class WireError extends Error {}

const MAX_FIELD_NUMBER = 2 ** 29 - 1;
/** Strict: invalid UTF-8 throws; a leading U+FEFF is kept, as it is part of the string. */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Reads one message's bytes `[pos, end)` of `buf`; every read past `end` throws WireError. */
export class Reader {
  pos: number;
  readonly end: number;
  readonly buf: Buffer;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint's low 32 bits as an unsigned number (int32's negative values are 10 bytes long). */
  uint32(): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      const byte = this.varintByte(i);
      if (i < 5) value |= (byte & 0x7f) << (7 * i);
      if (byte < 0x80) return value >>> 0;
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /** A whole varint, all 64 bits, unsigned. */
  uint64(): bigint {
    let value = 0n;
    for (let i = 0; i < 10; i++) {
      const byte = this.varintByte(i);
      value |= BigInt(byte & 0x7f) << BigInt(7 * i);
      if (byte < 0x80) return value;
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /** A varint that must fit in 2^53 (tags, lengths): exact, or an error. */
  private count(): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      const byte = this.varintByte(i);
      value += (byte & 0x7f) * 2 ** (7 * i);
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) throw new WireError("varint too large for a tag or length");
        return value;
      }
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /** The i-th byte of a varint; a tenth byte may only carry bit 63. */
  private varintByte(i: number): number {
    if (this.pos >= this.end) throw new WireError("truncated varint");
    const byte = this.buf[this.pos++] as number;
    if (i === 9 && byte > 1) throw new WireError("varint overflows 64 bits");
    return byte;
  }

  private take(n: number): number {
    const at = this.pos;
    if (n > this.end - at) throw new WireError(`truncated: ${n} bytes wanted, ${this.end - at} left`);
    this.pos = at + n;
    return at;
  }

  fixed32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }
  sfixed32(): number {
    return this.buf.readInt32LE(this.take(4));
  }
  float(): number {
    return this.buf.readFloatLE(this.take(4));
  }
  fixed64(): bigint {
    return this.buf.readBigUInt64LE(this.take(8));
  }
  double(): number {
    return this.buf.readDoubleLE(this.take(8));
  }

  /** A length-delimited field's bounds `[start, end)`, checked against the message's end. */
  span(): [number, number] {
    const length = this.count();
    const start = this.take(length);
    return [start, start + length];
  }

  bytes(): Buffer {
    const [start, end] = this.span();
    return this.buf.subarray(start, end);
  }

  /** A proto3 string: valid UTF-8, or an error (as Go's protobuf and Envoy have it). */
  string(): string {
    const [start, end] = this.span();
    try {
      return UTF8.decode(this.buf.subarray(start, end));
    } catch {
      throw new WireError("a string field holds invalid UTF-8");
    }
  }

  /** A field's tag: its number (1 to 2^29-1) and wire type (0 to 5). */
  tag(): [number, number] {
    const key = this.count();
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    if (number === 0 || number > MAX_FIELD_NUMBER || wireType > I32)
      throw new WireError(`invalid tag ${key}`);
    return [number, wireType];
  }

  /** Skips one field's value of this wire type (a group up to its matching end). */
  skip(wireType: number, number: number, depth = 0): void {
    switch (wireType) {
      case VARINT:
        this.uint32();
        return;
      case I64:
        this.take(8);
        return;
      case LEN:
        this.span();
        return;
      case I32:
        this.take(4);
        return;
      case SGROUP: {
        if (depth > MAX_DEPTH) throw new WireError("groups nested too deeply");
        for (;;) {
          const [n, t] = this.tag();
          if (t === EGROUP) {
            if (n !== number) throw new WireError(`group ${number} ended by ${n}`);
            return;
          }
          this.skip(t, n, depth + 1);
        }
      }
      default:
        throw new WireError(`unexpected end of group ${number}`);
    }
  }
}

/** How deep messages may nest (Envoy's configs stay far below; a hostile peer's need not). */
export const MAX_DEPTH = 100;

/** Builds one message: fields appended in order, then `finish()`. */
export class Writer {
  private readonly parts: Buffer[] = [];
  private length = 0;

  private push(part: Buffer): void {
    this.parts.push(part);
    this.length += part.length;
  }

  private varint(value: number): void {
    const out: number[] = [];
    let v = value >>> 0;
    while (v >= 0x80) {
      out.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    out.push(v);
    this.push(Buffer.from(out));
  }

  private key(number: number, wireType: number): void {
    this.varint(((number << 3) | wireType) >>> 0);
  }

  /** An int32 field; negative values take ten bytes, as the encoding sign-extends them. */
  int32(number: number, value: number): void {
    this.key(number, VARINT);
    if (value >= 0) {
      this.varint(value);
      return;
    }
    const out = Buffer.alloc(10, 0xff);
    let v = value >>> 0;
    for (let i = 0; i < 4; i++) {
      out[i] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    // Bits 28-31 of the value, then the sign extension: bits 32-63 all set.
    out[4] = ((value >>> 28) & 0x0f) | 0xf0;
    out[9] = 0x01;
    this.push(out);
  }

  bytes(number: number, value: Buffer): void {
    this.key(number, LEN);
    this.varint(value.length);
    this.push(value);
  }

  string(number: number, value: string): void {
    this.bytes(number, Buffer.from(value, "utf8"));
  }

  /** An embedded message (already finished). */
  message(number: number, value: Buffer): void {
    this.bytes(number, value);
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}
