// Compiled-graph cache on disk: a model is stored under <cacheDir>/<sha256 of the key>/model.onnx (+ model.onnx.data),
// where the key is the caller's description of (architecture, shapes, options). A hit skips building and serializing.
// Entries are written to a temp folder and renamed into place, so a half-written entry is never visible.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph } from '../graph/builder';
import { saveModel, serializeModel } from '../graph/serialize';

/** Bump when the engine's graph output changes for the same key (invalidates every cached graph). */
export const ENGINE_GRAPH_VERSION = 1;

/** JSON with sorted object keys (typed arrays and bigints made explicit), so equal keys hash equally. */
export function stableStringify(x: unknown): string {
  if (x === null || typeof x !== 'object') {
    if (typeof x === 'bigint') return `"${x}n"`;
    if (typeof x === 'number' && !Number.isFinite(x)) return `"${x}"`;
    return JSON.stringify(x) ?? 'null';
  }
  if (ArrayBuffer.isView(x)) return `{"$typed":"${x.constructor.name}","sha256":"${createHash('sha256').update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)).digest('hex')}"}`;
  if (Array.isArray(x)) return `[${x.map(stableStringify).join(',')}]`;
  const o = x as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined && typeof o[k] !== 'function')
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
    .join(',')}}`;
}

export function contentHash(key: unknown): string {
  return createHash('sha256').update(stableStringify({ v: ENGINE_GRAPH_VERSION, key })).digest('hex');
}

export interface CachedModel {
  /** Path of model.onnx (external data next to it). */
  path: string;
  hash: string;
  /** True when the entry already existed. */
  hit: boolean;
}

/** Return the cached model for `key`, building and saving it with `build()` on a miss. */
export function compileCached(cacheDir: string, key: unknown, build: () => Graph, opts: { externalThreshold?: number } = {}): CachedModel {
  const hash = contentHash(key);
  const dir = join(cacheDir, hash);
  const path = join(dir, 'model.onnx');
  if (existsSync(path)) return { path, hash, hit: true };
  mkdirSync(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `.tmp-${hash.slice(0, 16)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(tmp);
  try {
    saveModel(build(), join(tmp, 'model.onnx'), { externalThreshold: opts.externalThreshold });
    writeFileSync(join(tmp, 'key.json'), stableStringify(key));
    try {
      renameSync(tmp, dir);
    } catch (e) {
      if (!existsSync(path)) throw e; // another process won the race: use its entry
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { path, hash, hit: false };
}

/**
 * Where a session should load `graph` from: model bytes when its initializers are small (in memory, no files), else a
 * cache entry (needs cacheDir + key).
 */
export function modelSource(graph: Graph | (() => Graph), o: { cacheDir?: string; key?: unknown; maxInlineBytes?: number } = {}): string | Uint8Array {
  if (o.cacheDir && o.key !== undefined) return compileCached(o.cacheDir, o.key, typeof graph === 'function' ? graph : () => graph).path;
  const g = typeof graph === 'function' ? graph() : graph;
  let bytes = 0;
  for (const td of g.initData.values()) if (!('external' in td.data)) bytes += td.data.byteLength;
  if (bytes > (o.maxInlineBytes ?? 1 << 30)) throw new Error(`graph '${g.name}' has ${bytes} bytes of initializers: give cacheDir and key to load it from disk`);
  return serializeModel(g).model;
}
