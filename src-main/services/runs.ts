// runs.*: list / get / metric series, and training runs on the backend's training runtime (training-runtime.ts: one
// JobRunner, each run in its own process, its events forwarded to clients and stored in SQLite by the runner):
// estimate, start, pause / resume / cancel, checkpoints. Every check that can fail (hyperparameters, data against
// the model, memory) runs before a run row is created or a process starts, and is answered as invalid_request
// naming the field.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import type { ParsedParams } from '../contract/index';
import type { Checkpoint, MemoryEstimateData, Run } from '../contract/runs';
import { handlers, type ServiceContext } from './context';
import { requireDataset } from './datasets';
import { requireNotAudioLlm, resolveModel } from './model-refs';
import type { Database } from '../storage/database';
import { deleteRun, getRun, insertRun, listRuns, type RunSummaryRow } from '../storage/runs-queries';
import { listCheckpointRows, loadJobSpec, metricSeries } from '../jobs/store';
import { finalDir } from '../jobs/driver';
import { acquireFolderLock, folderEntries, FolderBusyError, type FolderLock } from '../jobs/folder-lock';
import type { JobSpec } from '../jobs/protocol';
import { HparamsError, parseHparams } from '../training/hparams';
import { readStoredHparams, type Hparams } from '../contract/hparams';
import { SampleError } from '../training/batching';
import { memoryRefusal, type MemoryEstimate } from '../training/memory';
import { snapshotDataset, writeSnapshot } from '../training/data';
import { isContrastiveFolder } from '../models/families/contrastive/folder';
import { contrastiveJobConfig, planContrastiveRun } from './contrastive-runs';
import { MemoryRefusalError, VlmCheckError, type VlmCheck } from '../training/vlm-config';

export function toRun(r: RunSummaryRow): Run {
  let config: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(r.config_json) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed as Record<string, unknown>;
  } catch {
    // a corrupt config stays visible as {} rather than breaking the list
  }
  if ('hparams' in config) {
    // another version's fields or values are shown apart, as stored, rather than refused or dropped
    const { hparams, other } = readStoredHparams(config.hparams);
    config = { ...config, hparams, ...(Object.keys(other).length ? { otherHparams: other } : {}) };
  }
  return {
    id: r.id,
    name: r.name,
    modelId: r.model_id,
    modelName: r.model_name ?? modelFolderName(config),
    datasetId: r.dataset_id,
    datasetName: r.dataset_name,
    config,
    status: r.status,
    step: r.step,
    totalSteps: r.total_steps,
    error: r.error,
    createdAt: r.created_at,
    archivedAt: r.archived_at ?? null,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
  };
}

/** A run on a model folder that is not in the Models list (`lenslab train --model DIR`) is named by the folder. */
function modelFolderName(config: Record<string, unknown>): string | null {
  const m = config.model as { path?: unknown } | undefined;
  return m && typeof m === 'object' && typeof m.path === 'string' && m.path ? basename(m.path) : null;
}

export function requireRun(db: Database, id: number, field = 'id'): RunSummaryRow {
  const row = getRun(db, id);
  if (!row) throw new ApiError('not_found', `run ${id} does not exist`, field);
  return row;
}

/** Training check failures as API errors naming the field. */
export function toTrainingError(e: unknown, fallbackField = 'hparams'): unknown {
  if (e instanceof ApiError) return e;
  if (e instanceof HparamsError) {
    const f = e.issues.find((i) => i.field)?.field;
    return new ApiError('invalid_request', e.message, f ? `hparams.${f}` : 'hparams');
  }
  if (e instanceof SampleError)
    return new ApiError('invalid_request', `the data does not fit the model: ${e.message}`, 'data');
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

/**
 * The run check (training/vlm-config.ts checkVlmRun: model + tokenizer loaded, every sample rendered and tokenized,
 * plan, memory estimate) runs in the backend's worker thread (services/work.ts), never on this event loop.
 */
async function checkVlm(
  ctx: ServiceContext,
  p: {
    model: { id: number } | { path: string };
    data: { datasetId: number; trainSplit: 'train' | 'val' | 'test'; evalSplit: 'train' | 'val' | 'test' };
    hparams: Record<string, unknown>;
    evalMaxItems?: number;
  },
  refuseMemory: boolean,
) {
  const model = resolveModel(ctx, p.model);
  requireNotAudioLlm(model.dir, 'a training job from the app', 'id' in p.model ? 'model.id' : 'model.path');
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
  return {
    id: r.id,
    runId: r.run_id,
    step: r.step,
    kind: r.kind,
    path: r.path,
    bytes: r.bytes,
    metrics,
    createdAt: r.created_at,
  };
}

type StartParams = ParsedParams<'runs.start'>;

/** runs.start for a CLIP / SigLIP model: the 'contrastive' trainer on the dataset's image-caption pairs. */
async function startContrastive(
  ctx: ServiceContext,
  p: StartParams,
  model: { dir: string; modelId: number | null },
  lock: FolderLock | null,
  lockFolder: (dir: string) => FolderLock,
) {
  let plan: ReturnType<typeof planContrastiveRun>;
  let hp!: Hparams;
  let snapshot: ReturnType<typeof snapshotDataset>;
  try {
    if (p.outDir && folderEntries(resolve(p.outDir)).length > 0)
      throw new ApiError(
        'invalid_request',
        `run folder ${resolve(p.outDir)} is not empty; give an empty or new folder`,
        'outDir',
      );
    requireDataset(ctx.db, p.data.datasetId, 'data.datasetId');
    snapshot = snapshotDataset(ctx.db, ctx.dataDir, p.data.datasetId);
    try {
      hp = parseHparams(p.hparams ?? {});
    } catch (e) {
      throw toTrainingError(e);
    }
    plan = planContrastiveRun(hp, snapshot, p.data);
  } catch (e) {
    lock?.release();
    throw e;
  }
  const run = insertRun(ctx.db, {
    name: p.name ?? `contrastive ${plan.options.method} on ${snapshot.source.name}`,
    modelId: model.modelId,
    datasetId: p.data.datasetId,
    config: {
      trainer: 'contrastive',
      model: p.model,
      data: p.data,
      hparams: hp,
      contrastive: plan.options,
      autoSplit: snapshot.autoSplit,
    },
    totalSteps: plan.totalSteps,
  });
  const outDir = p.outDir ? resolve(p.outDir) : join(ctx.dataDir, 'runs', String(run.id));
  const spec: JobSpec = {
    trainer: 'contrastive',
    outDir,
    config: contrastiveJobConfig(model.dir, join(outDir, 'data.json'), p.data, hp, plan),
  };
  try {
    lock ??= lockFolder(outDir);
    writeSnapshot(join(outDir, 'data.json'), snapshot);
    await ctx.training.runner.startJob(run.id, spec, { validated: { totalSteps: plan.totalSteps }, lock });
  } catch (e) {
    lock?.release();
    deleteRun(ctx.db, run.id);
    throw toTrainingError(e);
  }
  return { run: toRun(requireRun(ctx.db, run.id)), memory: null };
}

export const runsHandlers = handlers({
  'runs.list': (p, ctx) => ({ runs: listRuns(ctx.db, { status: p.status, datasetId: p.datasetId }).map(toRun) }),
  'runs.get': (p, ctx) => toRun(requireRun(ctx.db, p.id)),
  'runs.metrics': (p, ctx) => {
    requireRun(ctx.db, p.id);
    return metricSeries(ctx.db, p.id, { names: p.names ?? (p.name ? [p.name] : undefined), sinceStep: p.sinceStep });
  },
  'runs.estimate': async (p, ctx) => {
    const { check } = await checkVlm(ctx, p, false);
    return {
      memory: toMemory(check.memory),
      plan: {
        ...check.plan,
        trainSamples: check.trainSamples,
        evalSamples: check.evalSamples,
        longestSample: check.longestSample,
      },
      refusal: memoryRefusal(check.memory),
    };
  },

  'runs.start': async (p, ctx) => {
    const { runner } = ctx.training;
    // locked before the emptiness check and until the job process holds it: two starts on one folder cannot both pass
    let lock: FolderLock | null = null;
    const lockFolder = (dir: string) => {
      try {
        return acquireFolderLock(dir, 'a run starting');
      } catch (e) {
        throw e instanceof FolderBusyError ? new ApiError('conflict', e.message, 'outDir') : e;
      }
    };
    if (p.outDir) lock = lockFolder(resolve(p.outDir));
    let resolved: ReturnType<typeof resolveModel>;
    try {
      resolved = resolveModel(ctx, p.model);
    } catch (e) {
      lock?.release();
      throw e;
    }
    // a CLIP / SigLIP model trains contrastively (its own trainer kind); everything else is a VLM run
    if (isContrastiveFolder(resolved.dir)) return startContrastive(ctx, p, resolved, lock, lockFolder);
    let checked: Awaited<ReturnType<typeof checkVlm>>;
    try {
      if (p.outDir && folderEntries(resolve(p.outDir)).length > 0)
        throw new ApiError(
          'invalid_request',
          `run folder ${resolve(p.outDir)} is not empty; give an empty or new folder`,
          'outDir',
        );
      checked = await checkVlm(ctx, p, true);
    } catch (e) {
      lock?.release();
      throw e;
    }
    const { model, snapshot, check } = checked;
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
      lock ??= lockFolder(outDir);
      writeSnapshot(join(outDir, 'data.json'), snapshot);
      await runner.startJob(run.id, spec, { validated, lock });
    } catch (e) {
      lock?.release();
      deleteRun(ctx.db, run.id);
      throw toTrainingError(e);
    }
    return { run: toRun(requireRun(ctx.db, run.id)), memory: toMemory(validated.memory) };
  },

  'runs.pause': async (p, ctx) => {
    requireRun(ctx.db, p.id);
    const { runner } = ctx.training;
    if (!runner.isActive(p.id))
      throw new ApiError('conflict', `run ${p.id} is ${getRun(ctx.db, p.id)!.status}, not running`, 'id');
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
    return {
      checkpoints: listCheckpointRows(ctx.db, p.id).map(toCheckpoint),
      finalDir: has ? fin : null,
      finalBytes: has ? folderBytes(fin) : null,
    };
  },
});
