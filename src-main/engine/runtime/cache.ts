// Compiled-graph cache on disk: a model is stored under <cacheDir>/<sha256 of the key>/model.onnx (+ model.onnx.data),
// where the key is the caller's description of (architecture, shapes, options). A hit skips building and serializing.
// Entries are written to a temp folder and renamed into place, so a half-written entry is never visible.
//
// Eviction (size-capped LRU): every hit and insert touches <entry>/last-used; after each insert, least-recently-used
// entries are removed until the cache is under its cap (graphCacheCap: LENSLAB_GRAPH_CACHE_MAX, else the smaller of
// 8 GiB and a quarter of (free disk + the cache)). Never evicted: entries this thread holds (compileCached's hold until
// release(); a held entry's last-used is re-touched every minute, so other threads and processes see it as in use) and
// entries any process used less than `recentMs` (default 5 min) ago. An entry is renamed out of the cache before it is
// deleted; a rename or delete that fails (Windows: a file memory-mapped by ORT) leaves it in place for a later pass.

import { nameDiskFull } from '../../util/disk-full';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { Graph } from '../graph/builder';
import { DTYPE_BYTES } from '../graph/dtype';
import { saveModel, serializeModel } from '../graph/serialize';
import { collectGarbage } from '../../util/gc';

/** Bump when the engine's graph output changes for the same key (invalidates every cached graph). */
// 2: the LM head is a Gemm(transB) on the checkpoint-layout table (a tied embedding stored once, decoder/llama.ts
//    lmHead); the training program's cache key (training/vlm-trainer.ts) has no version of its own.
// 3: the SiLU gate x * Sigmoid(x) has one folded gradient rule (ops/elementwise.ts), two passes fewer a layer.
// 4: a quantized weight's gradient unpacks with a per-axis DequantizeLinear (ops/quantized.ts), not a blocked one;
//    MatMulNBits in training graphs computes in float32 (accuracy level 0, models/quantize.ts).
// 5: training and score graphs compute the LM head for label positions only (models/program.ts labelPositions).
export const ENGINE_GRAPH_VERSION = 5;

/** JSON with sorted object keys (typed arrays and bigints made explicit), so equal keys hash equally. */
export function stableStringify(x: unknown): string {
  if (x === null || typeof x !== 'object') {
    if (typeof x === 'bigint') return `"${x}n"`;
    if (typeof x === 'number' && !Number.isFinite(x)) return `"${x}"`;
    return JSON.stringify(x) ?? 'null';
  }
  if (ArrayBuffer.isView(x))
    return `{"$typed":"${x.constructor.name}","sha256":"${createHash('sha256')
      .update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength))
      .digest('hex')}"}`;
  if (Array.isArray(x)) return `[${x.map(stableStringify).join(',')}]`;
  const o = x as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined && typeof o[k] !== 'function')
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
    .join(',')}}`;
}

export function contentHash(key: unknown): string {
  return createHash('sha256')
    .update(stableStringify({ v: ENGINE_GRAPH_VERSION, key }))
    .digest('hex');
}

// ---------------------------------------------------------------- size cap

/** The environment variable that overrides the cache's cap (`4G`, `512M`, `8GiB`, bytes, or `unlimited`). */
export const GRAPH_CACHE_MAX_ENV = 'LENSLAB_GRAPH_CACHE_MAX';
/** Default cap: the smaller of this and DEFAULT_FREE_FRACTION of (free disk + the cache). */
export const DEFAULT_GRAPH_CACHE_MAX = 8 * 1024 ** 3;
export const DEFAULT_FREE_FRACTION = 0.25;
/** Entries used less than this long ago (by any process) are not evicted. */
export const DEFAULT_RECENT_MS = 5 * 60_000;

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * A size like `4G`, `4GB`, `4GiB`, `1.5g`, `512M`, `1048576` (bytes) in bytes (units are powers of 1024);
 * `unlimited` / `off` / `none` give Infinity. Throws naming `what` on anything else.
 */
export function parseByteSize(text: string, what = GRAPH_CACHE_MAX_ENV): number {
  const s = text.trim().toLowerCase();
  if (s === 'unlimited' || s === 'off' || s === 'none') return Infinity;
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|b)?$/.exec(s);
  if (!m) throw new Error(`${what}: '${text}' is not a size (examples: 4G, 512M, 8GiB, 1073741824, unlimited)`);
  return Math.floor(Number(m[1]) * UNITS[m[2] ?? '']);
}

/** The cap set by LENSLAB_GRAPH_CACHE_MAX, or undefined when unset (throws when it is not a size). */
export function graphCacheMaxFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env[GRAPH_CACHE_MAX_ENV];
  return v === undefined || v.trim() === '' ? undefined : parseByteSize(v);
}

/** The cap for a cache that now holds `cacheBytes`: LENSLAB_GRAPH_CACHE_MAX, else min(8 GiB, 25% of (free disk + cache)). */
export function graphCacheCap(cacheDir: string, cacheBytes: number, env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = graphCacheMaxFromEnv(env);
  if (fromEnv !== undefined) return fromEnv;
  let free = Infinity;
  try {
    const s = statfsSync(cacheDir);
    free = Number(s.bavail) * Number(s.bsize);
  } catch {
    /* no statfs here: the fixed cap alone */
  }
  return Math.min(DEFAULT_GRAPH_CACHE_MAX, Math.floor(DEFAULT_FREE_FRACTION * (free + cacheBytes)));
}

// ---------------------------------------------------------------- in-use entries

const USED_FILE = 'last-used';
const ENTRY_NAME = /^[0-9a-f]{64}$/;
const HEARTBEAT_MS = 60_000;

/** Entry folders this thread holds open, with their hold counts. */
const holds = new Map<string, number>();
let heartbeat: NodeJS.Timeout | null = null;

/** Mark an entry as used now (its last-used file's mtime). False when the entry folder is gone. */
function touch(entryDir: string): boolean {
  const f = join(entryDir, USED_FILE);
  const t = new Date();
  try {
    utimesSync(f, t, t);
    return true;
  } catch {
    try {
      writeFileSync(f, '');
      return true;
    } catch {
      return false;
    }
  }
}

function hold(entryDir: string): () => void {
  holds.set(entryDir, (holds.get(entryDir) ?? 0) + 1);
  if (!heartbeat) {
    heartbeat = setInterval(() => {
      for (const d of holds.keys()) touch(d);
    }, HEARTBEAT_MS);
    heartbeat.unref();
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const n = (holds.get(entryDir) ?? 1) - 1;
    if (n > 0) holds.set(entryDir, n);
    else holds.delete(entryDir);
    if (holds.size === 0 && heartbeat) {
      clearInterval(heartbeat);
      heartbeat = null;
    }
  };
}

/** Whether this thread holds the entry `hash` of `cacheDir` (compileCached without release() yet). */
export function graphCacheEntryHeld(cacheDir: string, hash: string): boolean {
  return holds.has(resolve(cacheDir, hash));
}

// ---------------------------------------------------------------- eviction

export interface CacheEntryInfo {
  hash: string;
  bytes: number;
  /** Last use (ms since the epoch): its last-used file, else the folder's mtime. */
  lastUsed: number;
}

function lastUsedOf(entryDir: string): number {
  try {
    return statSync(join(entryDir, USED_FILE)).mtimeMs;
  } catch {
    return statSync(entryDir).mtimeMs;
  }
}

function bytesOf(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? bytesOf(p) : lstatSync(p).size;
  }
  return n;
}

/** The cache's entries (complete ones; temp folders of writes in progress are not listed). */
export function listGraphCache(cacheDir: string): CacheEntryInfo[] {
  let names: string[];
  try {
    names = readdirSync(cacheDir);
  } catch {
    return [];
  }
  const out: CacheEntryInfo[] = [];
  for (const hash of names) {
    if (!ENTRY_NAME.test(hash)) continue;
    const dir = join(cacheDir, hash);
    try {
      if (!statSync(dir).isDirectory()) continue;
      out.push({ hash, bytes: bytesOf(dir), lastUsed: lastUsedOf(dir) });
    } catch {
      /* removed meanwhile */
    }
  }
  return out;
}

export interface EvictOptions {
  /** Cap in bytes (default graphCacheCap()). */
  maxBytes?: number;
  /** Entries used less than this long ago are kept (default 5 min). */
  recentMs?: number;
}

export interface EvictionReport {
  /** Bytes of the entries before / after. */
  bytesBefore: number;
  bytesAfter: number;
  maxBytes: number;
  /** Hashes removed, least recently used first. */
  evicted: string[];
  /** Hashes that would have gone but were kept: held here, used recently, or their removal failed. */
  kept: string[];
}

const STALE_TMP_MS = 24 * 3600_000;

/** Remove least-recently-used entries of `cacheDir` until it is under its cap (see the file comment for what stays). */
export function evictGraphCache(cacheDir: string, o: EvictOptions = {}): EvictionReport {
  // leftovers: entries renamed for deletion whose delete failed earlier, and temp folders of writes that died
  let names: string[] = [];
  try {
    names = readdirSync(cacheDir);
  } catch {
    /* no cache yet */
  }
  const now = Date.now();
  for (const n of names) {
    const p = join(cacheDir, n);
    try {
      if (n.startsWith('.evict-') || (n.startsWith('.tmp-') && now - statSync(p).mtimeMs > STALE_TMP_MS))
        rmSync(p, { recursive: true, force: true });
    } catch {
      /* still mapped somewhere (Windows): a later pass */
    }
  }
  const entries = listGraphCache(cacheDir).sort((a, b) => a.lastUsed - b.lastUsed);
  const bytesBefore = entries.reduce((s, e) => s + e.bytes, 0);
  const maxBytes = o.maxBytes ?? graphCacheCap(cacheDir, bytesBefore);
  const recentMs = o.recentMs ?? DEFAULT_RECENT_MS;
  let total = bytesBefore;
  const evicted: string[] = [];
  const kept: string[] = [];
  for (const e of entries) {
    if (total <= maxBytes) break;
    const dir = join(cacheDir, e.hash);
    if (holds.has(resolve(dir))) {
      kept.push(e.hash);
      continue;
    }
    let last: number;
    try {
      last = lastUsedOf(dir); // again, right before removing: another process may have used it since the listing
    } catch {
      total -= e.bytes; // gone meanwhile (another process evicted it)
      continue;
    }
    if (Date.now() - last < recentMs) {
      kept.push(e.hash);
      continue;
    }
    const trash = join(
      cacheDir,
      `.evict-${e.hash.slice(0, 16)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    );
    try {
      renameSync(dir, trash); // out of the cache at once: no reader finds a half-deleted entry
    } catch {
      kept.push(e.hash); // Windows: open or mapped files block the rename
      continue;
    }
    total -= e.bytes;
    evicted.push(e.hash);
    try {
      rmSync(trash, { recursive: true, force: true });
    } catch {
      /* the next pass retries */
    }
  }
  return { bytesBefore, bytesAfter: total, maxBytes, evicted, kept };
}

// ---------------------------------------------------------------- compile

export interface CachedModel {
  /** Path of model.onnx (external data next to it). */
  path: string;
  hash: string;
  /** True when the entry already existed. */
  hit: boolean;
  /**
   * The entry is held (never evicted) from compileCached until this is called: call it once the session that loaded
   * the model is closed. Idempotent.
   */
  release(): void;
}

export interface CompileCachedOptions extends EvictOptions {
  externalThreshold?: number;
}

/** Return the cached model for `key`, building and saving it with `build()` on a miss (then evicting down to the cap). */
export function compileCached(
  cacheDir: string,
  key: unknown,
  build: () => Graph,
  opts: CompileCachedOptions = {},
): CachedModel {
  const hash = contentHash(key);
  const dir = join(cacheDir, hash);
  const path = join(dir, 'model.onnx');
  const release = hold(resolve(dir));
  try {
    // touched before the second look: an evictor that checked its last use before the touch can still have taken it
    if (existsSync(path) && touch(dir) && existsSync(path)) return { path, hash, hit: true, release };
    const maxBytes = opts.maxBytes ?? graphCacheMaxFromEnv(); // a bad LENSLAB_GRAPH_CACHE_MAX fails before the build
    mkdirSync(cacheDir, { recursive: true });
    const tmp = join(cacheDir, `.tmp-${hash.slice(0, 16)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(tmp);
    try {
      saveModel(build(), join(tmp, 'model.onnx'), { externalThreshold: opts.externalThreshold });
      // the graph and every weight it read are garbage now; collect them before a session loads the saved file
      collectGarbage();
      writeFileSync(join(tmp, 'key.json'), stableStringify(key));
      writeFileSync(join(tmp, USED_FILE), '');
      try {
        renameSync(tmp, dir);
      } catch (e) {
        if (!existsSync(path)) throw e; // another process won the race: use its entry
        rmSync(tmp, { recursive: true, force: true });
        touch(dir);
      }
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw nameDiskFull(e, 'cannot write the compiled-graph cache entry', dir);
    }
    try {
      evictGraphCache(cacheDir, { maxBytes, recentMs: opts.recentMs });
    } catch {
      /* eviction is housekeeping: never fail a compile over it */
    }
    return { path, hash, hit: false, release };
  } catch (e) {
    release();
    throw nameDiskFull(e, 'cannot write the compiled-graph cache', cacheDir);
  }
}

/**
 * Where a session should load `graph` from: model bytes when its initializers are small (in memory, no files), else a
 * cache entry (needs cacheDir + key). A cache entry given out here stays held (not evicted) for the rest of the
 * thread's life; use compileCached and its release() for a shorter hold.
 */
export function modelSource(
  graph: Graph | (() => Graph),
  o: { cacheDir?: string; key?: unknown; maxInlineBytes?: number } = {},
): string | Uint8Array {
  if (o.cacheDir && o.key !== undefined)
    return compileCached(o.cacheDir, o.key, typeof graph === 'function' ? graph : () => graph).path;
  const g = typeof graph === 'function' ? graph() : graph;
  let bytes = 0;
  for (const td of g.initData.values())
    if (!('external' in td.data)) bytes += td.dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[td.dtype];
  if (bytes > (o.maxInlineBytes ?? 1 << 30))
    throw new Error(`graph '${g.name}' has ${bytes} bytes of initializers: give cacheDir and key to load it from disk`);
  return serializeModel(g).model;
}
