// Runs: list / get / metrics. (Creating and driving runs belongs to the training service.)
import { basename } from 'node:path';
import { ApiError } from '../contract/errors';
import type { Run } from '../contract/runs';
import { handlers } from './context';
import type { Database } from '../storage/database';
import { getRun, listRuns, type RunSummaryRow } from '../storage/runs-queries';
import { metricSeries } from '../jobs/store';

export function toRun(r: RunSummaryRow): Run {
  let config: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(r.config_json) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed as Record<string, unknown>;
  } catch {
    // a corrupt config stays visible as {} rather than breaking the list
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

export const runsHandlers = handlers({
  'runs.list': (p, ctx) => ({ runs: listRuns(ctx.db, { status: p.status, datasetId: p.datasetId }).map(toRun) }),
  'runs.get': (p, ctx) => toRun(requireRun(ctx.db, p.id)),
  'runs.metrics': (p, ctx) => {
    requireRun(ctx.db, p.id);
    return metricSeries(ctx.db, p.id, { names: p.names ?? (p.name ? [p.name] : undefined), sinceStep: p.sinceStep });
  },
});
