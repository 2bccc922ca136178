// Undo/redo kept in the database (survives restarts). Every labeling operation runs through a Recorder
// that performs its row changes and remembers each one (insert / delete with the whole row, update with
// the changed columns before and after). Undo applies the inverse changes in reverse order; redo replays
// them. `history_cursor.seq` is the last applied entry; a new operation drops entries past the cursor.
import type { Database } from 'better-sqlite3';
import { nowIso } from '../storage/database';
import { touchDataset } from '../storage/items-queries';
import {
  HIST_KEYS,
  deleteHistRow,
  deleteHistoryAfter,
  deleteHistoryUpTo,
  histChildRows,
  histRow,
  historyCursor as cursor,
  historyEntryRow,
  historyEntryRows,
  insertHistRow,
  insertHistoryEntry,
  setHistoryCursor as setCursor,
  updateHistRow,
  type HistRow as Row,
  type HistTable,
} from '../storage/history-queries';

export type { HistTable };
export interface Change {
  t: HistTable;
  op: 'insert' | 'delete' | 'update';
  key: Record<string, number>;
  before?: Row;
  after?: Row;
}

/** Rows that a delete cascades to: recorded first so undo restores them. */
const CHILDREN: Partial<Record<HistTable, { t: HistTable; fk: string }[]>> = {
  items: [
    { t: 'item_tags', fk: 'item_id' },
    { t: 'annotations', fk: 'item_id' },
    { t: 'item_sources', fk: 'item_id' },
  ],
  tags: [{ t: 'item_tags', fk: 'tag_id' }],
};

function keyOf(t: HistTable, row: Row): Record<string, number> {
  return Object.fromEntries(HIST_KEYS[t].map((k) => [k, row[k] as number]));
}

export class HistoryConflictError extends Error {}

const insertRow = insertHistRow;
function deleteRow(db: Database, t: HistTable, key: Record<string, number>): void {
  const n = deleteHistRow(db, t, key);
  if (n !== 1) throw new HistoryConflictError(`${t} ${JSON.stringify(key)} no longer exists`);
}
function updateRow(db: Database, t: HistTable, key: Record<string, number>, patch: Row): void {
  if (Object.keys(patch).length === 0) return;
  const n = updateHistRow(db, t, key, patch);
  if (n !== 1) throw new HistoryConflictError(`${t} ${JSON.stringify(key)} no longer exists`);
}

/** Performs row changes and records them for undo. */
export class Recorder {
  readonly changes: Change[] = [];
  constructor(readonly db: Database) {}

  insert(t: HistTable, row: Row): void {
    insertRow(this.db, t, row);
    this.changes.push({ t, op: 'insert', key: keyOf(t, row), after: row });
  }

  /** Delete one row (and, first, the rows that would cascade from it). Returns false when it did not exist. */
  delete(t: HistTable, key: Record<string, number>): boolean {
    const row = histRow(this.db, t, key);
    if (!row) return false;
    for (const child of CHILDREN[t] ?? []) {
      const kids = histChildRows(this.db, child.t, child.fk, key.id);
      for (const k of kids) this.delete(child.t, keyOf(child.t, k));
    }
    deleteRow(this.db, t, key);
    this.changes.push({ t, op: 'delete', key, before: row });
    return true;
  }

  /** Update columns of one row; records only the columns that actually change. Returns false when nothing changed. */
  update(t: HistTable, key: Record<string, number>, patch: Row): boolean {
    const row = histRow(this.db, t, key);
    if (!row) throw new HistoryConflictError(`${t} ${JSON.stringify(key)} does not exist`);
    const before: Row = {};
    const after: Row = {};
    const onlyTouch = Object.keys(patch).every((c) => c === 'updated_at');
    for (const [c, v] of Object.entries(patch)) {
      if (row[c] !== v && (c !== 'updated_at' || onlyTouch)) {
        before[c] = row[c];
        after[c] = v;
      }
    }
    if (Object.keys(after).length === 0) return false;
    if ('updated_at' in patch && !onlyTouch) {
      before.updated_at = row.updated_at;
      after.updated_at = patch.updated_at;
    }
    updateRow(this.db, t, key, after);
    this.changes.push({ t, op: 'update', key, before, after });
    return true;
  }
}

/** Most entries kept per dataset; older ones are dropped (they can no longer be undone). */
export const MAX_HISTORY = 500;

/**
 * Run `fn` in one transaction with a Recorder; when it changed anything, append a history entry labeled
 * `label` (dropping redo entries past the cursor). Returns fn's result.
 */
export function recordOperation<T>(db: Database, datasetId: number, label: string, fn: (rec: Recorder) => T): T {
  return db
    .transaction(() => {
      const rec = new Recorder(db);
      const result = fn(rec);
      if (rec.changes.length > 0) {
        const seq = cursor(db, datasetId);
        deleteHistoryAfter(db, datasetId, seq);
        insertHistoryEntry(db, {
          datasetId,
          seq: seq + 1,
          label,
          changesJson: JSON.stringify(rec.changes),
          createdAt: nowIso(),
        });
        setCursor(db, datasetId, seq + 1);
        deleteHistoryUpTo(db, datasetId, seq + 1 - MAX_HISTORY);
        touchDataset(db, datasetId);
      }
      return result;
    })
    .immediate();
}

/** Forget redo entries (called when the dataset changes outside the history, e.g. by an import). */
export function dropRedo(db: Database, datasetId: number): void {
  deleteHistoryAfter(db, datasetId, cursor(db, datasetId));
}

export interface HistoryState {
  canUndo: boolean;
  canRedo: boolean;
  /** Label of the operation undo would revert. */
  undoLabel?: string;
  redoLabel?: string;
  position: number;
  entries: { seq: number; label: string; createdAt: string; applied: boolean }[];
}

export function historyState(db: Database, datasetId: number): HistoryState {
  const seq = cursor(db, datasetId);
  const entries = historyEntryRows(db, datasetId).map((e) => ({
    seq: e.seq,
    label: e.label,
    createdAt: e.created_at,
    applied: e.seq <= seq,
  }));
  const undoE = entries.find((e) => e.seq === seq);
  const redoE = entries.find((e) => e.seq === seq + 1);
  return {
    canUndo: !!undoE,
    canRedo: !!redoE,
    undoLabel: undoE?.label,
    redoLabel: redoE?.label,
    position: seq,
    entries,
  };
}

function entryAt(db: Database, datasetId: number, seq: number): { label: string; changes: Change[] } | undefined {
  const r = historyEntryRow(db, datasetId, seq);
  return r ? { label: r.label, changes: JSON.parse(r.changes_json) as Change[] } : undefined;
}

/** Revert the last applied operation. Returns its label, or undefined when there is nothing to undo. */
export function undo(db: Database, datasetId: number): string | undefined {
  return db
    .transaction(() => {
      const seq = cursor(db, datasetId);
      const e = entryAt(db, datasetId, seq);
      if (!e) return undefined;
      for (const c of [...e.changes].reverse()) {
        if (c.op === 'insert') deleteRow(db, c.t, c.key);
        else if (c.op === 'delete') insertRow(db, c.t, c.before!);
        else updateRow(db, c.t, c.key, c.before!);
      }
      setCursor(db, datasetId, seq - 1);
      touchDataset(db, datasetId);
      return e.label;
    })
    .immediate();
}

/** Re-apply the next undone operation. Returns its label, or undefined when there is nothing to redo. */
export function redo(db: Database, datasetId: number): string | undefined {
  return db
    .transaction(() => {
      const seq = cursor(db, datasetId);
      const e = entryAt(db, datasetId, seq + 1);
      if (!e) return undefined;
      for (const c of e.changes) {
        if (c.op === 'insert') insertRow(db, c.t, c.after!);
        else if (c.op === 'delete') deleteRow(db, c.t, c.key);
        else updateRow(db, c.t, c.key, c.after!);
      }
      setCursor(db, datasetId, seq + 1);
      touchDataset(db, datasetId);
      return e.label;
    })
    .immediate();
}
