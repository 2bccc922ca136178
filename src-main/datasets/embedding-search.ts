// Search a dataset's images by text ("red triangle on white") or by an item's image ("more like this") with a CLIP /
// SigLIP model, base or with an adapter. Image embeddings are cached per (model, adapter) in a sidecar folder
// <dataDir>/cache/embeddings/<key>/ (index.json: image hashes in order + the dimension; vectors.f32: the normalized
// vectors), keyed by a hash of the model's config.json, its weight files' sizes and mtimes, and the adapter's bytes, so
// another model or a retrained adapter gets a fresh cache. Images are content-addressed, so an image shared by items
// or datasets is embedded once. A query is one text (or a cached vector) and a dot product per image.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Database } from 'better-sqlite3';
import { imagePath, writeAtomic } from './images';
import { loadItems } from './rows';
import { loadContrastiveAdapter } from '../models/families/contrastive/adapter';
import { ContrastiveRunner, loadContrastive } from '../models/families/contrastive/model';
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

/** The image items of a dataset. */
export function searchItemsOf(db: Database, datasetId: number): SearchItem[] {
  return loadItems(db, datasetId)
    .filter((it) => it.image)
    .map((it) => ({ id: it.id, image: { hash: it.image!.hash, ext: it.image!.ext } }));
}

export function searchDataset(db: Database, dataDir: string, datasetId: number, o: SearchOptions): Promise<SearchResult> {
  return searchImages(dataDir, searchItemsOf(db, datasetId), o);
}

export async function searchImages(dataDir: string, items: readonly SearchItem[], o: SearchOptions): Promise<SearchResult> {
  if ((o.text === undefined) === (o.itemId === undefined)) throw new Error('search: give a text or an item, not both');
  if (!items.length) return { items: [], embedded: 0, cached: 0 };
  const key = embeddingCacheKey(o.model, o.adapter);
  const cacheDir = join(dataDir, 'cache', 'embeddings', key);
  const m = loadContrastive(resolve(o.model));
  try {
    const ad = o.adapter ? loadContrastiveAdapter(resolve(o.adapter), m.config) : null;
    const cache = (existsSync(cacheDir) && readCache(cacheDir)) || { dim: m.config.projectionDim, vectors: new Map<string, Float32Array>() };
    const missing = [...new Map(items.filter((it) => !cache.vectors.has(it.image!.hash)).map((it) => [it.image!.hash, it.image!])).values()];
    let runner: ContrastiveRunner | null = null;
    const getRunner = async () => (runner ??= await ContrastiveRunner.create(m, { adapter: ad }));
    try {
      if (missing.length) {
        const e = await embedAll(await getRunner(), missing.map((im) => imagePath(dataDir, im.hash, im.ext)), []);
        missing.forEach((im, i) => cache.vectors.set(im.hash, e.images[i]));
        writeCache(cacheDir, cache);
      }
      let q: Float32Array;
      if (o.text !== undefined) {
        const r = await (await getRunner()).run([imagePath(dataDir, items[0].image!.hash, items[0].image!.ext)], [o.text]);
        q = r.textEmbeds[0];
      } else {
        const it = items.find((x) => x.id === o.itemId);
        if (!it) throw new Error(`search: item ${o.itemId} is not an image item of this dataset`);
        q = cache.vectors.get(it.image!.hash)!;
      }
      const scored = items.map((it) => {
        const v = cache.vectors.get(it.image!.hash)!;
        let s = 0;
        for (let j = 0; j < v.length; j++) s += v[j] * q[j];
        return { itemId: it.id, score: s };
      });
      scored.sort((a, b) => b.score - a.score || a.itemId - b.itemId);
      return { items: scored.slice(0, o.limit ?? 50), embedded: missing.length, cached: items.length - missing.length };
    } finally {
      await (runner as ContrastiveRunner | null)?.release();
    }
  } finally {
    m.close();
  }
}
