// safetensors read/write and the sharded index (model.safetensors.index.json).
//
// File layout (https://github.com/huggingface/safetensors): 8 bytes little-endian u64 N, then N bytes of JSON
// header {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}, then the byte
// buffer; offsets are relative to the buffer start. Reading is lazy: the header is parsed and validated on open,
// each tensor is read from the file descriptor on demand, so a multi-GB file is never loaded whole.
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { writeAll, writeFileAtomic, writeTextAtomic } from '../../util/atomic-write';
import {
  DTYPE_BYTES,
  bytesToF32,
  f32ToBytes,
  isDtype,
  isFloatDtype,
  numel,
  type Dtype,
  type FloatDtype,
} from './dtype';

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets [begin, end) inside the data buffer (after the header). */
  offsets: [number, number];
}

/** A tensor held in memory as float32 values, with the dtype it is (or will be) stored as. */
export interface Tensor {
  dtype: FloatDtype;
  shape: number[];
  data: Float32Array;
}

/** Anything tensors can be read from one at a time (a file, a set of shards, a Map in memory). */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  /** dtype and shape without reading data; throws for an unknown name. */
  info(name: string): { dtype: Dtype; shape: number[] };
  /** Read (and convert) one tensor to float32. */
  get(name: string): Float32Array;
  /** Optional: elements [start, start + count) of the flattened tensor as float32, without reading the rest. */
  getRange?(name: string, start: number, count: number): Float32Array;
}

/** A TensorSource over tensors held in memory. */
export function memorySource(m: Map<string, Tensor>): TensorSource & { tensors: Map<string, Tensor> } {
  const get = (n: string): Tensor => {
    const t = m.get(n);
    if (!t) throw new SafetensorsError(`no tensor named "${n}"`);
    return t;
  };
  return {
    tensors: m,
    names: () => [...m.keys()],
    has: (n) => m.has(n),
    info: (n) => ({ dtype: get(n).dtype, shape: get(n).shape }),
    get: (n) => get(n).data,
  };
}

const MAX_HEADER = 100 * 1024 * 1024; // the reference implementation's limit
/** Bytes read per step when converting a tensor to float32. */
const READ_CHUNK = 16 * 1024 * 1024;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class SafetensorsError extends Error {}

function fail(file: string, what: string): never {
  throw new SafetensorsError(`${file}: ${what}`);
}

/** An open safetensors file: header parsed and validated, tensor data read lazily. */
export class SafetensorsFile implements TensorSource {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly tensors: Map<string, TensorInfo>;
  readonly dataStart: number;
  private fd: number | null;

  private constructor(
    path: string,
    fd: number,
    metadata: Record<string, string>,
    tensors: Map<string, TensorInfo>,
    dataStart: number,
  ) {
    this.path = path;
    this.fd = fd;
    this.metadata = metadata;
    this.tensors = tensors;
    this.dataStart = dataStart;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      // O_NONBLOCK: opening a FIFO without a writer would block this thread forever; fstat then refuses it
      fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    } catch (e) {
      fail(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile())
        fail(
          path,
          `not a regular file (${st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isDirectory() ? 'a folder' : 'a device'}); weights are read only from regular files`,
        );
      const size = st.size;
      if (size < 8) fail(path, `file is ${size} bytes, too short for a safetensors header`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER)) fail(path, `header length ${n} exceeds ${MAX_HEADER} bytes`);
      const headerLen = Number(n);
      if (8 + headerLen > size) fail(path, `header length ${headerLen} runs past the end of the ${size}-byte file`);
      const hbuf = Buffer.alloc(headerLen);
      readSync(fd, hbuf, 0, headerLen, 8);
      const { metadata, tensors } = parseHeader(path, hbuf.toString('utf8'), size - 8 - headerLen);
      return new SafetensorsFile(path, fd, metadata, tensors, 8 + headerLen);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) fail(this.path, `no tensor named "${name}"`);
    return t;
  }
  /** The tensor's raw little-endian bytes. */
  readBytes(name: string): Buffer {
    const t = this.info(name);
    if (this.fd === null) fail(this.path, `read of "${name}" after close`);
    const len = t.offsets[1] - t.offsets[0];
    const buf = Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      const r = readSync(this.fd, buf, done, len - done, this.dataStart + t.offsets[0] + done);
      if (r === 0) fail(this.path, `tensor "${name}": file ended while reading`);
      done += r;
    }
    return buf;
  }
  /** Read `len` bytes of the data buffer at `offset` into `dst`. */
  private readInto(name: string, dst: Uint8Array, offset: number): void {
    if (this.fd === null) fail(this.path, `read of "${name}" after close`);
    let done = 0;
    while (done < dst.length) {
      const r = readSync(this.fd, dst, done, dst.length - done, this.dataStart + offset + done);
      if (r === 0) fail(this.path, `tensor "${name}": file ended while reading`);
      done += r;
    }
  }
  /**
   * The tensor as float32. F32 is read straight into the result (on little-endian machines); other dtypes are read
   * and converted in chunks of about 16 MiB, so the file's bytes and the float32 copy are never both whole in memory.
   */
  get(name: string): Float32Array {
    return this.getRange(name, 0, numel(this.info(name).shape));
  }
  /** Elements [start, start + count) of the flattened tensor as float32 (read as get() reads). */
  getRange(name: string, start: number, count: number): Float32Array {
    const t = this.info(name);
    if (!isFloatDtype(t.dtype) && t.dtype !== 'F64')
      fail(this.path, `tensor "${name}" has dtype ${t.dtype}; only F32, F16, BF16 (and F64) load as float32`);
    const total = numel(t.shape);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > total)
      fail(this.path, `tensor "${name}": range [${start}, ${start + count}) is outside its ${total} elements`);
    const out = new Float32Array(count);
    const eb = DTYPE_BYTES[t.dtype];
    const base = t.offsets[0] + start * eb;
    if (t.dtype === 'F32' && LITTLE_ENDIAN) {
      this.readInto(name, new Uint8Array(out.buffer), base);
      return out;
    }
    const per = Math.max(1, Math.floor(READ_CHUNK / eb));
    const buf = new Uint8Array(Math.min(per, count) * eb);
    for (let i = 0; i < count; i += per) {
      const k = Math.min(per, count - i);
      const part = buf.subarray(0, k * eb);
      this.readInto(name, part, base + i * eb);
      out.set(bytesToF32(part, t.dtype, k), i);
    }
    return out;
  }
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function parseHeader(
  file: string,
  text: string,
  bufferLen: number,
): { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail(file, 'header is not a JSON object');
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) fail(file, '__metadata__ is not an object');
      for (const [k, mv] of Object.entries(v)) {
        if (typeof mv !== 'string') fail(file, `__metadata__.${k} is not a string`);
        metadata[k] = mv;
      }
      continue;
    }
    if (!v || typeof v !== 'object') fail(file, `tensor "${name}": entry is not an object`);
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDtype(e.dtype)) fail(file, `tensor "${name}": unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(file, `tensor "${name}": shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    const off = e.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      off[1] < off[0]
    )
      fail(file, `tensor "${name}": data_offsets ${JSON.stringify(off)} is not [begin, end] with begin <= end`);
    const expected = numel(e.shape) * DTYPE_BYTES[e.dtype];
    if (off[1] - off[0] !== expected)
      fail(
        file,
        `tensor "${name}": data_offsets span ${off[1] - off[0]} bytes but ${e.dtype}${JSON.stringify(e.shape)} needs ${expected}`,
      );
    if (off[1] > bufferLen)
      fail(file, `tensor "${name}": data_offsets end ${off[1]} is past the data buffer (${bufferLen} bytes)`);
    tensors.set(name, { name, dtype: e.dtype, shape: e.shape.slice(), offsets: [off[0], off[1]] });
  }
  // Tensors must not overlap and must cover the buffer without holes (as the reference implementation checks).
  const sorted = [...tensors.values()].sort((a, b) => a.offsets[0] - b.offsets[0] || a.offsets[1] - b.offsets[1]);
  let pos = 0;
  for (const t of sorted) {
    if (t.offsets[0] !== pos)
      fail(
        file,
        `tensor "${t.name}": data_offsets start at ${t.offsets[0]}, expected ${pos} (tensors overlap or leave a hole)`,
      );
    pos = t.offsets[1];
  }
  if (pos !== bufferLen) fail(file, `data buffer is ${bufferLen} bytes but tensors cover ${pos}`);
  return { metadata, tensors };
}

// ---------------------------------------------------------------- writing

/** One tensor to write: its storage dtype, shape, and a way to get its float32 data (called once, in write order). */
export interface TensorToWrite {
  name: string;
  dtype: FloatDtype;
  shape: number[];
  data: () => Float32Array | Uint8Array;
}

/** Write a safetensors file (atomic). Tensors are laid out sorted by name; metadata defaults to {"format":"pt"}. */
export function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: metadata };
  let pos = 0;
  const seen = new Set<string>();
  for (const t of sorted) {
    if (seen.has(t.name)) fail(path, `tensor "${t.name}" given twice`);
    seen.add(t.name);
    const len = numel(t.shape) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + len] };
    pos += len;
  }
  let htext = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(htext) % 8)) % 8; // keep the data buffer 8-byte aligned
  htext += ' '.repeat(pad);
  const hbytes = Buffer.from(htext, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hbytes.length));
  writeFileAtomic(path, (fd) => {
    writeAll(fd, lenBuf);
    writeAll(fd, hbytes);
    for (const t of sorted) {
      const d = t.data();
      const n = numel(t.shape);
      let bytes: Uint8Array;
      if (d instanceof Float32Array) {
        if (d.length !== n)
          fail(path, `tensor "${t.name}": shape ${JSON.stringify(t.shape)} needs ${n} values, got ${d.length}`);
        bytes = f32ToBytes(d, t.dtype);
      } else {
        bytes = d;
        if (bytes.length !== n * DTYPE_BYTES[t.dtype])
          fail(
            path,
            `tensor "${t.name}": raw bytes length ${bytes.length} does not match ${t.dtype}${JSON.stringify(t.shape)}`,
          );
      }
      writeAll(fd, bytes);
    }
  });
}

/** Read a whole safetensors file into memory (convenience for small files and tests). */
export function readSafetensors(path: string): Map<string, Tensor> {
  const f = SafetensorsFile.open(path);
  try {
    const out = new Map<string, Tensor>();
    for (const t of f.tensors.values()) {
      if (!isFloatDtype(t.dtype))
        fail(path, `tensor "${t.name}" has dtype ${t.dtype}; only F32, F16, BF16 load as float32`);
      out.set(t.name, { dtype: t.dtype, shape: t.shape, data: f.get(t.name) });
    }
    return out;
  } finally {
    f.close();
  }
}

// ---------------------------------------------------------------- sharded index

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface ShardIndex {
  metadata: Record<string, unknown>;
  /** tensor name -> shard file name (relative to the folder) */
  weightMap: Map<string, string>;
}

/** A file name from an index must stay inside its folder. */
export function safeJoin(dir: string, rel: string, what: string): string {
  const root = resolve(dir);
  const p = resolve(root, rel);
  if (!p.startsWith(root + sep)) throw new SafetensorsError(`${what}: path "${rel}" escapes the folder ${dir}`);
  return p;
}

export function readShardIndex(path: string): ShardIndex {
  let json: unknown;
  try {
    if (!statSync(path).isFile()) throw new Error('not a regular file');
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(path, `cannot read index (${(e as Error).message})`);
  }
  const o = json as { metadata?: unknown; weight_map?: unknown };
  if (!o || typeof o !== 'object') fail(path, 'index is not a JSON object');
  if (!o.weight_map || typeof o.weight_map !== 'object' || Array.isArray(o.weight_map))
    fail(path, 'field "weight_map" is missing or not an object');
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(o.weight_map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file.length === 0) fail(path, `weight_map["${name}"] is not a file name`);
    safeJoin(dirname(path), file, `${path}: weight_map["${name}"]`);
    weightMap.set(name, file);
  }
  if (weightMap.size === 0) fail(path, 'field "weight_map" is empty');
  const metadata = o.metadata && typeof o.metadata === 'object' ? (o.metadata as Record<string, unknown>) : {};
  return { metadata, weightMap };
}

/**
 * All tensors of a folder's model weights: model.safetensors, or the shards named by model.safetensors.index.json.
 * `prefix` selects other weight files of the same scheme (e.g. "adapter_model").
 */
export class ShardedSafetensors implements TensorSource {
  readonly files: SafetensorsFile[];
  private where = new Map<string, SafetensorsFile>();
  readonly indexPath: string | null;

  constructor(files: SafetensorsFile[], indexPath: string | null, weightMap?: Map<string, string>) {
    this.files = files;
    this.indexPath = indexPath;
    for (const f of files) {
      for (const name of f.tensors.keys()) {
        const prev = this.where.get(name);
        if (prev) throw new SafetensorsError(`tensor "${name}" is in both ${prev.path} and ${f.path}`);
        if (weightMap) {
          const listed = weightMap.get(name);
          if (listed === undefined)
            throw new SafetensorsError(`${f.path}: tensor "${name}" is not listed in ${indexPath}`);
          if (resolve(dirname(indexPath!), listed) !== resolve(f.path))
            throw new SafetensorsError(
              `${indexPath}: weight_map["${name}"] says ${listed} but the tensor is in ${basename(f.path)}`,
            );
        }
        this.where.set(name, f);
      }
    }
    if (weightMap) {
      for (const [name, file] of weightMap) {
        if (!this.where.has(name))
          throw new SafetensorsError(`${indexPath}: weight_map["${name}"] names ${file}, which has no such tensor`);
      }
    }
  }

  /** Open `dir/model.safetensors.index.json` if present, else `dir/model.safetensors`. */
  static openFolder(dir: string, stem = 'model'): ShardedSafetensors {
    const index = join(dir, `${stem}.safetensors.index.json`);
    const single = join(dir, `${stem}.safetensors`);
    if (existsSync(index)) {
      const idx = readShardIndex(index);
      const shardNames = [...new Set(idx.weightMap.values())].sort();
      const files: SafetensorsFile[] = [];
      try {
        for (const s of shardNames) {
          const p = safeJoin(dir, s, index);
          if (!existsSync(p)) throw new SafetensorsError(`${index}: shard ${s} does not exist`);
          files.push(SafetensorsFile.open(p));
        }
        return new ShardedSafetensors(files, index, idx.weightMap);
      } catch (e) {
        for (const f of files) f.close();
        throw e;
      }
    }
    if (existsSync(single)) return new ShardedSafetensors([SafetensorsFile.open(single)], null);
    throw new SafetensorsError(`${dir}: no ${stem}.safetensors or ${stem}.safetensors.index.json`);
  }

  names(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  fileOf(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f)
      throw new SafetensorsError(
        `no tensor named "${name}" in ${this.indexPath ?? this.files.map((x) => x.path).join(', ')}`,
      );
    return f;
  }
  info(name: string): TensorInfo {
    return this.fileOf(name).info(name);
  }
  get(name: string): Float32Array {
    return this.fileOf(name).get(name);
  }
  getRange(name: string, start: number, count: number): Float32Array {
    return this.fileOf(name).getRange(name, start, count);
  }
  readBytes(name: string): Buffer {
    return this.fileOf(name).readBytes(name);
  }
  close(): void {
    for (const f of this.files) f.close();
  }
}

export interface WriteWeightsOptions {
  /** Largest shard in bytes; when the total is larger, shards + index are written. Default 5 GB (transformers' default). */
  maxShardBytes?: number;
  /** File stem: "model" gives model.safetensors / model-00001-of-00002.safetensors. */
  stem?: string;
  metadata?: Record<string, string>;
}

/**
 * Write tensors as one file or as shards with an index, like transformers' save_pretrained.
 * Returns the file names written (relative to dir). Tensors are assigned to shards in name order.
 */
export function writeWeightsFolder(dir: string, tensors: TensorToWrite[], opts: WriteWeightsOptions = {}): string[] {
  const max = opts.maxShardBytes ?? 5_000_000_000;
  const stem = opts.stem ?? 'model';
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const size = (t: TensorToWrite) => numel(t.shape) * DTYPE_BYTES[t.dtype];
  const total = sorted.reduce((s, t) => s + size(t), 0);
  const shards: TensorToWrite[][] = [[]];
  let cur = 0;
  for (const t of sorted) {
    const s = size(t);
    if (cur > 0 && cur + s > max) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1].push(t);
    cur += s;
  }
  const indexPath = join(dir, `${stem}.safetensors.index.json`);
  const singlePath = join(dir, `${stem}.safetensors`);
  if (shards.length === 1) {
    writeSafetensors(singlePath, shards[0], opts.metadata);
    rmSync(indexPath, { force: true }); // a stale index would shadow the single file
    return [`${stem}.safetensors`];
  }
  const n = shards.length;
  const names: string[] = [];
  const weightMap: Record<string, string> = {};
  shards.forEach((group, i) => {
    const fname = `${stem}-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    writeSafetensors(join(dir, fname), group, opts.metadata);
    for (const t of group) weightMap[t.name] = fname;
    names.push(fname);
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  writeTextAtomic(indexPath, JSON.stringify(index, null, 2) + '\n');
  rmSync(singlePath, { force: true });
  names.push(`${stem}.safetensors.index.json`);
  return names;
}
