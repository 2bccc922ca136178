// Find a run by its folder; rename, archive and delete runs (contract/runs-manage.ts). A run that is queued or
// running is refused (pause or cancel it first); a deleted run's folder is removed only when asked and only inside
// <data>/runs.
import { existsSync, rmSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { ApiError } from '../contract/errors';
import { handlers, type ServiceContext } from './context';
import { deleteRun, getRun, renameRun, runNameTaken, runOfOutDir, setRunArchived } from '../storage/runs-queries';
import { loadJobSpec } from '../jobs/store';
import { toRun } from './runs';

function requireRun(ctx: ServiceContext, id: number) {
  const r = getRun(ctx.db, id);
  if (!r) throw new ApiError('not_found', `run ${id} does not exist`, 'id');
  return r;
}

export const runsManageHandlers = handlers({
  'runs.find': (p, ctx) => {
    const hit = runOfOutDir(ctx.db, resolve(p.outDir));
    const row = hit && getRun(ctx.db, hit.id);
    return { run: row ? toRun(row) : null };
  },
  'runs.rename': (p, ctx) => {
    requireRun(ctx, p.id);
    if (runNameTaken(ctx.db, p.name, p.id))
      throw new ApiError('conflict', `a run named "${p.name}" already exists`, 'name');
    renameRun(ctx.db, p.id, p.name);
    const r = toRun(requireRun(ctx, p.id));
    ctx.emit('runs.status', { runId: r.id, status: r.status });
    return r;
  },
  'runs.archive': (p, ctx) => {
    requireRun(ctx, p.id);
    setRunArchived(ctx.db, p.id, p.archived);
    const r = toRun(requireRun(ctx, p.id));
    ctx.emit('runs.status', { runId: r.id, status: r.status });
    return r;
  },
  'runs.delete': (p, ctx) => {
    const r = requireRun(ctx, p.id);
    if (r.status === 'queued' || r.status === 'running')
      throw new ApiError('conflict', `run "${r.name}" is ${r.status}: pause or cancel it before deleting it`, 'id');
    const outDir = loadJobSpec(ctx.db, p.id)?.outDir ?? null;
    const folder = outDir ? resolve(outDir) : null;
    const managed = folder !== null && folder.startsWith(resolve(ctx.dataDir, 'runs') + sep);
    if (p.deleteFiles && folder && !managed)
      throw new ApiError(
        'invalid_request',
        `${folder} is outside the data folder (a --out folder you chose): delete it yourself`,
        'deleteFiles',
      );
    deleteRun(ctx.db, p.id);
    let filesDeleted = false;
    if (p.deleteFiles && folder && managed && existsSync(folder)) {
      rmSync(folder, { recursive: true, force: true });
      filesDeleted = true;
    }
    ctx.emit('runs.status', { runId: p.id, status: r.status });
    return { deleted: true as const, id: p.id, filesDeleted, folder };
  },
});
