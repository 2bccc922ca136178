// Datasets: list / get / create / update / delete. (Import and labeling live in their own service files.)
import { resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import type { Dataset } from '../contract/datasets';
import { handlers } from './context';
import type { Database } from '../storage/database';
import { unfinishedRunOfDataset } from '../storage/runs-queries';
import {
  deleteDataset,
  datasetImportedFrom,
  getDataset,
  getDatasetByName,
  insertDataset,
  listDatasets,
  updateDataset,
  type DatasetSummaryRow,
} from '../storage/datasets-queries';

export function toDataset(r: DatasetSummaryRow): Dataset {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    itemCount: r.item_count,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The dataset with this id, or a not_found error naming the field. */
export function requireDataset(db: Database, id: number, field = 'id'): DatasetSummaryRow {
  const row = getDataset(db, id);
  if (!row) throw new ApiError('not_found', `dataset ${id} does not exist`, field);
  return row;
}

function assertNameFree(db: Database, name: string, exceptId?: number): void {
  const other = getDatasetByName(db, name);
  if (other && other.id !== exceptId)
    throw new ApiError('conflict', `a dataset named "${name}" already exists`, 'name');
}

export const datasetsHandlers = handlers({
  'datasets.list': (_p, ctx) => ({ datasets: listDatasets(ctx.db).map(toDataset) }),
  'datasets.get': (p, ctx) => toDataset(requireDataset(ctx.db, p.id)),
  'datasets.find': (p, ctx) => {
    const hit =
      p.name !== undefined ? getDatasetByName(ctx.db, p.name) : datasetImportedFrom(ctx.db, resolve(p.importedFrom!));
    const row = hit && getDataset(ctx.db, hit.id);
    return { dataset: row ? toDataset(row) : null };
  },
  'datasets.create': (p, ctx) => {
    const row = ctx.db
      .transaction(() => {
        assertNameFree(ctx.db, p.name);
        return insertDataset(ctx.db, { name: p.name, description: p.description });
      })
      .immediate();
    ctx.emit('datasets.changed', { kind: 'created', id: row.id });
    return toDataset(row);
  },
  'datasets.update': (p, ctx) => {
    if (p.name === undefined && p.description === undefined) {
      throw new ApiError('invalid_request', 'nothing to update: give name and/or description', 'name');
    }
    const row = ctx.db
      .transaction(() => {
        requireDataset(ctx.db, p.id);
        if (p.name !== undefined) assertNameFree(ctx.db, p.name, p.id);
        return updateDataset(ctx.db, p.id, { name: p.name, description: p.description })!;
      })
      .immediate();
    ctx.emit('datasets.changed', { kind: 'updated', id: row.id });
    return toDataset(row);
  },
  'datasets.delete': (p, ctx) => {
    ctx.db
      .transaction(() => {
        requireDataset(ctx.db, p.id);
        const busy = unfinishedRunOfDataset(ctx.db, p.id);
        if (busy)
          throw new ApiError('conflict', `dataset ${p.id} is used by run ${busy.id}, which has not finished`, 'id');
        deleteDataset(ctx.db, p.id);
      })
      .immediate();
    ctx.emit('datasets.changed', { kind: 'deleted', id: p.id });
    return { deleted: true as const, id: p.id };
  },
});
