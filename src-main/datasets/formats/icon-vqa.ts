// The icon-domain VQA layout (IconQA fill-in-the-blank, as published for BLIP VQA fine-tuning):
//
//   train.jsonl                                          {"pid": "100", "question": "...", "answer": "1"} a line
//   train_fill_in_blank/train_fill_in_blank/<pid>/image.png
//   test_data/<id>/data.json + image.png                 held-out items (split test)
//
// Records name no image: a record's image is the `image.*` file in the folder named by its pid, found
// anywhere under the import root (so the doubled `train_fill_in_blank/train_fill_in_blank/` folder, a single
// one, or pid folders beside the JSONL all work). Sample folders with a `data.json` that no record uses are
// the test items; their split comes from a `test*` / `val*` folder name and is `test` otherwise.
import { basename, dirname, join } from 'node:path';
import { jsonRecords, splitFromName } from '../read';
import { isImageName, type ImportProblem, type Split } from '../types';
import { assemble, isRecord, type ParseContext, type RecordOut } from './common';
import { IMAGE_KEYS, labelsFromRow } from './labels';
import { findSampleFolders, sampleFolderRecords } from './vqa';

const PID_FILE = /\.(jsonl|ndjson)$/i;

/** A record of the layout: a `pid` and no image field. */
function isPidRecord(v: unknown): boolean {
  return isRecord(v) && 'pid' in v && !IMAGE_KEYS.some((k) => k in v);
}

/** The first record of a JSON Lines file (its other lines are not read). */
function firstRecord(abs: string, label: string): unknown {
  const scratch: ImportProblem[] = [];
  const it = jsonRecords(abs, label, scratch);
  try {
    const n = it.next();
    return n.done ? undefined : n.value.value;
  } catch {
    return undefined;
  } finally {
    it.return(undefined);
  }
}

/** Whether one JSON Lines file is a pid record file (its first record has a `pid` and no image field). */
export function isPidRecordFile(abs: string, label = basename(abs)): boolean {
  return PID_FILE.test(abs) && !/^metadata\./i.test(basename(abs)) && isPidRecord(firstRecord(abs, label));
}

/** The pid record files of a folder: JSON Lines files at its top or one folder down. */
export function findPidRecordFiles(root: string, files: readonly string[]): string[] {
  return files.filter((f) => f.split('/').length <= 2 && PID_FILE.test(f) && isPidRecordFile(join(root, f), f));
}

/** Image folders by name: `<anything>/<name>/image.<ext>` → the relative paths of those images. */
function imageFoldersByName(files: readonly string[]): Map<string, string[]> {
  const index = new Map<string, string[]>();
  for (const f of files) {
    if (!isImageName(f) || !/^image\.[^.]+$/i.test(basename(f))) continue;
    const dir = dirname(f);
    if (dir === '.') continue;
    const name = basename(dir);
    const list = index.get(name);
    if (list) list.push(f);
    else index.set(name, [f]);
  }
  return index;
}

/** Whether a relative path runs through a folder whose name starts with the split (train_fill_in_blank → train). */
function underSplit(rel: string, split: Split): boolean {
  return rel
    .split('/')
    .slice(0, -1)
    .some((seg) => splitFromName(seg) === split);
}

/**
 * Parse the layout. `recordFiles` are absolute paths of the pid record files; `files` the folder's files
 * (relative to `ctx.root`). With `samples`, sample folders with a data.json that no record uses are imported
 * too, as held-out items.
 */
export function parseIconVqa(
  ctx: ParseContext,
  files: readonly string[],
  recordFiles: readonly string[],
  opts: { samples?: boolean } = {},
) {
  const index = imageFoldersByName(files);
  const present = new Set(files);
  const used = new Set<string>();
  const records: RecordOut[] = [];
  for (const file of recordFiles) {
    const label = ctx.label(file);
    const split = splitFromName(basename(file));
    for (const { ref, value } of jsonRecords(file, label, ctx.problems)) {
      if (!isRecord(value)) {
        ctx.error(
          ref,
          `expected an object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`,
        );
        continue;
      }
      const pid = value.pid;
      if (pid === undefined || pid === null) {
        ctx.error(ref, 'missing (each record names its image folder <pid>/image.png by its pid)', 'pid');
        continue;
      }
      if (!(typeof pid === 'string' || (typeof pid === 'number' && Number.isSafeInteger(pid)))) {
        ctx.error(ref, `expected a string or an integer, got ${Array.isArray(pid) ? 'an array' : typeof pid}`, 'pid');
        continue;
      }
      const key = String(pid);
      if (key === '' || key === '.' || key === '..' || /[/\\\u0000-\u001f]/.test(key) || key.length > 255) {
        ctx.error(ref, `${JSON.stringify(key).slice(0, 80)} is not a folder name`, 'pid');
        continue;
      }
      const missing = ['question', 'answer'].find((k) => value[k] === undefined || value[k] === null);
      if (missing) {
        ctx.error(ref, `missing (each record needs pid, question and answer)`, missing);
        continue;
      }
      // answers such as 3 are sometimes written as numbers
      const answer =
        typeof value.answer === 'number' && Number.isFinite(value.answer) ? String(value.answer) : value.answer;
      const annotations = labelsFromRow(ctx, ref, { question: value.question, answer });
      if (!annotations) continue;
      let candidates = index.get(key) ?? [];
      if (candidates.length > 1 && split) {
        const inSplit = candidates.filter((c) => underSplit(c, split));
        if (inSplit.length > 0) candidates = inSplit;
      }
      if (candidates.length > 1) {
        const bare = candidates.filter((c) => !present.has(`${dirname(c)}/data.json`));
        if (bare.length > 0) candidates = bare;
      }
      if (candidates.length === 0) {
        ctx.error(
          ref,
          `no image for pid ${JSON.stringify(key)}: expected a folder named ${key} holding image.png (e.g. train_fill_in_blank/train_fill_in_blank/${key}/image.png)`,
          'pid',
        );
        continue;
      }
      if (candidates.length > 1) {
        ctx.error(
          ref,
          `several images for pid ${JSON.stringify(key)} (${candidates.slice(0, 3).join(', ')}${candidates.length > 3 ? ', …' : ''})`,
          'pid',
        );
        continue;
      }
      const rel = candidates[0];
      used.add(dirname(rel));
      records.push({ ref, image: { path: ctx.intern(join(ctx.root, rel)), original: rel }, annotations, split });
    }
  }
  if (opts.samples) {
    const dirs = findSampleFolders([...files]).filter((d) => !used.has(d));
    for (const r of sampleFolderRecords(ctx, [...files], dirs, 'test')) records.push(r);
  }
  return {
    format: 'icon-vqa' as const,
    items: assemble(records, { groupByImage: ctx.options.groupByImage }),
    problems: ctx.problems,
  };
}
