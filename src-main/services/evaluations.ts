// evaluations.*: a model (optionally with an adapter) on a dataset split, run in a worker thread of its own in the
// background (the backend's training runtime tracks them, so shutdown waits and close aborts), with per-item
// predictions stored; list, get, predictions, base-vs-tuned comparison, cancel.
import { ApiError } from '../contract/errors';
import type { Evaluation, PredictionData } from '../contract/evaluations';
import { handlers, type ServiceContext } from './context';
import { requireDataset } from './datasets';
import { requireNotAudioLlm, resolveAdapter, resolveModel } from './model-refs';
import type { Database } from '../storage/database';
import { graphCacheDirOf } from '../storage/data-dir';
import { listCheckpointRows } from '../jobs/store';
import { evalItems, itemsOfSplit, snapshotDataset, subsample } from '../training/data';
import { compareResults, type EvalRunResult } from '../eval/evaluate';
import {
  countPredictions,
  createEvaluation,
  decodeReferences,
  failEvaluation,
  getEvaluation,
  listEvaluations,
  listPredictions,
  loadEvaluationResult,
  storeEvaluationResult,
  type EvaluationRow,
} from '../storage/evaluations-queries';

export function toEvaluation(db: Database, r: EvaluationRow): Evaluation {
  const config = safeJson(r.config_json);
  const count = countPredictions(db, r.id);
  return {
    id: r.id,
    runId: r.run_id,
    checkpointId: r.checkpoint_id,
    step: typeof config.step === 'number' ? config.step : null,
    modelId: r.model_id,
    datasetId: r.dataset_id,
    split: r.split,
    task: typeof config.task === 'string' ? config.task : null,
    config,
    status: r.status,
    metrics: safeJson(r.metrics_json) as Record<string, number | null>,
    predictionCount: count,
    error: r.error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

function safeJson(s: string): Record<string, unknown> {
  try {
    const v = JSON.parse(s) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function requireEvaluation(db: Database, id: number, field = 'id'): EvaluationRow {
  const row = getEvaluation(db, id);
  if (!row) throw new ApiError('not_found', `evaluation ${id} does not exist`, field);
  return row;
}

function loadCompleted(db: Database, id: number, field: string): EvalRunResult {
  const row = requireEvaluation(db, id, field);
  if (row.status !== 'completed')
    throw new ApiError('conflict', `evaluation ${id} is ${row.status}, not completed`, field);
  return loadEvaluationResult(db, id);
}

/** The adapter folder of an adapter reference: a folder, a run's final adapter, or a run checkpoint's adapter. */

export interface EvaluationRequest {
  model: { id: number } | { path: string };
  adapter?: { path: string } | { runId: number; step?: number };
  data: { datasetId: number; split: 'train' | 'val' | 'test' };
  maxItems?: number;
  maxNewTokens: number;
  task?: 'vqa' | 'caption';
  quantize?: 'none' | 'int8' | 'int4';
}

/**
 * Check an evaluation request, create its row (status running) and run it in the background. `done` settles when the
 * predictions are stored (or the evaluation failed / was cancelled); events evaluations.progress / .status follow it.
 */
export function startEvaluation(
  ctx: ServiceContext,
  p: EvaluationRequest,
): { id: number; done: Promise<EvaluationRow> } {
  const model = resolveModel(ctx, p.model);
  requireNotAudioLlm(model.dir, 'evaluation', 'id' in p.model ? 'model.id' : 'model.path');
  const adapterDir = p.adapter ? resolveAdapter(ctx, p.adapter) : null;
  requireDataset(ctx.db, p.data.datasetId, 'data.datasetId');
  const snapshot = snapshotDataset(ctx.db, ctx.dataDir, p.data.datasetId);
  const ev = evalItems(itemsOfSplit(snapshot, p.data.split), { task: p.task });
  if (ev.items.length === 0)
    throw new ApiError(
      'invalid_request',
      `dataset ${p.data.datasetId} has no items with a reference answer in the ${p.data.split} split${snapshot.autoSplit ? ' (it has no split; a 90/10 train/val split was assumed)' : ''}`,
      'data.split',
    );
  const items = subsample(ev.items, p.maxItems);
  const runId = p.adapter && 'runId' in p.adapter ? p.adapter.runId : null;
  let checkpointId: number | null = null;
  if (p.adapter && 'runId' in p.adapter && p.adapter.step !== undefined)
    checkpointId =
      listCheckpointRows(ctx.db, p.adapter.runId).find((c) => c.step === (p.adapter as { step: number }).step)?.id ??
      null;
  const id = createEvaluation(ctx.db, {
    runId,
    checkpointId,
    modelId: model.modelId,
    datasetId: p.data.datasetId,
    split: p.data.split,
    config: {
      pid: process.pid,
      model: model.dir,
      adapter: adapterDir,
      maxItems: p.maxItems ?? null,
      maxNewTokens: p.maxNewTokens,
      quantize: p.quantize ?? 'none',
      items: items.length,
      autoSplit: snapshot.autoSplit,
      ...(p.adapter && 'runId' in p.adapter && p.adapter.step !== undefined ? { step: p.adapter.step } : {}),
    },
  });
  const rt = ctx.training;
  const abort = new AbortController();
  const emit = (payload: Parameters<typeof ctx.emit<'evaluations.status'>>[1]) => {
    try {
      ctx.emit('evaluations.status', payload);
    } catch {
      /* the backend may be closing */
    }
  };
  // the model loads and generates in a worker thread of its own (freed when the evaluation ends)
  const host = ctx.work.newHost();
  // The row is read while the evaluation still owns the database: after `finally` (the worker's shutdown) the backend
  // may already be closed, and `done` must not touch it then.
  let row: EvaluationRow | undefined;
  const readRow = () => {
    try {
      row = getEvaluation(ctx.db, id);
    } catch {
      /* the database closed under us */
    }
  };
  const work = (async () => {
    try {
      let last = 0;
      const result = await host.evaluate(
        {
          modelDir: model.dir,
          adapterDir,
          task: ev.task,
          items,
          maxNewTokens: p.maxNewTokens,
          cacheDir: graphCacheDirOf(ctx.dataDir),
          quantize: p.quantize,
        },
        {
          signal: abort.signal,
          onProgress: (done, total) => {
            const now = Date.now();
            if (done === total || now - last > 250) {
              last = now;
              try {
                ctx.emit('evaluations.progress', { id, done, total });
              } catch {
                /* closing */
              }
            }
          },
        },
      );
      storeEvaluationResult(ctx.db, id, result);
      readRow();
      emit({ id, status: 'completed', metrics: result.metrics, error: null });
    } catch (e) {
      const cancelled = abort.signal.aborted;
      const message = cancelled ? 'cancelled' : (e as Error).message;
      try {
        failEvaluation(ctx.db, id, message, cancelled ? 'cancelled' : 'failed');
      } catch {
        /* the database closed under us */
      }
      readRow();
      emit({ id, status: cancelled ? 'cancelled' : 'failed', error: message });
    } finally {
      rt.evals.delete(id);
      await ctx.work.release(host).catch(() => {});
    }
  })();
  rt.evals.set(id, { abort, done: work });
  return {
    id,
    done: work.then(() => {
      if (!row) throw new Error(`evaluation ${id}: the database closed before its result could be read`);
      return row;
    }),
  };
}

export const evaluationsHandlers = handlers({
  'evaluations.start': async (p, ctx, req) => {
    const { id, done } = startEvaluation(ctx, p);
    if (p.wait) {
      // the caller going away cancels what it waits for
      const cancel = () => ctx.training.evals.get(id)?.abort.abort();
      req?.signal.addEventListener('abort', cancel, { once: true });
      if (req?.signal.aborted) cancel();
      try {
        await done;
      } finally {
        req?.signal.removeEventListener('abort', cancel);
      }
    }
    return toEvaluation(ctx.db, requireEvaluation(ctx.db, id));
  },

  'evaluations.cancel': async (p, ctx) => {
    requireEvaluation(ctx.db, p.id);
    const e = ctx.training.evals.get(p.id);
    if (e) {
      e.abort.abort();
      await e.done;
    }
    return toEvaluation(ctx.db, requireEvaluation(ctx.db, p.id));
  },

  'evaluations.list': (p, ctx) => {
    const rows = listEvaluations(ctx.db, { runId: p.runId, datasetId: p.datasetId });
    return { evaluations: rows.map((r) => toEvaluation(ctx.db, r)) };
  },

  'evaluations.get': (p, ctx) => toEvaluation(ctx.db, requireEvaluation(ctx.db, p.id)),

  'evaluations.predictions': (p, ctx) => {
    requireEvaluation(ctx.db, p.id);
    const total = countPredictions(ctx.db, p.id);
    const rows = listPredictions(ctx.db, p.id, p.limit, p.offset);
    const predictions: PredictionData[] = rows.map((r) => {
      const { key, ...scores } = safeJson(r.scores_json) as { key?: string | number } & Record<string, number | null>;
      return {
        id: r.id,
        itemId: r.item_id,
        key: key ?? null,
        prompt: r.prompt,
        output: r.output,
        references: decodeReferences(r.reference),
        scores,
      };
    });
    return { predictions, total };
  },

  'evaluations.compare': (p, ctx) => {
    const base = loadCompleted(ctx.db, p.baseId, 'baseId');
    const tuned = loadCompleted(ctx.db, p.tunedId, 'tunedId');
    try {
      const c = compareResults(base, tuned);
      return {
        task: c.task,
        metrics: c.metrics,
        items: c.items.map(({ key, prompt, references, base: b, tuned: t, change }) => ({
          key,
          prompt,
          references,
          base: b,
          tuned: t,
          change,
        })),
      };
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, 'tunedId');
    }
  },
});
