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
import { imageItemTuples } from '../storage/items-queries';
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
  for (const f of readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort())
    h.update(fileStamp(join(dir, f)));
  if (adapter)
    for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
      h.update(readFileSync(join(resolve(adapter), f)));
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
    return {
      dim: idx.dim,
      vectors: new Map(idx.hashes.map((h, i) => [h, all.subarray(i * idx.dim, (i + 1) * idx.dim)])),
    };
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
  const rows = imageItemTuples(db, datasetId);
  return rows.map((r) => ({ id: r[0], image: { hash: r[1], ext: r[2] ?? 'bin' } }));
}

/**
 * Item lists kept in the worker between queries, by a key the caller derives from the database's write counters: a
 * repeat query sends only the key, so it costs neither reading 10,000 rows from SQLite nor passing them to the worker.
 * A few lists (datasets) are kept; any write to the database changes the key, and the caller then sends the list again.
 */
const KEEP_LISTS = 4;
const keptLists = new Map<string, readonly SearchItem[]>();

/** Keep an item list under a key (the latest KEEP_LISTS lists); returns it. */
export function keepItems(key: string, items: readonly SearchItem[]): readonly SearchItem[] {
  keptLists.delete(key);
  keptLists.set(key, items);
  while (keptLists.size > KEEP_LISTS) keptLists.delete(keptLists.keys().next().value!);
  return items;
}

/** The item list kept under a key, or null when it was never sent or has been dropped. */
export function keptItems(key: string): readonly SearchItem[] | null {
  const items = keptLists.get(key);
  if (!items) return null;
  keptLists.delete(key);
  keptLists.set(key, items);
  return items;
}

export function searchDataset(
  db: Database,
  dataDir: string,
  datasetId: number,
  o: SearchOptions,
  hooks: SearchHooks = {},
): Promise<SearchResult> {
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
  index?: ItemIndex;
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

async function warmFor(dataDir: string, o: EmbedOptions): Promise<Warm> {
  const key = `${resolve(dataDir)}\0${embeddingCacheKey(o.model, o.adapter)}`;
  if (warm?.key === key) return warm;
  await dropWarm();
  const cacheDir = cacheDirOf(dataDir, o);
  const model = loadContrastive(resolve(o.model));
  try {
    const adapter = o.adapter ? loadContrastiveAdapter(resolve(o.adapter), model.config) : null;
    const cache = (existsSync(cacheDir) && readCache(cacheDir)) || {
      dim: model.config.projectionDim,
      vectors: new Map<string, Float32Array>(),
    };
    warm = { key, model, adapter, runner: null, cache, timer: null, busy: Promise.resolve() };
    return warm;
  } catch (e) {
    model.close();
    throw e;
  }
}

function cacheDirOf(dataDir: string, o: EmbedOptions): string {
  return join(dataDir, 'cache', 'embeddings', embeddingCacheKey(o.model, o.adapter));
}

export async function searchImages(
  dataDir: string,
  items: readonly SearchItem[],
  o: SearchOptions,
  hooks: SearchHooks = {},
): Promise<SearchResult> {
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

/** Embed the items' images the cache lacks (written to the cache as it goes); returns how many were embedded. */
async function ensureVectors(
  w: Warm,
  dataDir: string,
  items: readonly SearchItem[],
  o: SearchOptions | EmbedOptions,
  hooks: SearchHooks,
): Promise<number> {
  const cache = w.cache;
  const cacheDir = cacheDirOf(dataDir, o);
  const missing = [
    ...new Map(items.filter((it) => !cache.vectors.has(it.image.hash)).map((it) => [it.image.hash, it.image])).values(),
  ];
  if (!missing.length) return 0;
  const runner = (w.runner ??= await ContrastiveRunner.create(w.model, { adapter: w.adapter }));
  hooks.onProgress?.(0, missing.length);
  let sinceWrite = 0;
  try {
    for (let i = 0; i < missing.length; i += CHUNK) {
      if (hooks.signal?.aborted) throw new Error('search: cancelled');
      const part = missing.slice(i, i + CHUNK);
      const e = await embedAll(
        runner,
        part.map((im) => imagePath(dataDir, im.hash, im.ext)),
        [],
        CHUNK,
      );
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
  return missing.length;
}

async function query(
  w: Warm,
  dataDir: string,
  items: readonly SearchItem[],
  o: SearchOptions,
  hooks: SearchHooks,
): Promise<SearchResult> {
  const cache = w.cache;
  if (o.itemId !== undefined && !items.some((x) => x.id === o.itemId))
    throw new Error(`search: item ${o.itemId} is not an image item of this dataset`);
  const embedded = await ensureVectors(w, dataDir, items, o, hooks);
  let q: Float32Array;
  if (o.text !== undefined) {
    const runner = (w.runner ??= await ContrastiveRunner.create(w.model, { adapter: w.adapter }));
    q = (await runner.embedTexts([o.text])).embeds[0];
  } else {
    const it = items.find((x) => x.id === o.itemId)!;
    q = cache.vectors.get(it.image.hash)!;
  }
  return { items: rankIndex(indexOf(w, items), q, o.limit ?? 50), embedded, cached: items.length - embedded };
}

export interface EmbedOptions {
  model: string;
  adapter?: string | null;
}

/** An item whose image is near another item's (different file, cosine at or above the threshold). */
export interface NearDuplicateImage {
  itemId: number;
  /** the most similar other item, and the cosine of their embeddings */
  otherItemId: number;
  similarity: number;
  /** other items at or above the threshold */
  count: number;
}

/**
 * Items whose images embed within `threshold` cosine of another item's image. Identical files (same hash) are left
 * to the exact-duplicate rule. Every pair of distinct images is compared (n^2/2 dot products; 10,000 images of a
 * 512-dim model are about 25 GFLOP, seconds in this worker).
 */
export async function nearDuplicateImages(
  dataDir: string,
  items: readonly SearchItem[],
  o: EmbedOptions,
  threshold: number,
  hooks: SearchHooks = {},
): Promise<{ items: NearDuplicateImage[]; embedded: number }> {
  if (!(threshold > 0 && threshold <= 1))
    throw new Error(`near-duplicate threshold must be in (0, 1] (got ${threshold})`);
  if (items.length < 2) return { items: [], embedded: 0 };
  const w = await warmFor(dataDir, o);
  if (w.timer) clearTimeout(w.timer);
  const run = w.busy
    .catch(() => {})
    .then(async () => {
      const embedded = await ensureVectors(w, dataDir, items, o, hooks);
      const hashes = [...new Set(items.map((it) => it.image.hash))];
      const d = w.cache.dim;
      const M = new Float32Array(hashes.length * d);
      hashes.forEach((h, i) => M.set(w.cache.vectors.get(h)!, i * d));
      // per distinct image: its best neighbour and how many are over the threshold
      const best = new Int32Array(hashes.length).fill(-1);
      const bestSim = new Float32Array(hashes.length).fill(-Infinity);
      const over = new Int32Array(hashes.length);
      for (let a = 0; a < hashes.length; a++) {
        const oa = a * d;
        for (let b = a + 1; b < hashes.length; b++) {
          const ob = b * d;
          let s = 0;
          for (let j = 0; j < d; j++) s += M[oa + j] * M[ob + j];
          if (s >= threshold) {
            over[a]++;
            over[b]++;
            if (s > bestSim[a]) ((bestSim[a] = s), (best[a] = b));
            if (s > bestSim[b]) ((bestSim[b] = s), (best[b] = a));
          }
        }
      }
      const firstItem = new Map<string, number>();
      for (const it of items) if (!firstItem.has(it.image.hash)) firstItem.set(it.image.hash, it.id);
      const index = new Map(hashes.map((h, i) => [h, i]));
      const out: NearDuplicateImage[] = [];
      for (const it of items) {
        const i = index.get(it.image.hash)!;
        if (best[i] < 0) continue;
        out.push({
          itemId: it.id,
          otherItemId: firstItem.get(hashes[best[i]])!,
          similarity: bestSim[i],
          count: over[i],
        });
      }
      return { items: out, embedded };
    });
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

/** A dataset's items as one matrix: row k holds item k's vector (rebuilt when the items or the cache change). */
interface ItemIndex {
  sig: string;
  ids: Float64Array;
  matrix: Float32Array;
  dim: number;
}

/** Identifies an item list cheaply: its length, and a hash over its ids and the first characters of its image hashes. */
function itemsSignature(items: readonly SearchItem[], cacheSize: number): string {
  let h = 0x811c9dc5;
  for (const it of items) {
    h = Math.imul(h ^ it.id, 0x01000193);
    h = Math.imul(
      h ^ it.image.hash.charCodeAt(0) ^ (it.image.hash.charCodeAt(1) << 8) ^ (it.image.hash.charCodeAt(2) << 16),
      0x01000193,
    );
  }
  return `${items.length}:${cacheSize}:${h >>> 0}`;
}

function indexOf(w: Warm, items: readonly SearchItem[]): ItemIndex {
  const sig = itemsSignature(items, w.cache.vectors.size);
  if (w.index?.sig === sig) return w.index;
  const d = w.cache.dim;
  const matrix = new Float32Array(items.length * d);
  const ids = new Float64Array(items.length);
  items.forEach((it, k) => {
    ids[k] = it.id;
    matrix.set(w.cache.vectors.get(it.image.hash)!, k * d);
  });
  w.index = { sig, ids, matrix, dim: d };
  return w.index;
}

/** The best `limit` rows of an index against q (dot products), best first; ties by item id. */
function rankIndex(ix: ItemIndex, q: Float32Array, limit: number): Array<{ itemId: number; score: number }> {
  const n = ix.ids.length;
  const d = ix.dim;
  const M = ix.matrix;
  const scores = new Float32Array(n);
  for (let i = 0, o = 0; i < n; i++, o += d) {
    let s = 0;
    for (let j = 0; j < d; j++) s += M[o + j] * q[j];
    scores[i] = s;
  }
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => scores[b] - scores[a] || ix.ids[a] - ix.ids[b]);
  const k = Math.min(limit, n);
  const out = new Array<{ itemId: number; score: number }>(k);
  for (let i = 0; i < k; i++) out[i] = { itemId: ix.ids[order[i]], score: scores[order[i]] };
  return out;
}

/** The items ranked by the dot product of their (normalized) vectors with q, best first; ties by item id. */
export function rankByVector(
  items: readonly SearchItem[],
  vec: (hash: string) => Float32Array,
  q: Float32Array,
  limit: number,
): { items: Array<{ itemId: number; score: number }> } {
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
