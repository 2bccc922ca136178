// Parquet with an image column holding bytes (Hugging Face `Image` feature: a struct {bytes, path}),
// raw binary, or a path; text columns as in imagefolder. Several files (e.g. data/train-00000-of-00001.parquet)
// are read in turn; a file name starting with train/validation/test sets the split.
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type AsyncBuffer } from 'hyparquet';
import { splitFromName } from '../read';
import { ImportError, type ImageSource } from '../types';
import { assemble, isRecord, readMeta, type ParseContext, type RecordOut } from './common';
import { labelsFromRow } from './labels';

const IMAGE_COLUMNS = ['image', 'images', 'img', 'picture', 'photo', 'image_bytes', 'file_name', 'image_path'];
/** Rows decoded at a time (bounds memory for big files). */
const ROW_CHUNK = 512;

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

function looksLikeImageValue(v: unknown): boolean {
  if (isBytes(v)) return true;
  if (isRecord(v)) return isBytes(v.bytes) || typeof v.path === 'string';
  if (Array.isArray(v) && v.length > 0) return looksLikeImageValue(v[0]);
  return false;
}

export async function parseParquetFiles(ctx: ParseContext, files: string[]) {
  const records: RecordOut[] = [];
  for (const file of files) for (const r of await parseOne(ctx, file)) records.push(r);
  return { format: 'parquet' as const, items: assemble(records, { groupByImage: ctx.options.groupByImage }), problems: ctx.problems };
}

async function openBuffer(file: string): Promise<AsyncBuffer> {
  const size = statSync(file).size;
  if (size <= 256 * 1024 * 1024) {
    const b = readFileSync(file);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
  return asyncBufferFromFile(file);
}

async function parseOne(ctx: ParseContext, file: string): Promise<RecordOut[]> {
  const label = ctx.label(file);
  const split = splitFromName(basename(file));
  let buf: AsyncBuffer;
  let numRows: number;
  let metadata;
  try {
    buf = await openBuffer(file);
    metadata = await parquetMetadataAsync(buf);
    numRows = Number(metadata.num_rows);
  } catch (err) {
    throw new ImportError(`${label}: not a readable Parquet file: ${(err as Error).message}`, { file: label, cause: err });
  }
  const out: RecordOut[] = [];
  let imageColumn = ctx.options.imageColumn;
  for (let start = 0; start < numRows; start += ROW_CHUNK) {
    let rows: Record<string, unknown>[];
    try {
      rows = (await parquetReadObjects({ file: buf, metadata, utf8: false, rowStart: start, rowEnd: Math.min(numRows, start + ROW_CHUNK) })) as Record<string, unknown>[];
    } catch (err) {
      throw new ImportError(`${label}: cannot decode rows ${start}–${Math.min(numRows, start + ROW_CHUNK) - 1}: ${(err as Error).message}`, { file: label, cause: err });
    }
    if (start === 0 && rows.length > 0) {
      const cols = Object.keys(rows[0]);
      if (imageColumn && !cols.includes(imageColumn)) throw new ImportError(`${label}: image column '${imageColumn}' not found (columns: ${cols.join(', ')})`, { file: label });
      imageColumn ??= IMAGE_COLUMNS.find((c) => cols.includes(c) && rows.some((r) => r[c] != null)) ?? cols.find((c) => rows.some((r) => looksLikeImageValue(r[c])));
      if (!imageColumn) ctx.warn(label, `no image column found (columns: ${cols.join(', ')}); items have no image`);
    }
    for (let k = 0; k < rows.length; k++) {
      const ref = `${label}[${start + k}]`;
      const row = rows[k];
      const texts: Record<string, unknown> = {};
      for (const [c, v] of Object.entries(row)) {
        if (c === imageColumn) continue;
        texts[c] = isBytes(v) ? new TextDecoder().decode(v) : v;
      }
      let image: ImageSource | undefined;
      if (imageColumn && row[imageColumn] != null) {
        image = imageOf(ctx, ref, imageColumn, row[imageColumn], file);
        if (!image) continue;
      }
      const meta = readMeta(ctx, ref, texts.lenslab);
      const annotations = labelsFromRow(ctx, ref, texts, { textColumn: ctx.options.textColumn, meta });
      if (!annotations) continue;
      out.push({ ref, image, annotations, meta, split });
    }
  }
  return out;
}

function imageOf(ctx: ParseContext, ref: string, column: string, v: unknown, file: string): ImageSource | undefined {
  let value = v;
  let field = column;
  if (Array.isArray(value)) {
    if (value.length !== 1) {
      ctx.error(ref, `has ${value.length} images; a Lenslab item holds one image`, column);
      return undefined;
    }
    value = value[0];
    field = `${column}[0]`;
  }
  if (isBytes(value)) return { bytes: value, original: `${ref}.${field}` };
  if (isRecord(value)) {
    if (isBytes(value.bytes) && value.bytes.length > 0) {
      const p = typeof value.path === 'string' && value.path ? value.path : undefined;
      return { bytes: value.bytes, original: p ? `${ref}.${field} (${p})` : `${ref}.${field}` };
    }
    if (typeof value.path === 'string' && value.path) return ctx.image(ref, `${field}.path`, value.path, file);
    ctx.error(ref, 'image struct has neither bytes nor path', field);
    return undefined;
  }
  if (typeof value === 'string') return ctx.image(ref, field, value, file);
  ctx.error(ref, `expected image bytes, a {bytes, path} struct or a path, got ${typeof value}`, field);
  return undefined;
}
