// Labeling operations. Each one is a single transaction recorded in the history table, so it can be
// undone and redone (also after a restart). Errors are DatasetOpError with a code and the offending field.
import type { Database } from 'better-sqlite3';
import { nowIso } from '../storage/database';
import { checkAnnotation } from './annotations';
import { recordOperation, redo as redoOp, undo as undoOp, type Recorder } from './history';
import { storeImage, ImageError, type StoredImage } from './images';
import { allocIds, getItem, type AnnotationRow, type ItemRow } from './rows';
import type { Annotation, ImageSource, Split } from './types';
import { datasetExists } from '../storage/datasets-queries';
import {
  annotationPositions,
  annotationRowsOfItem,
  annotationWithDataset,
  itemHasTag,
  nextItemPosition,
  tagIdByName,
  tagInUse,
} from '../storage/items-queries';

export class DatasetOpError extends Error {
  constructor(
    readonly code: 'not_found' | 'invalid_request' | 'conflict',
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'DatasetOpError';
  }
}

function requireDataset(db: Database, datasetId: number): void {
  if (!datasetExists(db, datasetId))
    throw new DatasetOpError('not_found', `dataset ${datasetId} does not exist`, 'datasetId');
}

function requireItems(db: Database, datasetId: number, itemIds: number[], field = 'itemIds'): ItemRow[] {
  requireDataset(db, datasetId);
  const rows: ItemRow[] = [];
  const seen = new Set<number>();
  itemIds.forEach((id, i) => {
    if (seen.has(id)) return;
    seen.add(id);
    const r = getItem(db, id);
    if (!r || r.dataset_id !== datasetId)
      throw new DatasetOpError('not_found', `item ${id} is not in dataset ${datasetId}`, `${field}.${i}`);
    rows.push(r);
  });
  return rows;
}

function requireAnnotation(db: Database, annotationId: number): { ann: AnnotationRow; datasetId: number } {
  const r = annotationWithDataset(db, annotationId);
  if (!r) throw new DatasetOpError('not_found', `annotation ${annotationId} does not exist`, 'annotationId');
  const { ds, ...ann } = r;
  return { ann, datasetId: ds };
}

function validAnnotation(a: unknown, field: string): Annotation {
  try {
    return checkAnnotation(a, field);
  } catch (err) {
    throw new DatasetOpError('invalid_request', (err as Error).message, field);
  }
}

function insertAnnotation(rec: Recorder, itemId: number, a: Annotation, position: number, now: string): number {
  const id = allocIds(rec.db, 'annotations');
  rec.insert('annotations', {
    id,
    item_id: itemId,
    kind: a.kind,
    data_json: JSON.stringify(a.data),
    position,
    created_at: now,
    updated_at: now,
  });
  return id;
}

function touchItem(rec: Recorder, itemId: number, now: string): void {
  rec.update('items', { id: itemId }, { updated_at: now });
}

function tagId(rec: Recorder, datasetId: number, name: string, create: boolean): number | undefined {
  const existing = tagIdByName(rec.db, datasetId, name);
  if (existing !== undefined || !create) return existing;
  const id = allocIds(rec.db, 'tags');
  rec.insert('tags', { id, dataset_id: datasetId, name, created_at: nowIso() });
  return id;
}

function cleanTags(tags: string[]): string[] {
  const out = [...new Set(tags.map((t) => t.trim()))];
  out.forEach((t, i) => {
    if (t === '' || t.length > 200)
      throw new DatasetOpError('invalid_request', 'a tag must be 1..200 characters', `tags.${i}`);
  });
  return out;
}

export interface NewItem {
  image?: ImageSource;
  annotations?: Annotation[];
  tags?: string[];
  split?: Split | null;
}

/** Add items (images are stored first, content-addressed). Returns the new item ids. */
export async function addItems(db: Database, dataDir: string, datasetId: number, items: NewItem[]): Promise<number[]> {
  requireDataset(db, datasetId);
  const anns = items.map((it, i) =>
    (it.annotations ?? []).map((a, k) => validAnnotation(a, `items.${i}.annotations.${k}`)),
  );
  const stored: (StoredImage | undefined)[] = [];
  for (let i = 0; i < items.length; i++) {
    const src = items[i].image;
    if (!src) {
      stored.push(undefined);
      continue;
    }
    try {
      stored.push((await storeImage(dataDir, src)).image);
    } catch (err) {
      if (err instanceof ImageError)
        throw new DatasetOpError('invalid_request', `${src.original}: ${err.message}`, `items.${i}.image`);
      throw err;
    }
  }
  return recordOperation(db, datasetId, items.length === 1 ? 'add item' : `add ${items.length} items`, (rec) => {
    const now = nowIso();
    let pos = nextItemPosition(db, datasetId);
    const ids: number[] = [];
    items.forEach((it, i) => {
      const id = allocIds(db, 'items');
      const img = stored[i];
      rec.insert('items', {
        id,
        dataset_id: datasetId,
        image_hash: img?.hash ?? null,
        image_ext: img?.ext ?? null,
        width: img?.width ?? null,
        height: img?.height ?? null,
        bytes: img?.bytes ?? null,
        source_path: it.image?.original ?? null,
        split: it.split ?? null,
        position: pos++,
        created_at: now,
        updated_at: now,
      });
      anns[i].forEach((a, k) => insertAnnotation(rec, id, a, k, now));
      for (const t of cleanTags(it.tags ?? []))
        rec.insert('item_tags', { item_id: id, tag_id: tagId(rec, datasetId, t, true)! });
      ids.push(id);
    });
    return ids;
  });
}

/** Delete items (with their annotations, tags and provenance). Returns how many were deleted. */
export function deleteItems(db: Database, datasetId: number, itemIds: number[]): number {
  const rows = requireItems(db, datasetId, itemIds);
  return recordOperation(db, datasetId, rows.length === 1 ? 'delete item' : `delete ${rows.length} items`, (rec) => {
    for (const r of rows) rec.delete('items', { id: r.id });
    return rows.length;
  });
}

/** Append (or insert at `position`) an annotation to an item. Returns its id. */
export function addAnnotation(
  db: Database,
  datasetId: number,
  itemId: number,
  annotation: Annotation,
  position?: number,
): number {
  requireItems(db, datasetId, [itemId], 'itemId');
  const a = validAnnotation(annotation, 'annotation');
  return recordOperation(db, datasetId, `add ${a.kind}`, (rec) => {
    const now = nowIso();
    const existing = annotationPositions(db, itemId);
    const at = position === undefined ? existing.length : Math.max(0, Math.min(position, existing.length));
    existing.forEach((e, i) => {
      const want = i < at ? i : i + 1;
      if (e.position !== want) rec.update('annotations', { id: e.id }, { position: want });
    });
    const id = insertAnnotation(rec, itemId, a, at, now);
    touchItem(rec, itemId, now);
    return id;
  });
}

/** Replace an annotation's data (same kind). Returns false when nothing changed. */
export function updateAnnotation(db: Database, annotationId: number, data: Annotation['data']): boolean {
  const { ann, datasetId } = requireAnnotation(db, annotationId);
  const a = validAnnotation({ kind: ann.kind, data }, 'data');
  const json = JSON.stringify(a.data);
  if (json === ann.data_json) return false;
  return recordOperation(db, datasetId, `edit ${ann.kind}`, (rec) => {
    const now = nowIso();
    rec.update('annotations', { id: annotationId }, { data_json: json, updated_at: now });
    touchItem(rec, ann.item_id, now);
    return true;
  });
}

export function deleteAnnotation(db: Database, annotationId: number): void {
  const { ann, datasetId } = requireAnnotation(db, annotationId);
  recordOperation(db, datasetId, `delete ${ann.kind}`, (rec) => {
    rec.delete('annotations', { id: annotationId });
    touchItem(rec, ann.item_id, nowIso());
  });
}

/** Replace all annotations of an item with `annotations` (the editor's save). Unchanged ones keep their ids. */
export function setAnnotations(db: Database, datasetId: number, itemId: number, annotations: Annotation[]): number[] {
  requireItems(db, datasetId, [itemId], 'itemId');
  const next = annotations.map((a, i) => validAnnotation(a, `annotations.${i}`));
  return recordOperation(db, datasetId, 'edit labels', (rec) => {
    const now = nowIso();
    const old = annotationRowsOfItem(db, itemId);
    const ids: number[] = [];
    next.forEach((a, i) => {
      const o = old[i];
      const json = JSON.stringify(a.data);
      if (o && o.kind === a.kind) {
        if (o.data_json !== json || o.position !== i)
          rec.update('annotations', { id: o.id }, { data_json: json, position: i, updated_at: now });
        ids.push(o.id);
      } else {
        if (o) rec.delete('annotations', { id: o.id });
        ids.push(insertAnnotation(rec, itemId, a, i, now));
      }
    });
    for (const o of old.slice(next.length)) rec.delete('annotations', { id: o.id });
    if (rec.changes.length > 0) touchItem(rec, itemId, now);
    return ids;
  });
}

/** Add tags to every item of a selection. Returns how many (item, tag) links were added. */
export function addTags(db: Database, datasetId: number, itemIds: number[], tags: string[]): number {
  const rows = requireItems(db, datasetId, itemIds);
  const names = cleanTags(tags);
  return recordOperation(db, datasetId, `tag ${names.join(', ')}`, (rec) => {
    let n = 0;
    for (const name of names) {
      const tid = tagId(rec, datasetId, name, true)!;
      for (const r of rows) {
        if (itemHasTag(db, r.id, tid)) continue;
        rec.insert('item_tags', { item_id: r.id, tag_id: tid });
        n++;
      }
    }
    return n;
  });
}

/** Remove tags from a selection; a tag no item uses any more is deleted. Returns links removed. */
export function removeTags(db: Database, datasetId: number, itemIds: number[], tags: string[]): number {
  const rows = requireItems(db, datasetId, itemIds);
  const names = cleanTags(tags);
  return recordOperation(db, datasetId, `untag ${names.join(', ')}`, (rec) => {
    let n = 0;
    for (const name of names) {
      const tid = tagId(rec, datasetId, name, false);
      if (tid === undefined) continue;
      for (const r of rows) if (rec.delete('item_tags', { item_id: r.id, tag_id: tid })) n++;
      if (!tagInUse(db, tid)) rec.delete('tags', { id: tid });
    }
    return n;
  });
}

/** Put a selection into a split (or none). Returns how many items changed. */
export function setSplit(db: Database, datasetId: number, itemIds: number[], split: Split | null): number {
  const rows = requireItems(db, datasetId, itemIds);
  return recordOperation(db, datasetId, `set split ${split ?? 'none'}`, (rec) => {
    const now = nowIso();
    let n = 0;
    for (const r of rows) if (rec.update('items', { id: r.id }, { split, updated_at: now })) n++;
    return n;
  });
}

export interface ReplaceOptions {
  /** Treat `find` as a regular expression (JavaScript syntax). */
  regex?: boolean;
  caseSensitive?: boolean;
  /** Which texts: answers/captions only ('answers'), or every text including questions and user turns ('all', default). */
  scope?: 'all' | 'answers';
}

/** Find and replace in the labels of a selection. Returns how many annotations changed. */
export function replaceText(
  db: Database,
  datasetId: number,
  itemIds: number[],
  find: string,
  replacement: string,
  opts: ReplaceOptions = {},
): number {
  const rows = requireItems(db, datasetId, itemIds);
  if (find === '') throw new DatasetOpError('invalid_request', 'the text to find is empty', 'find');
  let re: RegExp;
  try {
    re = new RegExp(
      opts.regex ? find : find.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
      opts.caseSensitive === false ? 'gi' : 'g',
    );
  } catch (err) {
    throw new DatasetOpError('invalid_request', `invalid regular expression: ${(err as Error).message}`, 'find');
  }
  const all = opts.scope !== 'answers';
  const sub = (s: string) => s.replace(re, replacement);
  return recordOperation(db, datasetId, `replace "${find}"`, (rec) => {
    const now = nowIso();
    let n = 0;
    for (const r of rows) {
      const anns = annotationRowsOfItem(db, r.id, false);
      let changed = false;
      for (const a of anns) {
        const data = JSON.parse(a.data_json);
        if (a.kind === 'caption') data.text = sub(data.text);
        else if (a.kind === 'qa') {
          data.answer = sub(data.answer);
          if (all) data.question = sub(data.question);
        } else {
          for (const m of data.messages) if (all || m.role === 'assistant') m.content = sub(m.content);
        }
        const json = JSON.stringify(data);
        if (json !== a.data_json) {
          validAnnotation({ kind: a.kind, data }, `annotation ${a.id}`);
          rec.update('annotations', { id: a.id }, { data_json: json, updated_at: now });
          changed = true;
          n++;
        }
      }
      if (changed) touchItem(rec, r.id, now);
    }
    return n;
  });
}

/** Undo the dataset's last operation; returns its label (undefined: nothing to undo). */
export function undo(db: Database, datasetId: number): string | undefined {
  requireDataset(db, datasetId);
  return undoOp(db, datasetId);
}

/** Redo the dataset's next undone operation; returns its label (undefined: nothing to redo). */
export function redo(db: Database, datasetId: number): string | undefined {
  requireDataset(db, datasetId);
  return redoOp(db, datasetId);
}
