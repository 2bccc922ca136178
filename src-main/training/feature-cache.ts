// Image features computed once and reused: when nothing in a run's image path trains up to some layer
// (models/program.ts featureCacheLayer), each image's features at that layer are the same in every epoch and every
// evaluation, so the vision tower runs once per image, not once per step.
//
// Two levels: a bounded in-memory LRU in front of a disk cache under the data directory (<data>/cache/features,
// LENSLAB_FEATURE_CACHE moves it), shared by runs on the same model and images. An entry's key is the sha256 of
// (format version, the model's identity: config.json and the bytes of every tensor the features read, the
// processor's config files, the feature layer, the image file's bytes); a change to any of them is a new key, so a
// stale entry is never read, only evicted in time. Each file carries a header (magic, format version, its full key,
// dims, the sha256 of its data) that is checked on every read: a file written by another version or scheme, cut
// short or damaged is deleted and rebuilt, never misread. Writes are atomic (temp file + rename).
//
// Size: LENSLAB_FEATURE_CACHE_MAX (4G, 512M, unlimited), else 2 GiB; least recently used files (mtime, touched on
// every hit) go first. A write that fails (a full disk, a read-only folder) warns once and the cache goes on in
// memory only: features are recomputed when they fall out of memory, never lost or half-written.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseByteSize } from '../engine/runtime/cache';
import { writeFileAtomic } from '../util/atomic-write';
import { isDiskFull } from '../util/disk-full';

/** Bump when the file layout or what a key covers changes: older files are then rebuilt, not read. */
export const FEATURE_CACHE_VERSION = 1;
const MAGIC = Buffer.from('LLFEAT\0\n', 'latin1');
export { FEATURE_CACHE_ENV } from '../storage/data-dir';
import { FEATURE_CACHE_ENV } from '../storage/data-dir';
export const FEATURE_CACHE_MAX_ENV = 'LENSLAB_FEATURE_CACHE_MAX';
export const DEFAULT_FEATURE_CACHE_MAX = 2 * 1024 ** 3;
const ENTRY = /^[0-9a-f]{64}\.feat$/;

/** The disk cache's folder: LENSLAB_FEATURE_CACHE (the backend sets it to <data dir>/cache/features), else the temp folder. */
export function featureCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const v = env[FEATURE_CACHE_ENV];
  return v && v.trim() ? v : join(tmpdir(), 'lenslab-feature-cache');
}

export function featureCacheMax(env: NodeJS.ProcessEnv = process.env): number {
  const v = env[FEATURE_CACHE_MAX_ENV];
  return v === undefined || v.trim() === '' ? DEFAULT_FEATURE_CACHE_MAX : parseByteSize(v, FEATURE_CACHE_MAX_ENV);
}

/** Features of one image: [frames, tokens, dim] float32. */
export interface ImageFeatures {
  dims: [number, number, number];
  data: Float32Array;
}

export interface FeatureCacheOptions {
  /** Disk folder, or null for memory only. */
  dir: string | null;
  /** What every key covers besides the image: model identity, processor, layer (hashed with the format version). */
  scope: string;
  /** Disk budget in bytes (default featureCacheMax()). */
  maxBytes?: number;
  /** In-memory budget in bytes (default 256 MiB). */
  memoryBytes?: number;
  warn: (message: string) => void;
  /** Tests: the file writer (default an atomic write). */
  writeFile?: (path: string, bytes: Buffer[]) => void;
}

export interface FeatureCacheStats {
  memoryHits: number;
  diskHits: number;
  misses: number;
  /** Files that failed their header or checksum check and were rebuilt. */
  rebuilt: number;
  evicted: number;
  writeFailures: number;
}

function sha256(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export class FeatureCache {
  private mem = new Map<string, ImageFeatures>();
  private memBytes = 0;
  /** Disk entries by file name: bytes and last use (ms), loaded once from the folder. */
  private disk: Map<string, { bytes: number; used: number }> | null = null;
  private diskBytes = 0;
  private diskOk: boolean;
  private readonly scopeHash: string;
  private readonly fileHashes = new Map<string, { size: number; mtimeMs: number; hash: string }>();
  readonly stats: FeatureCacheStats = {
    memoryHits: 0,
    diskHits: 0,
    misses: 0,
    rebuilt: 0,
    evicted: 0,
    writeFailures: 0,
  };

  constructor(private readonly o: FeatureCacheOptions) {
    this.scopeHash = sha256(`lenslab-features/${FEATURE_CACHE_VERSION}/${o.scope}`);
    this.diskOk = o.dir !== null;
  }

  private get maxBytes(): number {
    return this.o.maxBytes ?? featureCacheMax();
  }

  /** The key of an image file (its bytes, hashed once per size + mtime in this process). */
  keyOf(imagePath: string): string {
    const st = statSync(imagePath);
    let h = this.fileHashes.get(imagePath);
    if (!h || h.size !== st.size || h.mtimeMs !== st.mtimeMs) {
      h = { size: st.size, mtimeMs: st.mtimeMs, hash: sha256(readFileSync(imagePath)) };
      this.fileHashes.set(imagePath, h);
    }
    return sha256(`${this.scopeHash}/${h.hash}`);
  }

  /** Features for `key` from memory or disk, or null (a damaged or foreign file is deleted on the way). */
  lookup(key: string): ImageFeatures | null {
    const hit = this.mem.get(key);
    if (hit) {
      this.mem.delete(key);
      this.mem.set(key, hit);
      this.stats.memoryHits++;
      this.touch(key);
      return hit;
    }
    const f = this.readDisk(key);
    if (f) {
      this.stats.diskHits++;
      this.remember(key, f);
      return f;
    }
    this.stats.misses++;
    return null;
  }

  /** Store freshly computed features (memory, and disk while it takes writes). */
  store(key: string, f: ImageFeatures): void {
    this.remember(key, f);
    this.writeDisk(key, f);
  }

  private remember(key: string, f: ImageFeatures): void {
    const budget = this.o.memoryBytes ?? 256 * 1024 * 1024;
    if (this.mem.has(key)) return;
    this.mem.set(key, f);
    this.memBytes += f.data.byteLength;
    for (const [k, v] of this.mem) {
      if (this.memBytes <= budget || this.mem.size <= 1) break;
      this.mem.delete(k);
      this.memBytes -= v.data.byteLength;
    }
  }

  private fileOf(key: string): string {
    return join(this.o.dir!, `${key}.feat`);
  }

  private index(): Map<string, { bytes: number; used: number }> {
    if (this.disk) return this.disk;
    this.disk = new Map();
    this.diskBytes = 0;
    try {
      for (const name of readdirSync(this.o.dir!)) {
        if (!ENTRY.test(name)) continue;
        try {
          const st = statSync(join(this.o.dir!, name));
          this.disk.set(name, { bytes: st.size, used: st.mtimeMs });
          this.diskBytes += st.size;
        } catch {
          /* removed meanwhile */
        }
      }
    } catch {
      /* no folder yet */
    }
    return this.disk;
  }

  private touch(key: string): void {
    if (!this.o.dir) return;
    const e = this.index().get(`${key}.feat`);
    if (!e) return;
    // sub-millisecond order within this process; other processes see the file's mtime
    e.used = performance.timeOrigin + performance.now();
    const now = new Date(e.used);
    try {
      utimesSync(this.fileOf(key), now, now);
    } catch {
      /* evicted by another process: a later lookup misses */
    }
  }

  private drop(name: string): void {
    const e = this.index().get(name);
    if (e) {
      this.diskBytes -= e.bytes;
      this.index().delete(name);
    }
    rmSync(join(this.o.dir!, name), { force: true });
  }

  private readDisk(key: string): ImageFeatures | null {
    if (!this.o.dir) return null;
    let b: Buffer;
    try {
      b = readFileSync(this.fileOf(key));
    } catch {
      return null;
    }
    const f = parseEntry(b, key);
    if (!f) {
      this.stats.rebuilt++;
      try {
        this.drop(`${key}.feat`);
      } catch {
        /* a read-only folder: the entry is rebuilt in memory each run */
      }
      return null;
    }
    this.touch(key);
    return f;
  }

  private writeDisk(key: string, f: ImageFeatures): void {
    if (!this.o.dir || !this.diskOk) return;
    const name = `${key}.feat`;
    const bytes = encodeEntry(key, f);
    const size = bytes.reduce((a, x) => a + x.length, 0);
    if (size > this.maxBytes) return;
    try {
      mkdirSync(this.o.dir, { recursive: true });
      this.evictFor(size);
      (this.o.writeFile ?? atomicWrite)(this.fileOf(key), bytes);
      const idx = this.index();
      const old = idx.get(name);
      if (old) this.diskBytes -= old.bytes;
      idx.set(name, { bytes: size, used: performance.timeOrigin + performance.now() });
      this.diskBytes += size;
    } catch (e) {
      this.stats.writeFailures++;
      this.diskOk = false;
      const why = isDiskFull(e) ? 'the disk is full' : (e as Error).message;
      this.o.warn(
        `image feature cache: cannot write to ${this.o.dir} (${why}); features stay in memory only and are recomputed when they fall out of it`,
      );
    }
  }

  /** Remove least recently used files until `incoming` more bytes fit under the budget. */
  private evictFor(incoming: number): void {
    const idx = this.index();
    if (this.diskBytes + incoming <= this.maxBytes) return;
    const byAge = [...idx].sort((a, b) => a[1].used - b[1].used);
    for (const [name] of byAge) {
      if (this.diskBytes + incoming <= this.maxBytes) break;
      this.drop(name);
      this.stats.evicted++;
    }
  }

  /** Bytes the disk cache holds now (as this process knows it). */
  get diskSize(): number {
    return this.o.dir ? (this.index(), this.diskBytes) : 0;
  }
}

function atomicWrite(path: string, bytes: Buffer[]): void {
  writeFileAtomic(
    path,
    (fd) => {
      for (const b of bytes) writeSync(fd, b);
    },
    { fsync: false },
  );
}

/** MAGIC, u32 version, u32 header length, header JSON {key, dims, sha256}, float32 data (little-endian). */
export function encodeEntry(key: string, f: ImageFeatures): Buffer[] {
  const data = Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength);
  const header = Buffer.from(JSON.stringify({ key, dims: f.dims, sha256: sha256(data) }), 'utf8');
  const fixed = Buffer.alloc(8);
  fixed.writeUInt32LE(FEATURE_CACHE_VERSION, 0);
  fixed.writeUInt32LE(header.length, 4);
  return [MAGIC, fixed, header, data];
}

/** The features in `b` when it is a whole entry of this version for exactly `key`; null otherwise. */
export function parseEntry(b: Buffer, key: string): ImageFeatures | null {
  if (b.length < 16 || !b.subarray(0, 8).equals(MAGIC)) return null;
  if (b.readUInt32LE(8) !== FEATURE_CACHE_VERSION) return null;
  const hlen = b.readUInt32LE(12);
  if (hlen > 4096 || 16 + hlen > b.length) return null;
  let h: { key?: unknown; dims?: unknown; sha256?: unknown };
  try {
    h = JSON.parse(b.subarray(16, 16 + hlen).toString('utf8'));
  } catch {
    return null;
  }
  if (h.key !== key || typeof h.sha256 !== 'string') return null;
  const dims = h.dims;
  if (!Array.isArray(dims) || dims.length !== 3 || !dims.every((d) => Number.isInteger(d) && d > 0)) return null;
  const data = b.subarray(16 + hlen);
  if (data.length !== dims[0] * dims[1] * dims[2] * 4 || sha256(data) !== h.sha256) return null;
  const out = new Float32Array(data.length / 4);
  new Uint8Array(out.buffer).set(data);
  return { dims: dims as [number, number, number], data: out };
}
