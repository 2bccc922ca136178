// Train/val/test split with a seed: a seeded shuffle (mulberry32 + Fisher-Yates over items in id order),
// then cumulative rounding of the fractions so counts add up exactly. Optionally stratified by tag: each
// item's group is its first tag (alphabetically; 'untagged' when none) and every group is split on its own.
import type { Database } from 'better-sqlite3';
import { nowIso } from '../storage/database';
import { recordOperation } from './history';
import { DatasetOpError } from './ops';
import type { Split } from './types';
import { mulberry32 } from '../util/mulberry32';
import { datasetExists } from '../storage/datasets-queries';
import { firstTagRows, insertSplitRecord, itemSplitRows } from '../storage/items-queries';

export interface SplitOptions {
  seed: number;
  train: number;
  val: number;
  test: number;
  /** 'tag': split each tag group separately, so every split gets its share of each tag. */
  stratifyBy?: 'tag' | null;
  /** Only these items (default: every item of the dataset). */
  itemIds?: number[];
}

export interface SplitResult {
  splitId: number;
  counts: Record<Split, number>;
  /** Per stratum counts when stratified. */
  groups?: Record<string, Record<Split, number>>;
}

export { mulberry32 };

export function shuffled<T>(list: T[], rand: () => number): T[] {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Assign `ids` (already shuffled) to splits by cumulative rounding of the normalized fractions. */
export function assign(ids: number[], fr: Record<Split, number>): Map<number, Split> {
  const total = fr.train + fr.val + fr.test;
  const n = ids.length;
  const cutTrain = Math.round((n * fr.train) / total);
  const cutVal = Math.round((n * (fr.train + fr.val)) / total);
  const out = new Map<number, Split>();
  ids.forEach((id, i) => out.set(id, i < cutTrain ? 'train' : i < cutVal ? 'val' : 'test'));
  return out;
}

export function checkFractions(o: { train: number; val: number; test: number }): void {
  for (const k of ['train', 'val', 'test'] as const) {
    if (!Number.isFinite(o[k]) || o[k] < 0) throw new DatasetOpError('invalid_request', `${k} must be a number ≥ 0`, k);
  }
  if (o.train + o.val + o.test <= 0)
    throw new DatasetOpError('invalid_request', 'train + val + test must be more than 0', 'train');
}

export function splitDataset(db: Database, datasetId: number, opts: SplitOptions): SplitResult {
  if (!datasetExists(db, datasetId))
    throw new DatasetOpError('not_found', `dataset ${datasetId} does not exist`, 'datasetId');
  checkFractions(opts);
  if (!Number.isInteger(opts.seed)) throw new DatasetOpError('invalid_request', 'seed must be an integer', 'seed');
  let items = itemSplitRows(db, datasetId);
  if (opts.itemIds) {
    const want = new Set(opts.itemIds);
    const found = new Set(items.map((i) => i.id));
    opts.itemIds.forEach((id, i) => {
      if (!found.has(id))
        throw new DatasetOpError('not_found', `item ${id} is not in dataset ${datasetId}`, `itemIds.${i}`);
    });
    items = items.filter((i) => want.has(i.id));
  }
  const fr = { train: opts.train, val: opts.val, test: opts.test };
  const rand = mulberry32(opts.seed);
  const groups = new Map<string, number[]>();
  if (opts.stratifyBy === 'tag') {
    const firstTag = new Map<number, string>();
    for (const r of firstTagRows(db, datasetId)) firstTag.set(r.item_id, r.name);
    for (const it of items) {
      const key = firstTag.get(it.id) ?? 'untagged';
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(it.id);
    }
  } else
    groups.set(
      'all',
      items.map((i) => i.id),
    );
  const assignment = new Map<number, Split>();
  const perGroup: Record<string, Record<Split, number>> = {};
  for (const key of [...groups.keys()].sort()) {
    const a = assign(shuffled(groups.get(key)!, rand), fr);
    const c = { train: 0, val: 0, test: 0 };
    for (const [id, s] of a) {
      assignment.set(id, s);
      c[s]++;
    }
    perGroup[key] = c;
  }
  const counts = { train: 0, val: 0, test: 0 };
  for (const s of assignment.values()) counts[s]++;
  const label = `split ${counts.train}/${counts.val}/${counts.test} (seed ${opts.seed}${opts.stratifyBy ? ', by tag' : ''})`;
  const splitId = recordOperation(db, datasetId, label, (rec) => {
    const now = nowIso();
    for (const it of items) {
      const s = assignment.get(it.id)!;
      if (it.split !== s) rec.update('items', { id: it.id }, { split: s, updated_at: now });
    }
    return insertSplitRecord(db, {
      datasetId,
      seed: opts.seed,
      train: fr.train,
      val: fr.val,
      test: fr.test,
      stratifyBy: opts.stratifyBy ?? null,
      createdAt: now,
    });
  });
  return opts.stratifyBy === 'tag' ? { splitId, counts, groups: perGroup } : { splitId, counts };
}
