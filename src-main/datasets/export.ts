// Export a dataset as LLaVA JSON, `messages` + `images` JSONL (LLaMA-Factory / TRL) or an imagefolder
// `metadata.jsonl`, with the images copied alongside under images/<hash>.<ext>. The output folder is
// written under a temporary name and renamed into place, so it never exists half-written.
// Each record carries a `lenslab` field ({item, kind, tags, split}) that standard loaders ignore and
// Lenslab's importers use to restore items, annotation kinds, tags and splits exactly.
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Database } from 'better-sqlite3';
import { itemConversations, type Conversation } from './conversation';
import { imagePath } from './images';
import { loadItems, type FullItem } from './rows';
import { EXPORT_FORMATS, type ExportFormat, type Split } from './types';

export interface ExportOptions {
  format: ExportFormat;
  /** Only items of this split. */
  split?: Split;
  /** Only these items. */
  itemIds?: number[];
  /** User prompt used for caption annotations (LLaVA / messages formats). */
  captionPrompt?: string;
  /** Add the `lenslab` field to every record (default true). */
  lenslabFields?: boolean;
  /**
   * Replace a non-empty output folder (default false: refuse). Only a folder holding nothing but what an export
   * writes (an annotation file, images/) is replaced; anything else in it is refused by name, never deleted.
   */
  overwrite?: boolean;
}

export interface ExportReport {
  format: ExportFormat;
  dir: string;
  /** The annotation file (data.json / data.jsonl / metadata.jsonl). */
  file: string;
  items: number;
  records: number;
  images: number;
  skipped: { itemId: number; reason: string }[];
}

export const EXPORT_FILE: Record<ExportFormat, string> = {
  llava: 'data.json',
  messages: 'data.jsonl',
  imagefolder: 'metadata.jsonl',
};

export function exportDataset(
  db: Database,
  dataDir: string,
  datasetId: number,
  outDir: string,
  options: ExportOptions,
): ExportReport {
  if (!EXPORT_FORMATS.includes(options.format))
    throw new Error(`unknown export format '${options.format}' (expected ${EXPORT_FORMATS.join(', ')})`);
  const dir = resolve(outDir);
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    if (!options.overwrite) throw new Error(`${dir}: folder is not empty (choose another or allow overwriting)`);
    const foreign = foreignEntry(dir);
    if (foreign)
      throw new Error(
        `${dir}: will not overwrite a folder that is not a Lenslab export (it holds ${foreign}); choose an empty folder`,
      );
  }
  const items = loadItems(db, datasetId, { split: options.split, ids: options.itemIds });
  const tmp = join(dirname(dir), `.${basename(dir)}.export-${process.pid}-${Date.now()}`);
  mkdirSync(join(tmp, 'images'), { recursive: true });
  const skipped: ExportReport['skipped'] = [];
  const copied = new Set<string>();
  const records: unknown[] = [];
  let exportedItems = 0;
  try {
    for (const it of items) {
      let rel: string | undefined;
      if (it.image) {
        rel = `images/${it.image.hash}.${it.image.ext}`;
        if (!copied.has(rel)) {
          const src = imagePath(dataDir, it.image.hash, it.image.ext);
          if (!existsSync(src)) {
            skipped.push({
              itemId: it.id,
              reason: `image file missing from the data folder (${it.image.hash}.${it.image.ext})`,
            });
            continue;
          }
          copyFileSync(src, join(tmp, rel));
          copied.add(rel);
        }
      }
      const recs =
        options.format === 'imagefolder' ? imagefolderRecords(it, rel, options) : conversationRecords(it, rel, options);
      if (typeof recs === 'string') {
        skipped.push({ itemId: it.id, reason: recs });
        continue;
      }
      for (const r of recs) records.push(r);
      exportedItems++;
    }
    const file = join(tmp, EXPORT_FILE[options.format]);
    writeFileSync(
      file,
      options.format === 'llava'
        ? JSON.stringify(records, null, 1) + '\n'
        : records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''),
    );
    // Remove images of skipped items that nothing else uses (copied set is exact, so nothing to do) and move into place.
    // the old export moves aside, the new one into place, then the old one goes
    const old = existsSync(dir) ? `${tmp}.old` : null;
    if (old) renameSync(dir, old);
    mkdirSync(dirname(dir), { recursive: true });
    renameSync(tmp, dir);
    if (old) rmSync(old, { recursive: true, force: true });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return {
    format: options.format,
    dir,
    file: join(dir, EXPORT_FILE[options.format]),
    items: exportedItems,
    records: records.length,
    images: copied.size,
    skipped,
  };
}

/** The first entry of `dir` an export would not have written (by name), or null when it holds only export files. */
function foreignEntry(dir: string): string | null {
  const files = new Set(Object.values(EXPORT_FILE));
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile() && files.has(e.name)) continue;
    if (e.isDirectory() && e.name === 'images') {
      const odd = readdirSync(join(dir, e.name), { withFileTypes: true }).find(
        (f) => !f.isFile() || !/^[0-9a-f]{16,}\.[a-z0-9]+$/.test(f.name),
      );
      if (odd) return `'images/${odd.name}'`;
      continue;
    }
    return `'${e.name}'`;
  }
  return null;
}

function meta(it: FullItem, kind: Conversation['kind'] | undefined, options: ExportOptions): Record<string, unknown> {
  if (options.lenslabFields === false) return {};
  const m: Record<string, unknown> = { item: it.id };
  if (kind) m.kind = kind;
  if (it.tags.length) m.tags = it.tags;
  if (it.split) m.split = it.split;
  return { lenslab: m };
}

function conversationRecords(it: FullItem, rel: string | undefined, options: ExportOptions): unknown[] | string {
  const convs = itemConversations(it.annotations, !!rel, { captionPrompt: options.captionPrompt });
  if (convs.length === 0) return 'no labels to export';
  return convs.map((c, k) => {
    const id = convs.length > 1 ? `${it.id}-${k}` : String(it.id);
    if (options.format === 'messages') {
      return { id, messages: c.messages, images: rel ? [rel] : [], ...meta(it, c.kind, options) };
    }
    const msgs = [...c.messages];
    const system = msgs.length > 0 && msgs[0].role === 'system' ? msgs.shift()!.content : undefined;
    const rec: Record<string, unknown> = { id };
    if (rel) rec.image = rel;
    if (system !== undefined) rec.system = system;
    rec.conversations = msgs.map((m) => ({
      from: m.role === 'user' ? 'human' : m.role === 'assistant' ? 'gpt' : 'system',
      value: m.content,
    }));
    Object.assign(rec, meta(it, c.kind, options));
    return rec;
  });
}

function imagefolderRecords(it: FullItem, rel: string | undefined, options: ExportOptions): unknown[] | string {
  if (!rel) return 'imagefolder needs an image for every row; this item has none';
  if (it.annotations.length === 0) return [{ file_name: rel, ...meta(it, undefined, options) }];
  return it.annotations.map((a) => {
    const row: Record<string, unknown> = { file_name: rel };
    if (a.kind === 'caption') row.text = a.data.text;
    else if (a.kind === 'qa') Object.assign(row, { question: a.data.question, answer: a.data.answer });
    else row.messages = a.data.messages;
    return Object.assign(row, meta(it, a.kind, options));
  });
}
