// Dataset contents behind the contract (contract/datasets-io.ts): import/export, items and labels, tags,
// splits, undo/redo, lint and the tokenized preview. The work is done in src-main/datasets/.
import { searchItemsOf } from '../datasets/embedding-search';
import { resolveAdapter } from './model-refs';
import { isContrastiveFolder } from '../models/families/contrastive/folder';
import { isAbsolute, join, resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import type { Item } from '../contract/datasets-io';
import { handlers, type ServiceContext } from './context';
import { getModelPath, getModelRow } from '../storage/models-queries';
import { annotationOwner, datasetExists, datasetNameExists } from '../storage/datasets-queries';
import { databaseWriteStamp, isImageItemOf } from '../storage/items-queries';
import { exportDataset } from '../datasets/export';
import { historyState } from '../datasets/history';
import { importDataset } from '../datasets/import';
import { canImportInWorker, importInWorker } from '../datasets/import-worker';
import { lintDataset, listLintResults, type LengthMeasurer, type LintOptions } from '../datasets/lint';
import * as ops from '../datasets/ops';
import { getFullItem, itemProvenance, listItems, tagCounts } from '../datasets/query';
import { PreviewSetupError } from './work-worker';
import { resolveInside } from '../datasets/paths';
import { splitDataset } from '../datasets/split';
import type { FullItem } from '../datasets/rows';
import { ImportError } from '../datasets/types';
import { collectImageGarbage } from '../datasets/images';
import { mediaPath } from '../datasets/media-store';
import { extractVideoFrames, findFfmpeg, NO_FFMPEG } from '../media/video';
import { MediaError } from '../media/errors';
import { existsSync } from 'node:fs';

function toItem(it: FullItem, datasetId: number): Item {
  return { ...it, datasetId } as Item;
}

function requireDatasetId(ctx: ServiceContext, id: number, field = 'datasetId'): void {
  if (!datasetExists(ctx.db, id)) throw new ApiError('not_found', `dataset ${id} does not exist`, field);
}

/** Run a datasets-area function, mapping its errors to ApiErrors that keep the field. */
async function guard<T>(fn: () => T | Promise<T>, field?: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (err instanceof ops.DatasetOpError) throw new ApiError(err.code, err.message, err.field);
    if (err instanceof ImportError) throw new ApiError('invalid_request', err.message, field);
    throw err;
  }
}

function changed(ctx: ServiceContext, datasetId: number, reason: string): void {
  ctx.emit('items.changed', { datasetId, reason });
  ctx.emit('datasets.changed', { kind: 'updated', id: datasetId });
}

function modelDir(ctx: ServiceContext, modelId: number): string {
  const row = getModelPath(ctx.db, modelId);
  if (!row) throw new ApiError('not_found', `model ${modelId} does not exist`, 'modelId');
  return isAbsolute(row.path) ? row.path : join(ctx.dataDir, row.path);
}

const MAX_LISTED = 1000;

/** A backend's imports in progress by resolved source path, for datasets.cancelImport; aborted when it closes. */
export class ImportRuntime {
  readonly running = new Map<string, Set<AbortController>>();

  abort(): void {
    for (const set of this.running.values()) for (const a of set) a.abort();
  }
}

export const datasetIoHandlers = handlers({
  'datasets.import': async (p, ctx, req) => {
    if (p.dataset !== undefined && p.datasetId !== undefined)
      throw new ApiError('invalid_request', 'give dataset (a name) or datasetId, not both', 'datasetId');
    if (p.datasetId !== undefined) requireDatasetId(ctx, p.datasetId);
    const existed = p.dataset !== undefined && datasetNameExists(ctx.db, p.dataset);
    let last = 0;
    // untrusted files are read in a worker with memory and time limits (datasets/import-worker.ts)
    const run = canImportInWorker(ctx.db) ? importInWorker : importDataset;
    const key = resolve(p.path);
    const abort = new AbortController();
    const runningImports = ctx.imports.running;
    const running = runningImports.get(key) ?? new Set<AbortController>();
    running.add(abort);
    runningImports.set(key, running);
    const rep = await guard(
      () =>
        run(ctx.db, ctx.dataDir, resolve(p.path), {
          // datasets.cancelImport, or the client that asked going away
          signal: req ? AbortSignal.any([abort.signal, req.signal]) : abort.signal,
          dataset: p.datasetId ?? p.dataset,
          format: p.format,
          strict: p.strict,
          imageRoot: p.imageRoot,
          textColumn: p.textColumn,
          imageColumn: p.imageColumn,
          groupByImage: p.groupByImage,
          onProgress: (done, total) => {
            const now = Date.now();
            if (done === total || now - last > 250) {
              last = now;
              ctx.emit('datasets.importProgress', { path: p.path, done, total });
            }
          },
        }),
      'path',
    ).finally(() => {
      running.delete(abort);
      if (running.size === 0) runningImports.delete(key);
    });
    ctx.emit('datasets.changed', {
      kind: existed || p.datasetId !== undefined ? 'updated' : 'created',
      id: rep.datasetId,
    });
    ctx.emit('items.changed', { datasetId: rep.datasetId, reason: 'import' });
    return {
      ...rep,
      skipped: rep.skipped.slice(0, MAX_LISTED),
      skippedCount: rep.skipped.length,
      warnings: rep.warnings.slice(0, MAX_LISTED),
      warningCount: rep.warnings.length,
      alreadyPresent: rep.alreadyPresent.slice(0, MAX_LISTED),
      alreadyPresentCount: rep.alreadyPresent.length,
    };
  },
  'datasets.cancelImport': (p, ctx) => {
    const running = ctx.imports.running.get(resolve(p.path));
    for (const a of running ?? []) a.abort();
    return { cancelled: !!running?.size };
  },
  'datasets.export': (p, ctx) => {
    requireDatasetId(ctx, p.datasetId);
    try {
      return exportDataset(ctx.db, ctx.dataDir, p.datasetId, resolve(p.dir), {
        format: p.format,
        split: p.split,
        itemIds: p.itemIds,
        captionPrompt: p.captionPrompt,
        lenslabFields: p.lenslabFields,
        overwrite: p.overwrite,
      });
    } catch (err) {
      if (/not empty|will not overwrite/.test((err as Error).message))
        throw new ApiError('conflict', (err as Error).message, 'dir');
      throw err;
    }
  },
  'items.list': (p, ctx) => {
    requireDatasetId(ctx, p.datasetId);
    const { items, total } = listItems(ctx.db, p.datasetId, p);
    return { items: items.map((it) => toItem(it, p.datasetId)), total };
  },
  'items.get': (p, ctx) => {
    const it = getFullItem(ctx.db, p.id);
    if (!it) throw new ApiError('not_found', `item ${p.id} does not exist`, 'id');
    return { ...toItem(it, it.datasetId), provenance: itemProvenance(ctx.db, p.id) };
  },
  'items.videoFrames': async (p, ctx) => {
    const it = getFullItem(ctx.db, p.id);
    if (!it) throw new ApiError('not_found', `item ${p.id} does not exist`, 'id');
    if (it.media?.kind !== 'video') throw new ApiError('invalid_request', `item ${p.id} is not a video`, 'id');
    const path = mediaPath(ctx.dataDir, it.media.hash, it.media.ext);
    if (!existsSync(path))
      throw new ApiError('not_found', `the video of item ${p.id} is missing from the data folder (${path})`, 'id');
    if (!findFfmpeg()) throw new ApiError('unavailable', NO_FFMPEG, 'id');
    // ffmpeg runs as a child process with the media limits, so the backend's thread only waits
    const v = await extractVideoFrames(path, p.frames ?? 8, { file: `item ${p.id}`, height: p.height ?? 72 }).catch(
      (e: unknown) => {
        throw e instanceof MediaError ? new ApiError('invalid_request', e.message, 'id') : e;
      },
    );
    return {
      frames: v.png.map((png, k) => ({ index: v.indices[k], time: v.times[k], png: png.toString('base64') })),
      total: v.frames,
      fps: v.fps,
    };
  },
  'items.add': async (p, ctx) => {
    requireDatasetId(ctx, p.datasetId);
    const items = p.items.map((it, i) => {
      let image;
      if (it.imagePath !== undefined) {
        const abs = resolve(it.imagePath);
        const r = resolveInside([abs], abs, abs);
        if (!r.ok) throw new ApiError('invalid_request', `${it.imagePath}: ${r.reason}`, `items.${i}.imagePath`);
        image = { path: r.path, original: it.imagePath };
      }
      return { image, annotations: it.annotations, tags: it.tags, split: it.split };
    });
    const ids = await guard(() => ops.addItems(ctx.db, ctx.dataDir, p.datasetId, items));
    changed(ctx, p.datasetId, 'add');
    return { ids, history: historyState(ctx.db, p.datasetId) };
  },
  'items.delete': async (p, ctx) => {
    const n = await guard(() => ops.deleteItems(ctx.db, p.datasetId, p.itemIds));
    changed(ctx, p.datasetId, 'delete');
    return { changed: n, history: historyState(ctx.db, p.datasetId) };
  },
  'items.setAnnotations': async (p, ctx) => {
    const ids = await guard(() => ops.setAnnotations(ctx.db, p.datasetId, p.itemId, p.annotations));
    changed(ctx, p.datasetId, 'edit');
    return { ids, history: historyState(ctx.db, p.datasetId) };
  },
  'annotations.add': async (p, ctx) => {
    const id = await guard(() => ops.addAnnotation(ctx.db, p.datasetId, p.itemId, p.annotation, p.position));
    changed(ctx, p.datasetId, 'edit');
    return { id, history: historyState(ctx.db, p.datasetId) };
  },
  'annotations.update': async (p, ctx) => {
    const row = annotationOwner(ctx.db, p.id);
    if (!row) throw new ApiError('not_found', `annotation ${p.id} does not exist`, 'id');
    if (row.kind !== p.annotation.kind)
      throw new ApiError(
        'invalid_request',
        `annotation ${p.id} is a ${row.kind}, not a ${p.annotation.kind}`,
        'annotation.kind',
      );
    const did = await guard(() => ops.updateAnnotation(ctx.db, p.id, p.annotation.data));
    if (did) changed(ctx, row.datasetId, 'edit');
    return { changed: did ? 1 : 0, history: historyState(ctx.db, row.datasetId) };
  },
  'annotations.delete': async (p, ctx) => {
    const row = annotationOwner(ctx.db, p.id);
    if (!row) throw new ApiError('not_found', `annotation ${p.id} does not exist`, 'id');
    await guard(() => ops.deleteAnnotation(ctx.db, p.id));
    changed(ctx, row.datasetId, 'edit');
    return { changed: 1, history: historyState(ctx.db, row.datasetId) };
  },
  'items.tag': async (p, ctx) => {
    const n = await guard(() => ops.addTags(ctx.db, p.datasetId, p.itemIds, p.tags));
    changed(ctx, p.datasetId, 'tag');
    return { changed: n, history: historyState(ctx.db, p.datasetId) };
  },
  'items.untag': async (p, ctx) => {
    const n = await guard(() => ops.removeTags(ctx.db, p.datasetId, p.itemIds, p.tags));
    changed(ctx, p.datasetId, 'tag');
    return { changed: n, history: historyState(ctx.db, p.datasetId) };
  },
  'items.setSplit': async (p, ctx) => {
    const n = await guard(() => ops.setSplit(ctx.db, p.datasetId, p.itemIds, p.split));
    changed(ctx, p.datasetId, 'split');
    return { changed: n, history: historyState(ctx.db, p.datasetId) };
  },
  'items.replaceText': async (p, ctx) => {
    const n = await guard(() =>
      ops.replaceText(ctx.db, p.datasetId, p.itemIds, p.find, p.replace, {
        regex: p.regex,
        caseSensitive: p.caseSensitive,
        scope: p.scope,
      }),
    );
    changed(ctx, p.datasetId, 'edit');
    return { changed: n, history: historyState(ctx.db, p.datasetId) };
  },
  'datasets.search': async (p, ctx) => {
    requireDatasetId(ctx, p.datasetId);
    if ((p.text === undefined) === (p.itemId === undefined))
      throw new ApiError(
        'invalid_request',
        'give a text or an itemId, not both',
        p.text === undefined ? 'text' : 'itemId',
      );
    const dir = modelDir(ctx, p.modelId);
    if (!isContrastiveFolder(dir))
      throw new ApiError(
        'invalid_request',
        `model ${p.modelId} is not a CLIP or SigLIP model (image search needs one)`,
        'modelId',
      );
    if (p.itemId !== undefined && !isImageItemOf(ctx.db, p.itemId, p.datasetId))
      throw new ApiError('not_found', `item ${p.itemId} is not an image item of dataset ${p.datasetId}`, 'itemId');
    // The worker keeps the item list under this key, which moves with every write to the database, so no edit,
    // import or reorder can leave a stale list in use.
    const itemsKey = `${p.datasetId}:${databaseWriteStamp(ctx.db)}`;
    const adapter = p.adapter ? resolveAdapter(ctx, p.adapter) : null;
    let last = 0;
    const onProgress = (done: number, total: number) => {
      const now = Date.now();
      if (done === 0 || done === total || now - last > 200) {
        last = now;
        ctx.emit('datasets.searchProgress', { datasetId: p.datasetId, modelId: p.modelId, done, total });
      }
    };
    try {
      const options = { model: dir, adapter, text: p.text, itemId: p.itemId, limit: p.limit };
      let r = await ctx.work.shared().embeddingSearch({ dataDir: ctx.dataDir, itemsKey, options }, { onProgress });
      if (r.needItems)
        r = await ctx.work
          .shared()
          .embeddingSearch(
            { dataDir: ctx.dataDir, itemsKey, items: searchItemsOf(ctx.db, p.datasetId), options },
            { onProgress },
          );
      if (r.needItems) throw new Error('datasets.search: the worker did not take the item list');
      const items = new Array<{ itemId: number; score: number }>(r.ids.length);
      for (let i = 0; i < items.length; i++) items[i] = { itemId: r.ids[i], score: r.scores[i] };
      return { items, embedded: r.embedded, cached: r.cached };
    } catch (e) {
      // a model or adapter folder that does not load: its errors name the file
      const msg = (e as Error).message ?? String(e);
      if (adapter && msg.includes(adapter)) throw new ApiError('invalid_request', msg, 'adapter');
      if (msg.startsWith(dir)) throw new ApiError('invalid_request', msg, 'modelId');
      throw e;
    }
  },
  'datasets.tags': (p, ctx) => {
    requireDatasetId(ctx, p.datasetId);
    return { tags: tagCounts(ctx.db, p.datasetId) };
  },
  'datasets.split': async (p, ctx) => {
    const r = await guard(() =>
      splitDataset(ctx.db, p.datasetId, {
        seed: p.seed,
        train: p.train,
        val: p.val,
        test: p.test,
        stratifyBy: p.stratifyBy,
      }),
    );
    changed(ctx, p.datasetId, 'split');
    return { ...r, history: historyState(ctx.db, p.datasetId) };
  },
  'datasets.undo': async (p, ctx) => {
    const label = await guard(() => ops.undo(ctx.db, p.datasetId));
    if (label !== undefined) changed(ctx, p.datasetId, 'undo');
    return { label: label ?? null, history: historyState(ctx.db, p.datasetId) };
  },
  'datasets.redo': async (p, ctx) => {
    const label = await guard(() => ops.redo(ctx.db, p.datasetId));
    if (label !== undefined) changed(ctx, p.datasetId, 'redo');
    return { label: label ?? null, history: historyState(ctx.db, p.datasetId) };
  },
  'datasets.history': (p, ctx) => {
    requireDatasetId(ctx, p.datasetId);
    return historyState(ctx.db, p.datasetId);
  },
  // the items are read here; the tokenizer load and each item's tokenizing (too_long) run in the backend's worker
  'datasets.lint': async (p, ctx) => {
    requireDatasetId(ctx, p.datasetId);
    let measure: LengthMeasurer | undefined;
    const modelId = p.modelId;
    if (modelId !== undefined) {
      const dir = modelDir(ctx, modelId);
      measure = async (items, conversation) => {
        try {
          return await ctx.work.shared().lintLengths({ modelDir: dir, items, conversation });
        } catch (err) {
          if (err instanceof PreviewSetupError)
            throw new ApiError(
              'unavailable',
              `model ${modelId} cannot be used for tokenization: ${err.message}`,
              'modelId',
            );
          throw err;
        }
      };
    } else if (p.contextLength !== undefined) {
      throw new ApiError(
        'invalid_request',
        'contextLength needs a modelId (its tokenizer counts the tokens)',
        'contextLength',
      );
    }
    let nearImages: LintOptions['nearImages'];
    if (p.imageModelId !== undefined) {
      const dir = modelDir(ctx, p.imageModelId);
      if (!isContrastiveFolder(dir))
        throw new ApiError(
          'invalid_request',
          `model ${p.imageModelId} is not a CLIP or SigLIP model (near-duplicate images need one)`,
          'imageModelId',
        );
      const adapter = p.imageAdapter ? resolveAdapter(ctx, p.imageAdapter) : null;
      const threshold = p.nearDuplicateImageThreshold ?? 0.95;
      const name = getModelRow(ctx.db, p.imageModelId)?.name ?? `model ${p.imageModelId}`;
      nearImages = {
        threshold,
        model: adapter ? `${name} + adapter` : name,
        find: async (items) =>
          (
            await ctx.work
              .shared()
              .nearDuplicateImages({ dataDir: ctx.dataDir, items, options: { model: dir, adapter }, threshold })
          ).items,
      };
    } else if (p.imageAdapter !== undefined || p.nearDuplicateImageThreshold !== undefined) {
      throw new ApiError(
        'invalid_request',
        'near-duplicate images need an imageModelId (a CLIP or SigLIP model)',
        p.imageAdapter !== undefined ? 'imageAdapter' : 'nearDuplicateImageThreshold',
      );
    }
    const r = await lintDataset(ctx.db, ctx.dataDir, p.datasetId, {
      deep: p.deep,
      measure,
      contextLength: p.contextLength,
      nearImages,
    });
    return {
      datasetId: r.datasetId,
      items: r.items,
      counts: r.counts as Record<string, number>,
      itemsWithErrors: r.itemsWithErrors,
      findings: r.findings,
    };
  },
  'datasets.lintResults': (p, ctx) => {
    requireDatasetId(ctx, p.datasetId);
    return { findings: listLintResults(ctx.db, p.datasetId, { rule: p.rule, severity: p.severity, itemId: p.itemId }) };
  },
  // the tokenizer load (first use of a model) and the tokenizing run in the backend's worker thread (services/work.ts)
  'items.preview': async (p, ctx) => {
    const it = getFullItem(ctx.db, p.itemId);
    if (!it) throw new ApiError('not_found', `item ${p.itemId} does not exist`, 'itemId');
    const dir = modelDir(ctx, p.modelId);
    try {
      return await ctx.work.shared().preview({
        modelDir: dir,
        item: {
          annotations: it.annotations,
          hasImage: !!it.image,
          imageSize: it.image ? { width: it.image.width, height: it.image.height } : null,
        },
        opts: { captionPrompt: p.captionPrompt },
      });
    } catch (err) {
      if (err instanceof PreviewSetupError)
        throw new ApiError(
          'unavailable',
          `model ${p.modelId} cannot be used for tokenization: ${err.message}`,
          'modelId',
        );
      throw new ApiError('invalid_request', `item ${p.itemId}: ${(err as Error).message}`, 'itemId');
    }
  },
  'datasets.cleanImages': (p, ctx) =>
    collectImageGarbage(ctx.db, ctx.dataDir, {
      minAgeMs: p.minAgeMinutes === undefined ? undefined : p.minAgeMinutes * 60_000,
    }),
});
