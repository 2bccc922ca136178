// Training runs and evaluations on the backend's training runtime (training-runtime.ts: one JobRunner, each run in
// its own process, its events forwarded to clients and stored in SQLite by the runner). Every check that can fail (hyperparameters, data against the model, memory) runs before a run row is
// created or a process starts, and is answered as invalid_request naming the field.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import type { Checkpoint, Evaluation, MemoryEstimateData, PredictionData } from '../contract/training';
import { handlers, type ServiceContext } from './context';
import { requireRun, toRun } from './runs';
import { requireDataset } from './datasets';
import type { Database } from '../storage/database';
import { GRAPH_CACHE_ENV, graphCacheDirOf } from '../storage/data-dir';
import { getRun, insertRun, deleteRun } from '../storage/runs-queries';
import { JobRunner, type JobRunnerOptions, type RunnerEvent } from '../jobs/runner';
import { listCheckpointRows, loadJobSpec } from '../jobs/store';
import { finalDir } from '../jobs/driver';
import { pidAlive } from '../jobs/process-file';
import type { JobSpec } from '../jobs/protocol';
import { HparamsError } from '../training/hparams';
import { SampleError } from '../training/batching';
import { memoryRefusal, type MemoryEstimate } from '../training/memory';
import { evalItems, itemsOfSplit, snapshotDataset, subsample, writeSnapshot } from '../training/data';
import { MemoryRefusalError, VlmCheckError, type VlmCheck } from '../training/vlm-config';
import { compareResults, type EvalRunResult } from '../eval/evaluate';
import { createEvaluation, decodeReferences, failEvaluation, getEvaluation, loadEvaluationResult, storeEvaluationResult, type EvaluationRow } from '../eval/store';

// ------------------------------------------------------------------------------------------------ helpers

/** The folder of a model reference: a registered model's path (relative to the data dir) or a folder on disk. */
export function resolveModel(ctx: ServiceContext, ref: { id: number } | { path: string }): { dir: string; modelId: number | null } {
  let dir: string;
  let modelId: number | null = null;
  if ('id' in ref) {
    const row = ctx.db.prepare('SELECT id, path FROM models WHERE id = ?').get(ref.id) as { id: number; path: string } | undefined;
    if (!row) throw new ApiError('not_found', `model ${ref.id} does not exist`, 'model.id');
    dir = isAbsolute(row.path) ? row.path : join(ctx.dataDir, row.path);
    modelId = row.id;
  } else dir = resolve(ref.path);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ApiError('invalid_request', `model folder ${dir} does not exist`, 'id' in ref ? 'model.id' : 'model.path');
  return { dir, modelId };
}

/** Training check failures as API errors naming the field. */
export function toTrainingError(e: unknown, fallbackField = 'hparams'): unknown {
  if (e instanceof ApiError) return e;
  if (e instanceof HparamsError) {
    const f = e.issues.find((i) => i.field)?.field;
    return new ApiError('invalid_request', e.message, f ? `hparams.${f}` : 'hparams');
  }
  if (e instanceof SampleError) return new ApiError('invalid_request', `the data does not fit the model: ${e.message}`, 'data');
  if (e instanceof VlmCheckError) return new ApiError('invalid_request', e.message, e.field);
  if (e instanceof MemoryRefusalError) return new ApiError('invalid_request', e.message, 'hparams');
  if (e instanceof Error) return new ApiError('invalid_request', e.message, fallbackField);
  return e;
}

function toMemory(m: MemoryEstimate): MemoryEstimateData {
  return { ...m, breakdown: { ...m.breakdown }, params: { ...m.params } };
}

/**
 * The run check (training/vlm-config.ts checkVlmRun: model + tokenizer loaded, every sample rendered and tokenized,
 * plan, memory estimate) runs in the backend's worker thread (services/work.ts), never on this event loop.
 */
async function checkVlm(ctx: ServiceContext, p: { model: { id: number } | { path: string }; data: { datasetId: number; trainSplit: 'train' | 'val' | 'test'; evalSplit: 'train' | 'val' | 'test' }; hparams: Record<string, unknown>; evalMaxItems?: number }, refuseMemory: boolean) {
  const model = resolveModel(ctx, p.model);
  requireDataset(ctx.db, p.data.datasetId, 'data.datasetId');
  const snapshot = snapshotDataset(ctx.db, ctx.dataDir, p.data.datasetId);
  let check: VlmCheck;
  try {
    check = await ctx.work.shared().check({
      modelDir: model.dir,
      snapshot,
      trainSplit: p.data.trainSplit,
      evalSplit: p.data.evalSplit,
      hparams: p.hparams,
      evalMaxItems: p.evalMaxItems,
      refuseMemory,
    });
  } catch (e) {
    throw toTrainingError(e);
  }
  return { model, snapshot, check };
}

function runBusyError(e: unknown, field = 'id'): unknown {
  if (e instanceof Error && !(e instanceof ApiError)) return new ApiError('conflict', e.message, field);
  return e;
}

/** Total bytes of the files in a folder and its subfolders (the final adapter's size, like a checkpoint's). */
function folderBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) total += folderBytes(full);
    else if (e.isFile()) total += statSync(full).size;
  }
  return total;
}

function toCheckpoint(r: ReturnType<typeof listCheckpointRows>[number]): Checkpoint {
  let metrics: Record<string, number | null> = {};
  try {
    metrics = JSON.parse(r.metrics_json) as Record<string, number | null>;
  } catch {
    /* shown as {} */
  }
  return { id: r.id, runId: r.run_id, step: r.step, kind: r.kind, path: r.path, bytes: r.bytes, metrics, createdAt: r.created_at };
}

export function toEvaluation(db: Database, r: EvaluationRow): Evaluation {
  const config = safeJson(r.config_json);
  const count = (db.prepare('SELECT COUNT(*) AS n FROM predictions WHERE evaluation_id = ?').get(r.id) as { n: number }).n;
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
  if (row.status !== 'completed') throw new ApiError('conflict', `evaluation ${id} is ${row.status}, not completed`, field);
  return loadEvaluationResult(db, id);
}

/** The adapter folder of an adapter reference: a folder, a run's final adapter, or a run checkpoint's adapter. */
export function resolveAdapter(ctx: ServiceContext, ref: { path: string } | { runId: number; step?: number }): string {
  if ('path' in ref) {
    const dir = resolve(ref.path);
    if (!existsSync(join(dir, 'adapter_config.json'))) throw new ApiError('invalid_request', `${dir} is not an adapter folder (no adapter_config.json)`, 'adapter.path');
    return dir;
  }
  requireRun(ctx.db, ref.runId, 'adapter.runId');
  if (ref.step !== undefined) {
    const row = listCheckpointRows(ctx.db, ref.runId).find((c) => c.step === ref.step);
    if (!row) throw new ApiError('not_found', `run ${ref.runId} has no checkpoint at step ${ref.step}`, 'adapter.step');
    const dir = join(isAbsolute(row.path) ? row.path : join(ctx.dataDir, row.path), 'adapter');
    if (!existsSync(join(dir, 'adapter_config.json'))) throw new ApiError('invalid_request', `the checkpoint at step ${ref.step} holds no adapter`, 'adapter.step');
    return dir;
  }
  const spec = loadJobSpec(ctx.db, ref.runId);
  const fin = spec ? finalDir(spec.outDir) : null;
  if (!fin || !existsSync(join(fin, 'adapter_config.json'))) throw new ApiError('conflict', `run ${ref.runId} has no final adapter yet (it has not completed); choose a checkpoint step`, 'adapter.runId');
  return fin;
}

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
export function startEvaluation(ctx: ServiceContext, p: EvaluationRequest): { id: number; done: Promise<EvaluationRow> } {
  const model = resolveModel(ctx, p.model);
  const adapterDir = p.adapter ? resolveAdapter(ctx, p.adapter) : null;
  requireDataset(ctx.db, p.data.datasetId, 'data.datasetId');
  const snapshot = snapshotDataset(ctx.db, ctx.dataDir, p.data.datasetId);
  const ev = evalItems(itemsOfSplit(snapshot, p.data.split), { task: p.task });
  if (ev.items.length === 0)
    throw new ApiError('invalid_request', `dataset ${p.data.datasetId} has no items with a reference answer in the ${p.data.split} split${snapshot.autoSplit ? ' (it has no split; a 90/10 train/val split was assumed)' : ''}`, 'data.split');
  const items = subsample(ev.items, p.maxItems);
  const runId = p.adapter && 'runId' in p.adapter ? p.adapter.runId : null;
  let checkpointId: number | null = null;
  if (p.adapter && 'runId' in p.adapter && p.adapter.step !== undefined)
    checkpointId = listCheckpointRows(ctx.db, p.adapter.runId).find((c) => c.step === (p.adapter as { step: number }).step)?.id ?? null;
  const id = createEvaluation(ctx.db, {
    runId,
    checkpointId,
    modelId: model.modelId,
    datasetId: p.data.datasetId,
    split: p.data.split,
    config: { pid: process.pid, model: model.dir, adapter: adapterDir, maxItems: p.maxItems ?? null, maxNewTokens: p.maxNewTokens, quantize: p.quantize ?? 'none', items: items.length, autoSplit: snapshot.autoSplit, ...(p.adapter && 'runId' in p.adapter && p.adapter.step !== undefined ? { step: p.adapter.step } : {}) },
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
        { modelDir: model.dir, adapterDir, task: ev.task, items, maxNewTokens: p.maxNewTokens, cacheDir: graphCacheDirOf(ctx.dataDir), quantize: p.quantize },
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

// ------------------------------------------------------------------------------------------------ handlers

export const trainingHandlers = handlers({
  'runs.estimate': async (p, ctx) => {
    const { check } = await checkVlm(ctx, p, false);
    return {
      memory: toMemory(check.memory),
      plan: { ...check.plan, trainSamples: check.trainSamples, evalSamples: check.evalSamples, longestSample: check.longestSample },
      refusal: memoryRefusal(check.memory),
    };
  },

  'runs.start': async (p, ctx) => {
    const { runner } = ctx.training;
    if (p.outDir && existsSync(resolve(p.outDir)) && readdirSync(resolve(p.outDir)).length > 0)
      throw new ApiError('invalid_request', `run folder ${resolve(p.outDir)} is not empty; give an empty or new folder`, 'outDir');
    const { model, snapshot, check } = await checkVlm(ctx, p, true);
    const validated = { totalSteps: check.plan.totalSteps, memory: check.memory };
    const run = insertRun(ctx.db, {
      name: p.name ?? `${check.hp.method} on ${snapshot.source.name}`,
      modelId: model.modelId,
      datasetId: p.data.datasetId,
      config: { trainer: 'vlm', model: p.model, data: p.data, hparams: check.hp, autoSplit: snapshot.autoSplit },
      totalSteps: validated.totalSteps,
    });
    const outDir = p.outDir ? resolve(p.outDir) : join(ctx.dataDir, 'runs', String(run.id));
    const spec: JobSpec = {
      trainer: 'vlm',
      outDir,
      config: {
        model: model.dir,
        data: { file: join(outDir, 'data.json'), trainSplit: p.data.trainSplit, evalSplit: p.data.evalSplit },
        hparams: p.hparams,
        eval: { maxItems: p.evalMaxItems ?? 64 },
        ...(p.device ? { provider: p.device } : {}),
      },
    };
    try {
      writeSnapshot(join(outDir, 'data.json'), snapshot);
      await runner.startJob(run.id, spec, { validated });
    } catch (e) {
      deleteRun(ctx.db, run.id);
      throw toTrainingError(e);
    }
    return { run: toRun(requireRun(ctx.db, run.id)), memory: toMemory(validated.memory) };
  },

  'runs.pause': async (p, ctx) => {
    requireRun(ctx.db, p.id);
    const { runner } = ctx.training;
    if (!runner.isActive(p.id)) throw new ApiError('conflict', `run ${p.id} is ${getRun(ctx.db, p.id)!.status}, not running`, 'id');
    await runner.pause(p.id);
    return toRun(requireRun(ctx.db, p.id));
  },

  'runs.resume': async (p, ctx) => {
    requireRun(ctx.db, p.id);
    const { runner } = ctx.training;
    runner.recover();
    try {
      await runner.resume(p.id, { provider: p.device });
    } catch (e) {
      throw runBusyError(e);
    }
    return toRun(requireRun(ctx.db, p.id));
  },

  'runs.cancel': async (p, ctx) => {
    requireRun(ctx.db, p.id);
    const { runner } = ctx.training;
    try {
      await runner.cancel(p.id);
    } catch (e) {
      throw runBusyError(e);
    }
    return toRun(requireRun(ctx.db, p.id));
  },

  'runs.checkpoints': (p, ctx) => {
    requireRun(ctx.db, p.id);
    const spec = loadJobSpec(ctx.db, p.id);
    const fin = spec ? finalDir(spec.outDir) : null;
    const has = !!fin && existsSync(fin);
    return { checkpoints: listCheckpointRows(ctx.db, p.id).map(toCheckpoint), finalDir: has ? fin : null, finalBytes: has ? folderBytes(fin) : null };
  },

  'evaluations.start': (p, ctx) => {
    const { id } = startEvaluation(ctx, p);
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
    const where: string[] = [];
    const args: unknown[] = [];
    if (p.runId !== undefined) {
      where.push('run_id = ?');
      args.push(p.runId);
    }
    if (p.datasetId !== undefined) {
      where.push('dataset_id = ?');
      args.push(p.datasetId);
    }
    const rows = ctx.db
      .prepare(`SELECT * FROM evaluations${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC`)
      .all(...args) as EvaluationRow[];
    return { evaluations: rows.map((r) => toEvaluation(ctx.db, r)) };
  },

  'evaluations.get': (p, ctx) => toEvaluation(ctx.db, requireEvaluation(ctx.db, p.id)),

  'evaluations.predictions': (p, ctx) => {
    requireEvaluation(ctx.db, p.id);
    const total = (ctx.db.prepare('SELECT COUNT(*) AS n FROM predictions WHERE evaluation_id = ?').get(p.id) as { n: number }).n;
    const rows = ctx.db
      .prepare('SELECT id, item_id, prompt, output, reference, scores_json FROM predictions WHERE evaluation_id = ? ORDER BY id LIMIT ? OFFSET ?')
      .all(p.id, p.limit, p.offset) as { id: number; item_id: number | null; prompt: string; output: string; reference: string | null; scores_json: string }[];
    const predictions: PredictionData[] = rows.map((r) => {
      const { key, ...scores } = safeJson(r.scores_json) as { key?: string | number } & Record<string, number | null>;
      return { id: r.id, itemId: r.item_id, key: key ?? null, prompt: r.prompt, output: r.output, references: decodeReferences(r.reference), scores };
    });
    return { predictions, total };
  },

  'evaluations.compare': (p, ctx) => {
    const base = loadCompleted(ctx.db, p.baseId, 'baseId');
    const tuned = loadCompleted(ctx.db, p.tunedId, 'tunedId');
    try {
      const c = compareResults(base, tuned);
      return { task: c.task, metrics: c.metrics, items: c.items.map(({ key, prompt, references, base: b, tuned: t, change }) => ({ key, prompt, references, base: b, tuned: t, change })) };
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, 'tunedId');
    }
  },
});
