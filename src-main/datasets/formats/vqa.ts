// VQA: JSONL (or a JSON array) of {image, question, answer} records, and the one-folder-per-sample
// layout: `<sample>/data.json` + `<sample>/image.png` (or any single image in the folder).
import { basename, dirname, join } from 'node:path';
import { readTextFile, splitFromDirName, type JsonRecord } from '../read';
import { MAX_TEXT_CHARS } from '../schemas';
import { isImageName, type Annotation, type Split } from '../types';
import { assemble, isRecord, readMeta, type ParseContext, type RecordOut } from './common';
import { IMAGE_KEYS, labelsFromRow } from './labels';

/** Does this record look like a VQA record? */
export function isVqaRecord(v: unknown): boolean {
  if (!isRecord(v)) return false;
  const hasImage = IMAGE_KEYS.some((k) => typeof v[k] === 'string');
  return hasImage && ('question' in v || 'q' in v || 'query' in v || Array.isArray(v.qa));
}

function imageField(row: Record<string, unknown>): [string, unknown] | undefined {
  for (const k of IMAGE_KEYS) {
    const v = row[k];
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) return v.length === 1 ? [`${k}[0]`, v[0]] : [k, v];
    return [k, v];
  }
  return undefined;
}

/** The per-record warning for a record with an image and no labels. */
export const NO_LABELS_WARNING = 'no question/answer or caption fields; imported without labels';

export function parseVqaRecords(
  ctx: ParseContext,
  file: string,
  records: JsonRecord[],
  split?: RecordOut['split'],
): RecordOut[] {
  const out: RecordOut[] = [];
  for (const { ref, value } of records) {
    if (!isRecord(value)) {
      ctx.error(
        ref,
        `expected an object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`,
      );
      continue;
    }
    const f = imageField(value);
    let image;
    if (f) {
      if (Array.isArray(f[1])) {
        ctx.error(ref, `has ${f[1].length} images; a Lenslab item holds one image`, f[0]);
        continue;
      }
      image = ctx.image(ref, f[0], f[1], file);
      if (!image) continue;
    } else {
      ctx.error(ref, `missing image (expected one of the fields ${IMAGE_KEYS.slice(0, 5).join(', ')})`);
      continue;
    }
    const meta = readMeta(ctx, ref, value.lenslab);
    const annotations = labelsFromRow(ctx, ref, value, { textColumn: ctx.options.textColumn, meta });
    if (!annotations) continue;
    if (annotations.length === 0) ctx.warn(ref, NO_LABELS_WARNING);
    out.push({ ref, image, annotations, meta, split });
  }
  return out;
}

/** Folders that hold a `data.json` (one sample each). */
export function findSampleFolders(files: string[]): string[] {
  return files.filter((f) => basename(f).toLowerCase() === 'data.json' && f.includes('/')).map((f) => dirname(f));
}

export function parseVqaFolders(ctx: ParseContext, files: string[]) {
  const records = sampleFolderRecords(ctx, files, findSampleFolders(files));
  return {
    format: 'vqa-folders' as const,
    items: assemble(records, { groupByImage: ctx.options.groupByImage }),
    problems: ctx.problems,
  };
}

/**
 * The records of sample folders (`dirs`, relative to the root). A sample's split comes from its top folder
 * (`test/`, `test_data/`), else from the root's own name (a dropped `test_data` folder), else `defaultSplit`.
 */
export function sampleFolderRecords(
  ctx: ParseContext,
  files: string[],
  dirs: string[],
  defaultSplit?: Split,
): RecordOut[] {
  const records: RecordOut[] = [];
  const rootSplit = splitFromDirName(basename(ctx.root));
  const inDirOf = new Map<string, string[]>();
  for (const f of files) {
    if (!isImageName(f)) continue;
    const d = dirname(f);
    const list = inDirOf.get(d);
    if (list) list.push(f);
    else inDirOf.set(d, [f]);
  }
  for (const dir of dirs) {
    const ref = `${dir}/data.json`;
    const abs = join(ctx.root, ref);
    let doc: unknown;
    try {
      const s = readTextFile(abs, ref);
      if (s.length > MAX_TEXT_CHARS * 8) throw new Error(`file is too large (${s.length} characters)`);
      doc = JSON.parse(s);
    } catch (err) {
      ctx.error(ref, `invalid JSON: ${(err as Error).message.replace(/^.*?: invalid JSON: /, '')}`);
      continue;
    }
    const rows: unknown[] = Array.isArray(doc) ? doc : [doc];
    if (rows.length === 0) {
      ctx.error(ref, 'empty list');
      continue;
    }
    let imageRef: [string, unknown] | undefined;
    const annotations: Annotation[] = [];
    let meta;
    let bad = false;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      const rowRef = Array.isArray(doc) ? `${ref}[${i}]` : ref;
      if (!isRecord(row)) {
        ctx.error(
          rowRef,
          `expected an object, got ${row === null ? 'null' : Array.isArray(row) ? 'an array' : typeof row}`,
        );
        bad = true;
        break;
      }
      imageRef ??= imageField(row);
      meta ??= readMeta(ctx, rowRef, row.lenslab);
      const a = labelsFromRow(ctx, rowRef, row, { textColumn: ctx.options.textColumn, meta });
      if (!a) {
        bad = true;
        break;
      }
      for (const x of a) annotations.push(x);
    }
    if (bad) continue;
    let image;
    if (imageRef) {
      image = ctx.image(ref, imageRef[0], imageRef[1], abs);
      if (!image) continue;
    } else {
      const inDir = inDirOf.get(dir) ?? [];
      const named = inDir.filter((f) => /^image\./i.test(basename(f)));
      const pickRel = named.length === 1 ? named[0] : inDir.length === 1 ? inDir[0] : undefined;
      if (!pickRel) {
        ctx.error(
          ref,
          inDir.length === 0
            ? 'no image in the sample folder'
            : `several images in the sample folder (${inDir.map((f) => basename(f)).join(', ')}) and no image field`,
        );
        continue;
      }
      image = { path: join(ctx.root, pickRel), original: pickRel };
    }
    records.push({
      ref,
      image,
      annotations,
      meta,
      split: (dir.includes('/') ? splitFromDirName(dir.split('/')[0]) : undefined) ?? rootSplit ?? defaultSplit,
    });
  }
  return records;
}
