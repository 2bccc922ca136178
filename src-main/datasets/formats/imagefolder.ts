// Hugging Face imagefolder: `metadata.jsonl` / `metadata.csv` (at the root or per split folder) with a
// `file_name` column relative to the metadata file, plus text columns. Images no metadata row names
// are imported unlabeled (to be labeled).
import { basename, dirname, join } from 'node:path';
import { readCsvRecords, readJsonRecords, splitFromDirName, walkFiles } from '../read';
import { imagefolderRow, zodProblems } from '../schemas';
import { isItemFileName } from '../types';
import { assemble, isRecord, readMeta, type ParseContext, type RecordOut } from './common';
import { labelsFromRow } from './labels';

export const METADATA_NAMES = ['metadata.jsonl', 'metadata.csv', 'metadata.json'];

export function findMetadataFiles(files: string[]): string[] {
  return files.filter((f) => METADATA_NAMES.includes(basename(f).toLowerCase()));
}

export function parseImagefolder(ctx: ParseContext, files = walkFiles(ctx.root)) {
  const metas = findMetadataFiles(files);
  const records: RecordOut[] = [];
  const used = new Set<string>();
  for (const rel of metas) {
    const file = join(ctx.root, rel);
    const label = ctx.label(file);
    const raw = rel.toLowerCase().endsWith('.csv')
      ? readCsvRecords(file, label, ctx.problems)
      : readJsonRecords(file, label, ctx.problems);
    const split = rel.includes('/') ? splitFromDirName(rel.split('/')[0]) : undefined;
    for (const { ref, value } of raw) {
      if (!isRecord(value)) {
        ctx.error(
          ref,
          `expected an object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`,
        );
        continue;
      }
      const r = imagefolderRow.safeParse(value);
      if (!r.success) {
        ctx.problems.push(...zodProblems(r.error, ref));
        continue;
      }
      const image = ctx.image(ref, 'file_name', r.data.file_name, file);
      if (!image) continue;
      const meta = readMeta(ctx, ref, value.lenslab);
      const annotations = labelsFromRow(ctx, ref, value, { textColumn: ctx.options.textColumn, meta });
      if (!annotations) continue;
      if ('path' in image) used.add(image.path);
      records.push({ ref, image, annotations, meta, split });
    }
  }
  const metaDirs = metas.map((m) => dirname(m));
  for (const rel of files) {
    if (!isItemFileName(rel)) continue;
    const abs = join(ctx.root, rel);
    if (used.has(abs)) continue;
    if (!metaDirs.some((d) => d === '.' || rel.startsWith(`${d}/`))) continue;
    ctx.warn(rel, 'image has no metadata row; imported without labels');
    records.push({
      ref: rel,
      image: { path: abs, original: rel },
      annotations: [],
      split: rel.includes('/') ? splitFromDirName(rel.split('/')[0]) : undefined,
    });
  }
  return {
    format: 'imagefolder' as const,
    items: assemble(records, { groupByImage: ctx.options.groupByImage }),
    problems: ctx.problems,
  };
}
