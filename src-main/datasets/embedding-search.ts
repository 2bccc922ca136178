// Search a dataset's images by text ("red triangle on white") or by an item's image ("more like this") with a CLIP /
// SigLIP model, base or with an adapter. Image embeddings are cached per (model, adapter) in a sidecar folder
// <dataDir>/cache/embeddings/<key>/ (index.json: image hashes in order + the dimension; vectors.f32: the normalized
// vectors), keyed by a hash of the model's config.json, its weight files' sizes and mtimes, and the adapter's bytes, so
// another model or a retrained adapter gets a fresh cache. Images are content-addressed, so an image shared by items
// or datasets is embedded once. A query is one text (or a cached vector) and a dot product per image;
// the model stays loaded for a minute after a query so the next one costs only that.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Database } from 'better-sqlite3';
import { imagePath, writeAtomic } from './images';
import { loadContrastiveAdapter, type ContrastiveAdapter } from '../models/families/contrastive/adapter';
import { ContrastiveRunner, loadContrastive, type ContrastiveModel } from '../models/families/contrastive/model';
import { embedAll } from '../eval/contrastive';

export interface SearchOptions {
  model: string;
  adapter?: string | null;
  /** a text query, or */
  text?: string;
  /** an item whose image is the query */
  itemId?: number;
  limit?: number;
}

export interface SearchResult {
  items: Array<{ itemId: number; score: number }>;
  /** images embedded by this call / read from the cache */
  embedded: number;
  cached: number;
}

function fileStamp(path: string): string {
  const st = statSync(path);
  return `${path}:${st.size}:${st.mtimeMs}`;
}

/** The cache key of a model folder + adapter folder. */
export function embeddingCacheKey(model: string, adapter?: string | null): string {
  const h = createHash('sha256');
  const dir = resolve(model);
  h.update(readFileSync(join(dir, 'config.json')));
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort()) h.update(fileStamp(join(dir, f)));
  if (adapter) for (const f of ['adapter_config.json', 'adapter_model.safetensors']) h.update(readFileSync(join(resolve(adapter), f)));
  return h.digest('hex').slice(0, 32);
}

interface Cache {
  dim: number;
  vectors: Map<string, Float32Array>;
}

function readCache(dir: string): Cache | null {
  try {
    const idx = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { dim: number; hashes: string[] };
    const buf = readFileSync(join(dir, 'vectors.f32'));
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    if (all.length !== idx.dim * idx.hashes.length) return null; // a torn or foreign file: embed again
    return { dim: idx.dim, vectors: new Map(idx.hashes.map((h, i) => [h, all.subarray(i * idx.dim, (i + 1) * idx.dim)])) };
  } catch {
    return null;
  }
}

function writeCache(dir: string, c: Cache): void {
  const hashes = [...c.vectors.keys()];
  const all = new Float32Array(hashes.length * c.dim);
  hashes.forEach((h, i) => all.set(c.vectors.get(h)!, i * c.dim));
  // vectors first, then the index that describes them: a reader never sees an index longer than its vectors
  writeAtomic(join(dir, 'vectors.f32'), new Uint8Array(all.buffer));
  writeAtomic(join(dir, 'index.json'), new TextEncoder().encode(JSON.stringify({ dim: c.dim, hashes })));
}

/** An image item as the search needs it (no database access: this runs in the backend's worker). */
export interface SearchItem {
  id: number;
  image: { hash: string; ext: string };
}

/** The image items of a dataset, in the grid's order (ids and image keys only: no labels to assemble). */
export function searchItemsOf(db: Database, datasetId: number): SearchItem[] {
  const rows = db
    .prepare('SELECT id, image_hash, image_ext FROM items WHERE dataset_id = ? AND image_hash IS NOT NULL ORDER BY position, id')
    .all(datasetId) as Array<{ id: number; image_hash: string; image_ext: string | null }>;
  return rows.map((r) => ({ id: r.id, image: { hash: r.image_hash, ext: r.image_ext ?? 'bin' } }));
}

export function searchDataset(db: Database, dataDir: string, datasetId: number, o: SearchOptions, hooks: SearchHooks = {}): Promise<SearchResult> {
  return searchImages(dataDir, searchItemsOf(db, datasetId), o, hooks);
}

export interface SearchHooks {
  /** images embedded so far of those missing from the cache */
  onProgress?(done: number, total: number): void;
  signal?: AbortSignal;
}

/** Images embedded per model call; the cache is written every CACHE_EVERY new images so a cancel keeps most. */
const CHUNK = 32;
const CACHE_EVERY = 1024;
/** A model stays loaded this long after its last query, so the next query is only a text embedding and a scan. */
const KEEP_WARM_MS = 60_000;

interface Warm {
  key: string;
  model: ContrastiveModel;
  adapter: ContrastiveAdapter | null;
  runner: ContrastiveRunner | null;
  cache: Cache;
  timer: ReturnType<typeof setTimeout> | null;
  busy: Promise<unknown>;
}
let warm: Warm | null = null;

async function dropWarm(): Promise<void> {
  const w = warm;
  warm = null;
  if (!w) return;
  if (w.timer) clearTimeout(w.timer);
  await w.busy.catch(() => {});
  await w.runner?.release();
  w.model.close();
}

/** Release the model kept loaded between queries (tests, shutdown). */
export function releaseSearchModel(): Promise<void> {
  return dropWarm();
}

async function warmFor(dataDir: string, o: SearchOptions): Promise<Warm> {
  const key = `${resolve(dataDir)}\0${embeddingCacheKey(o.model, o.adapter)}`;
  if (warm?.key === key) return warm;
  await dropWarm();
  const cacheDir = cacheDirOf(dataDir, o);
  const model = loadContrastive(resolve(o.model));
  try {
    const adapter = o.adapter ? loadContrastiveAdapter(resolve(o.adapter), model.config) : null;
    const cache = (existsSync(cacheDir) && readCache(cacheDir)) || { dim: model.config.projectionDim, vectors: new Map<string, Float32Array>() };
    warm = { key, model, adapter, runner: null, cache, timer: null, busy: Promise.resolve() };
    return warm;
  } catch (e) {
    model.close();
    throw e;
  }
}

function cacheDirOf(dataDir: string, o: SearchOptions): string {
  return join(dataDir, 'cache', 'embeddings', embeddingCacheKey(o.model, o.adapter));
}

export async function searchImages(dataDir: string, items: readonly SearchItem[], o: SearchOptions, hooks: SearchHooks = {}): Promise<SearchResult> {
  if ((o.text === undefined) === (o.itemId === undefined)) throw new Error('search: give a text or an item, not both');
  if (!items.length) return { items: [], embedded: 0, cached: 0 };
  const w = await warmFor(dataDir, o);
  if (w.timer) clearTimeout(w.timer);
  // one query at a time per loaded model: a second one waits and then finds the first one's vectors cached
  const run = w.busy.catch(() => {}).then(() => query(w, dataDir, items, o, hooks));
  w.busy = run;
  try {
    return await run;
  } finally {
    if (warm === w) {
      w.timer = setTimeout(() => void dropWarm(), KEEP_WARM_MS);
      w.timer.unref?.();
    }
  }
}

async function query(w: Warm, dataDir: string, items: readonly SearchItem[], o: SearchOptions, hooks: SearchHooks): Promise<SearchResult> {
  const cache = w.cache;
  const cacheDir = cacheDirOf(dataDir, o);
  const getRunner = async () => (w.runner ??= await ContrastiveRunner.create(w.model, { adapter: w.adapter }));
  const missing = [...new Map(items.filter((it) => !cache.vectors.has(it.image.hash)).map((it) => [it.image.hash, it.image])).values()];
  if (o.itemId !== undefined && !items.some((x) => x.id === o.itemId)) throw new Error(`search: item ${o.itemId} is not an image item of this dataset`);
  if (missing.length) {
    const runner = await getRunner();
    hooks.onProgress?.(0, missing.length);
    let sinceWrite = 0;
    try {
      for (let i = 0; i < missing.length; i += CHUNK) {
        if (hooks.signal?.aborted) throw new Error('search: cancelled');
        const part = missing.slice(i, i + CHUNK);
        const e = await embedAll(runner, part.map((im) => imagePath(dataDir, im.hash, im.ext)), [], CHUNK);
        part.forEach((im, j) => cache.vectors.set(im.hash, e.images[j]));
        sinceWrite += part.length;
        if (sinceWrite >= CACHE_EVERY) {
          writeCache(cacheDir, cache);
          sinceWrite = 0;
        }
        hooks.onProgress?.(Math.min(i + CHUNK, missing.length), missing.length);
      }
    } finally {
      if (sinceWrite) writeCache(cacheDir, cache);
    }
  }
  let q: Float32Array;
  if (o.text !== undefined) {
    const r = await (await getRunner()).run([imagePath(dataDir, items[0].image.hash, items[0].image.ext)], [o.text]);
    q = r.textEmbeds[0];
  } else {
    const it = items.find((x) => x.id === o.itemId)!;
    q = cache.vectors.get(it.image.hash)!;
  }
  return { ...rankByVector(items, (h) => cache.vectors.get(h)!, q, o.limit ?? 50), embedded: missing.length, cached: items.length - missing.length };
}

/** The items ranked by the dot product of their (normalized) vectors with q, best first; ties by item id. */
export function rankByVector(items: readonly SearchItem[], vec: (hash: string) => Float32Array, q: Float32Array, limit: number): { items: Array<{ itemId: number; score: number }> } {
  const n = items.length;
  const scores = new Float32Array(n);
  const d = q.length;
  for (let i = 0; i < n; i++) {
    const v = vec(items[i].image.hash);
    let s = 0;
    for (let j = 0; j < d; j++) s += v[j] * q[j];
    scores[i] = s;
  }
  const order = Array.from({ length: n }, (_, i) => i);
  const better = (a: number, b: number) => scores[b] - scores[a] || items[a].id - items[b].id;
  // a partial selection would do for small limits, but sorting 10,000 indices is about a millisecond
  order.sort(better);
  return { items: order.slice(0, Math.min(limit, n)).map((i) => ({ itemId: items[i].id, score: scores[i] })) };
}
