// Model and adapter references of the API (contract ModelRef, an adapter by folder or by run and step) resolved to
// folders on disk, checked to exist; shared by runs, evaluations, models and exports.
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import type { ServiceContext } from './context';
import { getRun } from '../storage/runs-queries';
import { getModelPath } from '../storage/models-queries';
import { listCheckpointRows, loadJobSpec } from '../jobs/store';
import { finalDir } from '../jobs/driver';
import { chatInputsOf } from '../models/generate-worker';

/**
 * Refuse, with a message saying what works instead, a feature the image models have and an audio LLM does not yet
 * (asked of the folder: an audio LLM takes audio in chat).
 */
export function requireNotAudioLlm(dir: string, feature: string, field: string): void {
  if (chatInputsOf(dir).audio)
    throw new ApiError(
      'invalid_request',
      `${dir}: ${feature} is not available for audio LLMs yet (train one with \`lenslab audio train\`, chat with it and its adapter in Chat)`,
      field,
    );
}

/** The folder of a model reference: a registered model's path (relative to the data dir) or a folder on disk. */
export function resolveModel(
  ctx: ServiceContext,
  ref: { id: number } | { path: string },
): { dir: string; modelId: number | null } {
  let dir: string;
  let modelId: number | null = null;
  if ('id' in ref) {
    const row = getModelPath(ctx.db, ref.id);
    if (!row) throw new ApiError('not_found', `model ${ref.id} does not exist`, 'model.id');
    dir = isAbsolute(row.path) ? row.path : join(ctx.dataDir, row.path);
    modelId = row.id;
  } else dir = resolve(ref.path);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new ApiError(
      'invalid_request',
      `model folder ${dir} does not exist`,
      'id' in ref ? 'model.id' : 'model.path',
    );
  return { dir, modelId };
}

/** Training check failures as API errors naming the field. */

/** The adapter folder of an adapter reference: a folder, a run's final adapter, or a run checkpoint's adapter. */
export function resolveAdapter(ctx: ServiceContext, ref: { path: string } | { runId: number; step?: number }): string {
  if ('path' in ref) {
    const dir = resolve(ref.path);
    if (!existsSync(join(dir, 'adapter_config.json')))
      throw new ApiError('invalid_request', `${dir} is not an adapter folder (no adapter_config.json)`, 'adapter.path');
    return dir;
  }
  if (!getRun(ctx.db, ref.runId)) throw new ApiError('not_found', `run ${ref.runId} does not exist`, 'adapter.runId');
  if (ref.step !== undefined) {
    const row = listCheckpointRows(ctx.db, ref.runId).find((c) => c.step === ref.step);
    if (!row) throw new ApiError('not_found', `run ${ref.runId} has no checkpoint at step ${ref.step}`, 'adapter.step');
    const dir = join(isAbsolute(row.path) ? row.path : join(ctx.dataDir, row.path), 'adapter');
    if (!existsSync(join(dir, 'adapter_config.json')))
      throw new ApiError('invalid_request', `the checkpoint at step ${ref.step} holds no adapter`, 'adapter.step');
    return dir;
  }
  const spec = loadJobSpec(ctx.db, ref.runId);
  const fin = spec ? finalDir(spec.outDir) : null;
  if (!fin || !existsSync(join(fin, 'adapter_config.json')))
    throw new ApiError(
      'conflict',
      `run ${ref.runId} has no final adapter yet (it has not completed); choose a checkpoint step`,
      'adapter.runId',
    );
  return fin;
}
