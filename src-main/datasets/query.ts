// Read queries for the UI/API: a filtered page of items with labels and tags, tag counts, provenance.
import type { Database } from 'better-sqlite3';
import type { LintRule } from './lint';
import { assembleItems, type FullItem, type ItemRow } from './rows';
import {
  annotationRowsOf,
  itemRow,
  itemSourceRow,
  itemTagRowsOf,
  pageItemRows,
  tagCountRows,
} from '../storage/items-queries';
import type { Split } from './types';

export interface ItemFilter {
  offset?: number;
  limit?: number;
  split?: Split | 'none';
  tag?: string;
  lintRule?: LintRule;
  search?: string;
  unlabeled?: boolean;
}

/** Items of a dataset in position order, filtered and paged, with their annotations and tags. */
export function listItems(db: Database, datasetId: number, f: ItemFilter = {}): { items: FullItem[]; total: number } {
  const { rows, total } = pageItemRows(db, datasetId, f);
  return { items: hydrate(db, rows), total };
}

/** Rows → items with annotations and tags (two queries for the whole page). */
export function hydrate(db: Database, rows: ItemRow[]): FullItem[] {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  return assembleItems(rows, annotationRowsOf(db, ids), itemTagRowsOf(db, ids));
}

export function getFullItem(db: Database, id: number): (FullItem & { datasetId: number }) | undefined {
  const row = itemRow(db, id);
  return row ? { ...hydrate(db, [row])[0], datasetId: row.dataset_id } : undefined;
}

export function itemProvenance(
  db: Database,
  id: number,
): { importId: number | null; record: string; imageOriginal: string | null } | null {
  const r = itemSourceRow(db, id);
  return r ? { importId: r.import_id, record: r.record, imageOriginal: r.image_original } : null;
}

export function tagCounts(db: Database, datasetId: number): { name: string; count: number }[] {
  return tagCountRows(db, datasetId);
}
