// Parquet with an image column holding bytes (Hugging Face `Image` feature: a struct {bytes, path}),
// raw binary, or a path; text columns as in imagefolder. Several files (e.g. data/train-00000-of-00001.parquet)
// are read in turn; a file name starting with train/validation/test sets the split.
import { closeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import {
  asyncBufferFromFile,
  parquetMetadataAsync,
  parquetReadObjects,
  type AsyncBuffer,
  type FileMetaData,
  type PageHeader,
} from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { openRegularFile, readRegularFile, splitFromName } from '../read';
import { ImportError, type ImageSource } from '../types';
import { assemble, isRecord, readMeta, type ParseContext, type RecordOut } from './common';
import { labelsFromRow } from './labels';

// audio / video: HF `Audio` / `Video` features, the same {bytes, path} struct (the bytes tell which it is)
const IMAGE_COLUMNS = [
  'image',
  'images',
  'img',
  'picture',
  'photo',
  'image_bytes',
  'file_name',
  'image_path',
  'audio',
  'video',
];
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
  checkShards(ctx, files);
  for (const file of files) for (const r of await parseOne(ctx, file)) records.push(r);
  return {
    format: 'parquet' as const,
    items: assemble(records, { groupByImage: ctx.options.groupByImage }),
    problems: ctx.problems,
  };
}

const SHARD = /^(.*)-(\d+)-of-(\d+)\.parquet$/i;

/**
 * Hugging Face writes a split as shards `train-00000-of-00003.parquet` …: a shard missing from the source is
 * said once per split (the rows of the shards present are imported), so a partial download does not pass silently.
 */
function checkShards(ctx: ParseContext, files: string[]): void {
  const groups = new Map<string, { dir: string; prefix: string; total: number; width: number; have: Set<number> }>();
  for (const f of files) {
    const m = SHARD.exec(basename(f));
    if (!m) continue;
    const dir = dirname(ctx.label(f));
    const total = Number(m[3]);
    const key = JSON.stringify([dir, m[1], total]);
    const g = groups.get(key) ?? { dir, prefix: m[1], total, width: m[3].length, have: new Set<number>() };
    g.have.add(Number(m[2]));
    groups.set(key, g);
  }
  for (const g of groups.values()) {
    if (g.total > 100_000 || g.have.size >= g.total) continue;
    const missing: number[] = [];
    for (let i = 0; i < g.total && missing.length < 3; i++) if (!g.have.has(i)) missing.push(i);
    const name = (i: number) =>
      `${g.dir === '.' ? '' : `${g.dir}/`}${g.prefix}-${String(i).padStart(g.width, '0')}-of-${String(g.total).padStart(g.width, '0')}.parquet`;
    const count = g.total - g.have.size;
    ctx.warn(
      name(missing[0]),
      `shard missing: ${g.have.size} of the ${g.total} shards of '${g.prefix}' are here (${count} missing${missing.length > 1 ? `, also ${missing.slice(1).map(name).join(', ')}` : ''}); the rows of the others were imported`,
    );
  }
}

/** Most rows one Parquet file may declare. */
export const MAX_PARQUET_ROWS = 20_000_000;
/** Largest column chunk once decompressed, as its metadata declares it (bytes). */
export const MAX_PARQUET_CHUNK_BYTES = 2 * 1024 ** 3;

async function openBuffer(file: string, label: string): Promise<{ buf: AsyncBuffer; size: number }> {
  // opened as a regular file first: a FIFO or device is refused by kind instead of blocking the read
  const { fd, size } = openRegularFile(file, label);
  closeSync(fd);
  if (size <= 256 * 1024 * 1024) {
    const b = readRegularFile(file, label, 256 * 1024 * 1024);
    return { buf: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer, size: b.length };
  }
  return { buf: await asyncBufferFromFile(file), size };
}

const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : NaN);

/**
 * Every count, offset and length the footer declares, checked against the file's real size before a row is
 * decoded: a footer may claim 2^50 rows or pages past the end of the file, and must not make the import
 * loop or allocate on its word.
 */
export function checkParquetMetadata(metadata: FileMetaData, size: number, label: string): number {
  const fail = (msg: string) => new ImportError(`${label}: ${msg}`, { file: label });
  const numRows = num(metadata.num_rows);
  if (!Number.isSafeInteger(numRows) || numRows < 0)
    throw fail(`the footer declares an invalid row count (${String(metadata.num_rows)})`);
  if (numRows > MAX_PARQUET_ROWS)
    throw fail(`the footer declares ${numRows} rows (limit MAX_PARQUET_ROWS = ${MAX_PARQUET_ROWS} per file)`);
  const dataEnd = size - num(metadata.metadata_length) - 8;
  let sum = 0;
  metadata.row_groups.forEach((rg, g) => {
    const rows = num(rg.num_rows);
    if (!Number.isSafeInteger(rows) || rows < 0)
      throw fail(`row group ${g} declares an invalid row count (${String(rg.num_rows)})`);
    sum += rows;
    rg.columns.forEach((c, k) => {
      const m = c.meta_data;
      const name = m?.path_in_schema?.join('.') || `#${k}`;
      if (c.file_path)
        throw fail(
          `row group ${g}, column '${name}' lives in another file (${c.file_path}); only self-contained Parquet files are read`,
        );
      if (!m) throw fail(`row group ${g}, column '${name}' has no metadata`);
      const offsets = [
        num(m.data_page_offset),
        m.dictionary_page_offset === undefined ? NaN : num(m.dictionary_page_offset),
      ].filter((x) => Number.isFinite(x) && x > 0);
      const start = Math.min(...offsets);
      const len = num(m.total_compressed_size);
      if (!Number.isFinite(start) || !Number.isSafeInteger(len) || len < 0)
        throw fail(`row group ${g}, column '${name}': invalid page offsets in the footer`);
      if (start < 4 || start + len > dataEnd) {
        throw fail(
          `row group ${g}, column '${name}': its pages (bytes ${start}–${start + len}) lie past the end of the data (the file has ${size} bytes, data ends at ${Math.max(0, dataEnd)}); the file is truncated or corrupt`,
        );
      }
      const raw = num(m.total_uncompressed_size);
      if (!Number.isSafeInteger(raw) || raw < 0 || raw > MAX_PARQUET_CHUNK_BYTES)
        throw fail(
          `row group ${g}, column '${name}' declares ${String(m.total_uncompressed_size)} bytes once decompressed (limit ${MAX_PARQUET_CHUNK_BYTES})`,
        );
    });
  });
  if (sum !== numRows) throw fail(`the footer declares ${numRows} rows but its row groups hold ${sum}`);
  return numRows;
}

/**
 * Walk every page header of every column chunk and check its sizes and counts before the decoder sees them:
 * a page size that is negative or runs past its chunk, or a value count out of range, would make the decoder
 * loop or allocate on the file's word.
 */
export async function checkParquetPages(buf: AsyncBuffer, metadata: FileMetaData, label: string): Promise<void> {
  const fail = (msg: string) => new ImportError(`${label}: ${msg}; the file is corrupt`, { file: label });
  for (const [g, rg] of metadata.row_groups.entries()) {
    const rows = num(rg.num_rows);
    for (const [k, c] of rg.columns.entries()) {
      const m = c.meta_data!;
      const name = m.path_in_schema?.join('.') || `#${k}`;
      const start = Math.min(
        ...[
          num(m.data_page_offset),
          m.dictionary_page_offset === undefined ? NaN : num(m.dictionary_page_offset),
        ].filter((x) => Number.isFinite(x) && x > 0),
      );
      const len = num(m.total_compressed_size);
      const bytes = await buf.slice(start, start + len);
      const reader = { view: new DataView(bytes), offset: 0 };
      let values = 0;
      for (let page = 0; reader.offset < len - 1; page++) {
        const where = `row group ${g}, column '${name}', page ${page}`;
        let h: PageHeader;
        try {
          h = parquetHeader(reader);
        } catch (err) {
          throw fail(`${where}: unreadable page header (${(err as Error).message})`);
        }
        const size = num(h.compressed_page_size);
        const raw = num(h.uncompressed_page_size);
        if (!Number.isSafeInteger(size) || size < 0 || reader.offset + size > len)
          throw fail(
            `${where}: page size ${String(h.compressed_page_size)} runs outside its column chunk (${len} bytes)`,
          );
        if (!Number.isSafeInteger(raw) || raw < 0 || raw > MAX_PARQUET_CHUNK_BYTES)
          throw fail(
            `${where}: declares ${String(h.uncompressed_page_size)} bytes once decompressed (limit ${MAX_PARQUET_CHUNK_BYTES})`,
          );
        const n = num(
          h.data_page_header?.num_values ??
            h.data_page_header_v2?.num_values ??
            h.dictionary_page_header?.num_values ??
            0,
        );
        if (!Number.isSafeInteger(n) || n < 0) throw fail(`${where}: invalid value count ${n}`);
        if (h.data_page_header_v2) {
          const r = num(h.data_page_header_v2.num_rows);
          const dl = num(h.data_page_header_v2.definition_levels_byte_length);
          const rl = num(h.data_page_header_v2.repetition_levels_byte_length);
          if (!(r >= 0 && r <= rows) || !(dl >= 0 && rl >= 0 && dl + rl <= size))
            throw fail(`${where}: inconsistent v2 page header`);
        }
        // a value takes at least one bit once decoded from a page of `raw` bytes (plus its levels)
        if (h.type !== 'DICTIONARY_PAGE' && n > Math.max(rows, raw * 8 + 8) * 64)
          throw fail(`${where}: declares ${n} values for ${rows} rows`);
        if (h.type !== 'DICTIONARY_PAGE') values += n;
        reader.offset += size;
      }
      if (values < rows && m.path_in_schema.length === 1 && values !== num(m.num_values))
        throw fail(`row group ${g}, column '${name}': its pages hold ${values} values for ${rows} rows`);
    }
  }
}

async function parseOne(ctx: ParseContext, file: string): Promise<RecordOut[]> {
  const label = ctx.label(file);
  const split = splitFromName(basename(file));
  let buf: AsyncBuffer;
  let numRows: number;
  let metadata;
  try {
    let size: number;
    ({ buf, size } = await openBuffer(file, label));
    try {
      metadata = await parquetMetadataAsync(buf);
    } catch (err) {
      throw new ImportError(`${label}: not a readable Parquet file: ${(err as Error).message}`, {
        file: label,
        cause: err,
      });
    }
    numRows = checkParquetMetadata(metadata, size, label);
    await checkParquetPages(buf, metadata, label);
  } catch (err) {
    if (err instanceof ImportError) throw err;
    throw new ImportError(`${label}: not a readable Parquet file: ${(err as Error).message}`, {
      file: label,
      cause: err,
    });
  }
  const out: RecordOut[] = [];
  let imageColumn = ctx.options.imageColumn;
  for (let start = 0; start < numRows; start += ROW_CHUNK) {
    let rows: Record<string, unknown>[];
    try {
      rows = (await parquetReadObjects({
        file: buf,
        metadata,
        utf8: false,
        rowStart: start,
        rowEnd: Math.min(numRows, start + ROW_CHUNK),
      })) as Record<string, unknown>[];
    } catch (err) {
      throw new ImportError(
        `${label}: cannot decode rows ${start}–${Math.min(numRows, start + ROW_CHUNK) - 1}: ${(err as Error).message}`,
        { file: label, cause: err },
      );
    }
    const want = Math.min(numRows, start + ROW_CHUNK) - start;
    if (rows.length !== want)
      throw new ImportError(
        `${label}: the footer declares ${numRows} rows but rows ${start}–${start + want - 1} decode to ${rows.length}; the file is corrupt`,
        { file: label },
      );
    if (start === 0 && rows.length > 0) {
      const cols = Object.keys(rows[0]);
      if (imageColumn && !cols.includes(imageColumn))
        throw new ImportError(`${label}: image column '${imageColumn}' not found (columns: ${cols.join(', ')})`, {
          file: label,
        });
      imageColumn ??=
        IMAGE_COLUMNS.find((c) => cols.includes(c) && rows.some((r) => r[c] != null)) ??
        cols.find((c) => rows.some((r) => looksLikeImageValue(r[c])));
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
