// A GGUF v2/v3 reader following ggml's gguf.cpp: metadata, tensor infos and tensor values (dequantized for
// Q8_0 / Q4_0). Used to check exported files and to read a GGUF back; every count and length is bounded so a
// corrupt or hostile file gives an error naming the field rather than a huge allocation.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  GGML_TYPE_NAMES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
  decodeTensor,
  tensorBytes,
  type GgmlTypeName,
} from './format';

export type GgufReadValue = number | bigint | boolean | string | GgufReadValue[];

export interface GgufTensorInfo {
  name: string;
  /** row-major shape (ggml's ne[] reversed) */
  shape: number[];
  type: GgmlTypeName;
  /** absolute byte offset in the file */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  path: string;
  version: number;
  kv: Map<string, GgufReadValue>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  dataOffset: number;
}

const MAX_STRING = 64 * 1024 * 1024;
const MAX_ITEMS = 64 * 1024 * 1024;
const MAX_HEADER = 1024 * 1024 * 1024;

class Cursor {
  private buf: Buffer;
  private start = 0; // file offset of buf[0]
  pos = 0; // file offset
  private size: number;
  constructor(
    private fd: number,
    private path: string,
  ) {
    this.size = fstatSync(fd).size;
    this.buf = Buffer.alloc(0);
  }
  private ensure(n: number, what: string): void {
    if (this.pos + n > this.size)
      throw new Error(`${this.path}: truncated GGUF file (reading ${what} at byte ${this.pos})`);
    if (this.pos + n > MAX_HEADER) throw new Error(`${this.path}: GGUF header larger than ${MAX_HEADER} bytes`);
    if (this.pos >= this.start && this.pos + n <= this.start + this.buf.length) return;
    const len = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
    this.buf = Buffer.alloc(len);
    readSync(this.fd, this.buf, 0, len, this.pos);
    this.start = this.pos;
  }
  private at(): number {
    return this.pos - this.start;
  }
  u8(what: string): number {
    this.ensure(1, what);
    const v = this.buf.readUInt8(this.at());
    this.pos += 1;
    return v;
  }
  u32(what: string): number {
    this.ensure(4, what);
    const v = this.buf.readUInt32LE(this.at());
    this.pos += 4;
    return v;
  }
  u64(what: string): number {
    this.ensure(8, what);
    const v = this.buf.readBigUInt64LE(this.at());
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${this.path}: ${what} is too large (${v})`);
    return Number(v);
  }
  string(what: string): string {
    const n = this.u64(`${what} length`);
    if (n > MAX_STRING) throw new Error(`${this.path}: ${what} is ${n} bytes long (limit ${MAX_STRING})`);
    this.ensure(n, what);
    const s = this.buf.toString('utf8', this.at(), this.at() + n);
    this.pos += n;
    return s;
  }
  value(type: number, what: string): GgufReadValue {
    switch (type) {
      case GgufValueType.UINT8:
        return this.u8(what);
      case GgufValueType.INT8: {
        this.ensure(1, what);
        const v = this.buf.readInt8(this.at());
        this.pos += 1;
        return v;
      }
      case GgufValueType.UINT16: {
        this.ensure(2, what);
        const v = this.buf.readUInt16LE(this.at());
        this.pos += 2;
        return v;
      }
      case GgufValueType.INT16: {
        this.ensure(2, what);
        const v = this.buf.readInt16LE(this.at());
        this.pos += 2;
        return v;
      }
      case GgufValueType.UINT32:
        return this.u32(what);
      case GgufValueType.INT32: {
        this.ensure(4, what);
        const v = this.buf.readInt32LE(this.at());
        this.pos += 4;
        return v;
      }
      case GgufValueType.FLOAT32: {
        this.ensure(4, what);
        const v = this.buf.readFloatLE(this.at());
        this.pos += 4;
        return v;
      }
      case GgufValueType.BOOL: {
        const v = this.u8(what);
        if (v > 1) throw new Error(`${this.path}: ${what}: bool value ${v}`);
        return v === 1;
      }
      case GgufValueType.STRING:
        return this.string(what);
      case GgufValueType.UINT64:
      case GgufValueType.INT64: {
        this.ensure(8, what);
        const v =
          type === GgufValueType.UINT64 ? this.buf.readBigUInt64LE(this.at()) : this.buf.readBigInt64LE(this.at());
        this.pos += 8;
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      case GgufValueType.FLOAT64: {
        this.ensure(8, what);
        const v = this.buf.readDoubleLE(this.at());
        this.pos += 8;
        return v;
      }
      case GgufValueType.ARRAY: {
        const itemType = this.u32(`${what} item type`);
        if (itemType === GgufValueType.ARRAY) throw new Error(`${this.path}: ${what}: nested arrays are not allowed`);
        const n = this.u64(`${what} count`);
        if (n > MAX_ITEMS) throw new Error(`${this.path}: ${what} has ${n} items (limit ${MAX_ITEMS})`);
        const out: GgufReadValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(itemType, `${what}[${i}]`);
        return out;
      }
      default:
        throw new Error(`${this.path}: ${what}: unknown value type ${type}`);
    }
  }
}

export function readGguf(path: string): GgufFile {
  const fd = openSync(path, 'r');
  try {
    const c = new Cursor(fd, path);
    const magic = c.u32('magic');
    if (magic !== GGUF_MAGIC) throw new Error(`${path}: not a GGUF file (bad magic)`);
    const version = c.u32('version');
    if (version !== 2 && version !== 3) throw new Error(`${path}: GGUF version ${version} is not supported (2 or 3)`);
    const nTensors = c.u64('tensor count');
    const nKv = c.u64('metadata count');
    if (nTensors > 1_000_000 || nKv > 1_000_000)
      throw new Error(`${path}: implausible counts (${nTensors} tensors, ${nKv} metadata keys)`);
    const kv = new Map<string, GgufReadValue>();
    for (let i = 0; i < nKv; i++) {
      const key = c.string(`metadata key ${i}`);
      const type = c.u32(`type of ${key}`);
      if (kv.has(key)) throw new Error(`${path}: duplicate metadata key ${key}`);
      kv.set(key, c.value(type, key));
    }
    const alignment =
      typeof kv.get('general.alignment') === 'number'
        ? (kv.get('general.alignment') as number)
        : GGUF_DEFAULT_ALIGNMENT;
    if (alignment <= 0 || (alignment & (alignment - 1)) !== 0)
      throw new Error(`${path}: general.alignment ${alignment} is not a power of two`);
    const raw: { name: string; shape: number[]; type: GgmlTypeName; rel: number }[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = c.string(`tensor ${i} name`);
      const nd = c.u32(`${name} dimensions`);
      if (nd < 1 || nd > 4) throw new Error(`${path}: tensor ${name} has ${nd} dimensions`);
      const ne: number[] = [];
      for (let d = 0; d < nd; d++) ne.push(c.u64(`${name} ne[${d}]`));
      const code = c.u32(`${name} type`);
      const type = GGML_TYPE_NAMES[code];
      if (!type) throw new Error(`${path}: tensor ${name} has ggml type ${code}, which this reader does not decode`);
      const rel = c.u64(`${name} offset`);
      if (rel % alignment) throw new Error(`${path}: tensor ${name} offset ${rel} is not aligned to ${alignment}`);
      raw.push({ name, shape: ne.reverse(), type, rel });
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    const size = fstatSync(fd).size;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const t of raw) {
      if (tensors.has(t.name)) throw new Error(`${path}: duplicate tensor ${t.name}`);
      const bytes = tensorBytes(t.type, t.shape);
      const offset = dataOffset + t.rel;
      if (offset + bytes > size) throw new Error(`${path}: tensor ${t.name} runs past the end of the file`);
      tensors.set(t.name, { name: t.name, shape: t.shape, type: t.type, offset, bytes });
    }
    return { path, version, kv, tensors, alignment, dataOffset };
  } finally {
    closeSync(fd);
  }
}

/** One tensor's values as float32 (row-major). */
export function readGgufTensor(file: GgufFile, name: string): Float32Array {
  const t = file.tensors.get(name);
  if (!t) throw new Error(`${file.path}: no tensor ${name}`);
  const fd = openSync(file.path, 'r');
  try {
    const b = Buffer.alloc(t.bytes);
    readSync(fd, b, 0, t.bytes, t.offset);
    return decodeTensor(
      t.type,
      b,
      t.shape.reduce((a, d) => a * d, 1),
    );
  } finally {
    closeSync(fd);
  }
}
