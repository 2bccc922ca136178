// A streaming GGUF v3 writer: metadata and tensor infos first, then each tensor read, encoded and written one
// at a time (a model never has to fit in memory twice). The file is written under a temporary name and renamed
// into place, so a failed export leaves no half-written .gguf behind.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  GgufValueType,
  encodeTensor,
  tensorBytes,
  type GgmlTypeName,
} from './format';

export type GgufScalar =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string };
export type GgufValue =
  | GgufScalar
  | { type: 'array'; itemType: 'string'; value: string[] }
  | { type: 'array'; itemType: 'u32' | 'i32' | 'f32'; value: ArrayLike<number> };

export interface GgufTensorPlan {
  name: string;
  /** row-major (numpy/PyTorch) shape; written reversed, as ggml's ne[] */
  shape: number[];
  type: GgmlTypeName;
  /** the values, row-major, read when the tensor is written */
  read: () => Float32Array;
}

const SCALAR_CODE = {
  u8: GgufValueType.UINT8,
  i8: GgufValueType.INT8,
  u16: GgufValueType.UINT16,
  i16: GgufValueType.INT16,
  u32: GgufValueType.UINT32,
  i32: GgufValueType.INT32,
  u64: GgufValueType.UINT64,
  i64: GgufValueType.INT64,
  f32: GgufValueType.FLOAT32,
  f64: GgufValueType.FLOAT64,
  bool: GgufValueType.BOOL,
  string: GgufValueType.STRING,
} as const;

/** Little-endian byte sink that grows as needed (for the header). */
class Bytes {
  buf = new Uint8Array(1 << 16);
  dv = new DataView(this.buf.buffer);
  n = 0;
  private need(k: number): void {
    if (this.n + k <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.n + k) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  u8(v: number): void {
    this.need(1);
    this.dv.setUint8(this.n, v);
    this.n += 1;
  }
  u32(v: number): void {
    this.need(4);
    this.dv.setUint32(this.n, v, true);
    this.n += 4;
  }
  u64(v: number): void {
    this.need(8);
    this.dv.setBigUint64(this.n, BigInt(v), true);
    this.n += 8;
  }
  raw(b: Uint8Array): void {
    this.need(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.raw(b);
  }
  scalar(type: GgufScalar['type'], v: number | boolean | string): void {
    switch (type) {
      case 'string':
        return this.string(v as string);
      case 'bool':
        return this.u8(v ? 1 : 0);
      case 'u8':
        return this.u8(v as number);
      case 'i8':
        this.need(1);
        this.dv.setInt8(this.n, v as number);
        this.n += 1;
        return;
      case 'u16':
        this.need(2);
        this.dv.setUint16(this.n, v as number, true);
        this.n += 2;
        return;
      case 'i16':
        this.need(2);
        this.dv.setInt16(this.n, v as number, true);
        this.n += 2;
        return;
      case 'u32':
        return this.u32(v as number);
      case 'i32':
        this.need(4);
        this.dv.setInt32(this.n, v as number, true);
        this.n += 4;
        return;
      case 'u64':
        return this.u64(v as number);
      case 'i64':
        this.need(8);
        this.dv.setBigInt64(this.n, BigInt(v as number), true);
        this.n += 8;
        return;
      case 'f32':
        this.need(4);
        this.dv.setFloat32(this.n, v as number, true);
        this.n += 4;
        return;
      case 'f64':
        this.need(8);
        this.dv.setFloat64(this.n, v as number, true);
        this.n += 8;
        return;
    }
  }
  pad(align: number): void {
    while (this.n % align) this.u8(0);
  }
}

export interface GgufWriteReport {
  path: string;
  bytes: number;
  tensors: number;
  /** tensors per ggml type */
  types: Partial<Record<GgmlTypeName, number>>;
}

/** Write a GGUF file: `kv` in order (general.alignment is added when absent), then `tensors` in order. */
export function writeGguf(
  path: string,
  kv: Map<string, GgufValue>,
  tensors: GgufTensorPlan[],
  onTensor?: (i: number, n: number) => void,
): GgufWriteReport {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`GGUF: tensor ${t.name} is listed twice`);
    names.add(t.name);
    if (Buffer.byteLength(t.name) >= 64) throw new Error(`GGUF: tensor name ${t.name} is longer than ggml's 63 bytes`);
  }
  const align = GGUF_DEFAULT_ALIGNMENT;
  const h = new Bytes();
  h.u32(GGUF_MAGIC);
  h.u32(GGUF_VERSION);
  h.u64(tensors.length);
  h.u64(kv.size);
  for (const [key, v] of kv) {
    h.string(key);
    if (v.type === 'array') {
      h.u32(GgufValueType.ARRAY);
      h.u32(SCALAR_CODE[v.itemType]);
      h.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) h.scalar(v.itemType, (v.value as ArrayLike<number | string>)[i]);
    } else {
      h.u32(SCALAR_CODE[v.type]);
      h.scalar(v.type, v.value);
    }
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    h.string(t.name);
    h.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) h.u64(t.shape[d]);
    h.u32(GgmlType[t.type]);
    h.u64(offset);
    const size = tensorBytes(t.type, t.shape);
    sizes.push(size);
    offset += Math.ceil(size / align) * align;
  }
  h.pad(align);

  const tmp = `${path}.partial-${process.pid}`;
  const fd = openSync(tmp, 'w');
  const types: GgufWriteReport['types'] = {};
  let written = 0;
  try {
    writeSync(fd, h.buf, 0, h.n);
    written += h.n;
    const zeros = new Uint8Array(align);
    tensors.forEach((t, i) => {
      const values = t.read();
      const n = t.shape.reduce((a, d) => a * d, 1);
      if (values.length !== n)
        throw new Error(`GGUF: tensor ${t.name} has ${values.length} values, its shape [${t.shape}] needs ${n}`);
      const bytes = encodeTensor(t.type, values);
      if (bytes.length !== sizes[i])
        throw new Error(`GGUF: tensor ${t.name} encoded to ${bytes.length} bytes, expected ${sizes[i]}`);
      writeSync(fd, bytes);
      const pad = (align - (bytes.length % align)) % align;
      if (pad) writeSync(fd, zeros, 0, pad);
      written += bytes.length + pad;
      types[t.type] = (types[t.type] ?? 0) + 1;
      onTensor?.(i + 1, tensors.length);
    });
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  return { path, bytes: written, tensors: tensors.length, types };
}
