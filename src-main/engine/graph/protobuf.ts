// A minimal protobuf wire-format writer (and a reader used by tests and the cache): varints, length-delimited fields,
// fixed32 floats and packed repeated scalars. Enough for the ONNX messages; no schema, no reflection.

export class PbWriter {
  private buf: Uint8Array;
  private pos = 0;
  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
  }
  get length(): number {
    return this.pos;
  }
  /** Unsigned varint; negative values are written as 64-bit two's complement (10 bytes), as protobuf int64 does. */
  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    if (x < 0x80n && typeof v === 'number' && v >= 0) {
      this.ensure(1);
      this.buf[this.pos++] = Number(x);
      return this;
    }
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.pos++] = Number(x);
    return this;
  }
  private smallVarint(v: number): void {
    // fast path for non-negative numbers below 2^31
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
  }
  tag(field: number, wire: number): this {
    this.smallVarint((field << 3) | wire);
    return this;
  }
  uint(field: number, v: number | bigint): this {
    this.tag(field, 0);
    if (typeof v === 'number' && v >= 0 && v < 0x80000000) this.smallVarint(v);
    else this.varint(v);
    return this;
  }
  float(field: number, v: number): this {
    this.tag(field, 5);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.pos, v, true);
    this.pos += 4;
    return this;
  }
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.smallVarintOrBig(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    return this;
  }
  private smallVarintOrBig(n: number): void {
    if (n < 0x80000000) this.smallVarint(n);
    else this.varint(n);
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, fn: (w: PbWriter) => void): this {
    const sub = new PbWriter();
    fn(sub);
    return this.bytes(field, sub.finish());
  }
  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    if (values.length === 0) return this;
    const sub = new PbWriter(values.length * 2 + 8);
    for (const v of values) sub.varint(v);
    return this.bytes(field, sub.finish());
  }
  packedFloats(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    const f = new Float32Array(values);
    return this.bytes(field, new Uint8Array(f.buffer));
  }
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

export type PbField = { field: number; wire: number; value: bigint | Uint8Array | number };

/** Decode one message level into fields (varints as bigint, length-delimited as bytes, fixed32/64 as raw number bits). */
export function pbRead(buf: Uint8Array): PbField[] {
  const out: PbField[] = [];
  let pos = 0;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('protobuf: truncated varint');
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(readVarint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, value: readVarint() });
    else if (wire === 2) {
      const len = Number(readVarint());
      if (pos + len > buf.length) throw new Error('protobuf: truncated bytes');
      out.push({ field, wire, value: buf.subarray(pos, pos + len) });
      pos += len;
    } else if (wire === 5) {
      out.push({ field, wire, value: dv.getFloat32(pos, true) });
      pos += 4;
    } else if (wire === 1) {
      out.push({ field, wire, value: dv.getFloat64(pos, true) });
      pos += 8;
    } else throw new Error(`protobuf: unsupported wire type ${wire}`);
  }
  return out;
}
