// The parse/normalize layer's entry: detect a source's format (or take the caller's), read it into
// normalized items plus per-item problems. Touches no database. Zips are extracted into a temporary
// folder, which `cleanup()` removes.
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { ParseContext, assemble, type ParseOptions, type RecordOut } from './formats/common';
import { conversationKind, parseConversationRecords } from './formats/conversation';
import { parseFolder } from './formats/folder';
import { findPidRecordFiles, isPidRecordFile, parseIconVqa } from './formats/icon-vqa';
import { findMetadataFiles, parseImagefolder } from './formats/imagefolder';
import { parseParquetFiles } from './formats/parquet';
import { NO_LABELS_WARNING, findSampleFolders, parseVqaFolders, parseVqaRecords } from './formats/vqa';
import {
  fileKind,
  jsonRecords,
  readCsvRecords,
  removeTree,
  splitFromName,
  walkFiles,
  type JsonRecord,
  type SkippedEntry,
} from './read';
import { RecordStage } from './stage';
import { archiveRoot, extractZip, type ZipLimits } from './zip';
import {
  IMPORT_FORMATS,
  ImportError,
  isImageName,
  isItemFileName,
  type ImportFormat,
  type ImportProblem,
  type ParseResult,
} from './types';

export interface ParseSourceOptions extends ParseOptions {
  /** Force a format instead of detecting it. For a zip, the format of its contents. */
  format?: ImportFormat;
  /** Where a zip is extracted (a temporary folder is made inside). Defaults to the OS temp folder. */
  tempDir?: string;
  zipLimits?: Partial<ZipLimits>;
  /**
   * Keep the records of JSON / JSONL / CSV files on disk (`staged`, see stage.ts; a scratch folder in
   * `tempDir`) instead of in `items`, so a million records do not sit in the heap. `cleanup()` removes it.
   */
  stage?: boolean;
}

export interface ParsedSource extends ParseResult {
  /** The folder paths are resolved against. */
  root: string;
  /** Set when the source was a zip archive. */
  archive?: string;
  cleanup(): void;
}

const JSON_EXT = /\.(json|jsonl|ndjson)$/i;

export async function parseSource(source: string, options: ParseSourceOptions = {}): Promise<ParsedSource> {
  const path = resolve(source);
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new ImportError(`${source}: not found`, { file: source });
  }
  if (!st.isFile() && !st.isDirectory())
    throw new ImportError(
      `${source}: not a regular file (${fileKind(st)}); only regular files and folders are imported`,
      { file: basename(source) },
    );
  if (options.format && !IMPORT_FORMATS.includes(options.format)) {
    throw new ImportError(`unknown format '${options.format}' (expected one of ${IMPORT_FORMATS.join(', ')})`);
  }
  if (st.isFile() && (options.format === 'zip' || /\.zip$/i.test(path))) {
    const tmp = mkdtempSync(join(options.tempDir ?? tmpdir(), '.lenslab-unzip-'));
    const cleanup = () => {
      try {
        removeTree(tmp);
      } catch {
        // left for datasets.cleanImages, which removes stale extraction folders
      }
    };
    try {
      extractZip(path, tmp, options.zipLimits);
      const root = archiveRoot(tmp);
      const inner = await parsePath(root, {
        ...options,
        format: options.format === 'zip' ? undefined : options.format,
      });
      inner.problems.forEach((p) => (p.ref = `${basename(path)}:${p.ref}`));
      inner.items.forEach((it) => (it.sourcePath = `${basename(path)}:${it.sourcePath}`));
      if (inner.staged) inner.staged.refPrefix = `${basename(path)}:`;
      const staged = inner.staged;
      return { ...inner, root, archive: path, cleanup: () => (staged?.close(), cleanup()) };
    } catch (err) {
      cleanup();
      if (err instanceof ImportError)
        throw new ImportError(`${basename(path)}: ${err.message}`, {
          file: basename(path),
          problems: err.problems,
          cause: err,
        });
      throw err;
    }
  }
  const res = await parsePath(path, options);
  return { ...res, root: st.isDirectory() ? path : dirname(path), cleanup: () => res.staged?.close() };
}

async function parsePath(path: string, options: ParseSourceOptions): Promise<ParseResult> {
  const isDir = statSync(path).isDirectory();
  const root = isDir ? path : dirname(path);
  const ctx = new ParseContext(root, options);
  const forced = options.format;
  if (!isDir) {
    const name = basename(path);
    if (forced === 'parquet' || (!forced && /\.parquet$/i.test(name))) return parseParquetFiles(ctx, [path]);
    if (forced === 'imagefolder' || (!forced && /^metadata\.(jsonl|csv|json)$/i.test(name)))
      return parseImagefolder(ctx, [
        ctx.label(path),
        ...walkFiles(root).filter((f) => f !== ctx.label(path) && isItemFileName(f)),
      ]);
    // a pid record file (icon-VQA layout) names image folders, not images: they are looked up beside it
    if (forced === 'icon-vqa' || (!forced && isPidRecordFile(path, name)))
      return parseIconVqa(ctx, walkFiles(root), [path]);
    if (/\.csv$/i.test(name)) return parseRecordFiles(ctx, [path], forced, stageIn(options));
    if (JSON_EXT.test(name)) return parseRecordFiles(ctx, [path], forced, stageIn(options));
    if (forced === 'folder' || forced === 'vqa-folders') return parsePath(root, options);
    if (isImageName(name))
      throw new ImportError(`${name}: a single image is not a dataset; import the folder that holds it`, {
        file: name,
      });
    throw new ImportError(
      `${name}: unrecognized file type (expected a folder, .zip, .json, .jsonl, .csv or .parquet)`,
      { file: name },
    );
  }
  const skipped: SkippedEntry[] = [];
  const files = walkFiles(path, { skipped });
  const pidFiles = forced === undefined || forced === 'icon-vqa' ? findPidRecordFiles(path, files) : [];
  const format =
    forced ?? (pidFiles.length > 0 && findMetadataFiles(files).length === 0 ? 'icon-vqa' : detectDirectory(files));
  // links and special files named like dataset files are said to be left out, and why
  for (const e of skipped)
    if (isItemFileName(e.rel) || /\.(json|jsonl|ndjson|csv|parquet|txt)$/i.test(e.rel))
      ctx.warn(e.rel, `not imported: ${e.reason}`);
  switch (format) {
    case 'imagefolder':
      if (findMetadataFiles(files).length === 0)
        throw new ImportError(`${basename(path)}: no metadata.jsonl or metadata.csv found`);
      return parseImagefolder(ctx, files);
    case 'parquet': {
      const pq = files.filter((f) => /\.parquet$/i.test(f));
      if (pq.length === 0) throw new ImportError(`${basename(path)}: no .parquet files found`);
      return parseParquetFiles(
        ctx,
        pq.map((f) => join(path, f)),
      );
    }
    case 'vqa-folders':
      if (findSampleFolders(files).length === 0)
        throw new ImportError(`${basename(path)}: no sample folders with a data.json found`);
      return parseVqaFolders(ctx, files);
    case 'llava':
    case 'messages':
    case 'vqa': {
      const top = topRecordFiles(files);
      if (top.length === 0)
        throw new ImportError(`${basename(path)}: no .json or .jsonl file found at the top of the folder`);
      return parseRecordFiles(
        ctx,
        top.map((f) => join(path, f)),
        forced,
        stageIn(options),
      );
    }
    case 'folder':
      if (!files.some(isItemFileName))
        throw new ImportError(`${basename(path)}: no images, audio or video files found`);
      return parseFolder(ctx, files);
    case 'icon-vqa':
      if (pidFiles.length === 0)
        throw new ImportError(
          `${basename(path)}: no .jsonl file of {pid, question, answer} records found (at the top of the folder or one folder down)`,
        );
      return parseIconVqa(
        ctx,
        files,
        pidFiles.map((f) => join(path, f)),
        { samples: true },
      );
    case 'zip':
      throw new ImportError(`${basename(path)}: is a folder, not a zip archive`);
  }
}

/** Where record files are staged on disk (undefined: kept in memory). */
function stageIn(options: ParseSourceOptions): string | undefined {
  return options.stage ? (options.tempDir ?? tmpdir()) : undefined;
}

function topRecordFiles(files: string[]): string[] {
  return files.filter(
    (f) =>
      !f.includes('/') &&
      (JSON_EXT.test(f) || /\.csv$/i.test(f)) &&
      !/^(metadata|dataset_info|dataset_infos|config|state)\.(json|jsonl|csv)$/i.test(f),
  );
}

/** The format of a folder from the files it holds. */
export function detectDirectory(files: string[]): ImportFormat {
  if (findMetadataFiles(files).length > 0) return 'imagefolder';
  if (files.some((f) => /\.parquet$/i.test(f))) return 'parquet';
  if (topRecordFiles(files).some((f) => JSON_EXT.test(f))) return 'llava';
  if (findSampleFolders(files).length > 0) return 'vqa-folders';
  if (files.some(isItemFileName)) return 'folder';
  throw new ImportError(
    'no images or dataset files found (expected images, metadata.jsonl/csv, .json/.jsonl, .parquet or sample folders with data.json)',
  );
}

/** Records looked at to decide a file's kind (conversation, or image + labels) before it is streamed. */
const KIND_SAMPLE = 1000;

/** Append without spreading (spreading a large array into push overflows the call stack). */
function append<T>(to: T[], from: readonly T[], start = 0, end = from.length): void {
  for (let i = start; i < end; i++) to.push(from[i]);
}

/**
 * JSON / JSONL / CSV record files: each record is routed by its shape (conversation, or image + labels).
 * JSON arrays and JSON Lines are streamed: a file's kind is decided from its first records, then each
 * record is parsed as it is read, so only the parsed records are held, never the raw documents; with
 * `stageDir` not even those: they go to a RecordStage on disk as they are parsed.
 */
function parseRecordFiles(ctx: ParseContext, files: string[], forced?: ImportFormat, stageDir?: string): ParseResult {
  const stage = stageDir ? new RecordStage(stageDir, { groupByImage: ctx.options.groupByImage }) : undefined;
  try {
    return readRecordFiles(ctx, files, forced, stage);
  } catch (err) {
    stage?.close();
    throw err;
  }
}

interface FileRecords {
  file: string;
  /** Its records (when not staged). */
  got: RecordOut[];
  count: number;
  /** Records with annotations. */
  withLabels: number;
  /** Records with annotations or a `lenslab` field. */
  labeledOrMeta: number;
  problemsFrom: number;
  problemsTo: number;
}

function readRecordFiles(
  ctx: ParseContext,
  files: string[],
  forced: ImportFormat | undefined,
  stage: RecordStage | undefined,
): ParseResult {
  const perFile: FileRecords[] = [];
  let format: ImportFormat | undefined =
    forced === 'llava' || forced === 'messages' || forced === 'vqa' ? forced : undefined;
  for (const file of files) {
    const problemsFrom = ctx.problems.length;
    const label = ctx.label(file);
    const source: Iterable<JsonRecord> = /\.csv$/i.test(file)
      ? readCsvRecords(file, label, ctx.problems)
      : jsonRecords(file, label, ctx.problems);
    const split = splitFromName(basename(file));
    const it = source[Symbol.iterator]();
    const head: JsonRecord[] = [];
    let done = false;
    while (head.length < KIND_SAMPLE) {
      const n = it.next();
      if (n.done) {
        done = true;
        break;
      }
      head.push(n.value);
    }
    const convCount = head.filter((r) => conversationKind(r.value)).length;
    const kind: ImportFormat =
      forced === 'llava' || forced === 'messages' || forced === 'vqa'
        ? forced
        : convCount * 2 >= head.length && convCount > 0
          ? conversationKind(head.find((r) => conversationKind(r.value))!.value)!
          : 'vqa';
    format ??= kind;
    const f: FileRecords = {
      file,
      got: [],
      count: 0,
      withLabels: 0,
      labeledOrMeta: 0,
      problemsFrom,
      problemsTo: problemsFrom,
    };
    const index = perFile.length;
    const parse = (batch: JsonRecord[]) => {
      const out =
        kind === 'vqa' ? parseVqaRecords(ctx, file, batch, split) : parseConversationRecords(ctx, file, batch, split);
      for (const r of out) {
        f.count++;
        if (r.annotations.length > 0) f.withLabels++;
        if (r.annotations.length > 0 || r.meta) f.labeledOrMeta++;
      }
      if (stage) stage.add(index, out);
      else append(f.got, out);
    };
    parse(head);
    if (!done) {
      let batch: JsonRecord[] = [];
      for (let n = it.next(); !n.done; n = it.next()) {
        batch.push(n.value);
        if (batch.length >= KIND_SAMPLE) {
          parse(batch);
          batch = [];
        }
      }
      parse(batch);
    }
    f.problemsTo = ctx.problems.length;
    perFile.push(f);
  }
  // A folder with several annotation files may also hold a side file whose records name images but carry
  // no labels at all (e.g. the demo's scenes.jsonl: ground-truth objects). When another file of the same
  // folder has labels, such a file is left out with ONE warning instead of an unlabeled-item warning per
  // record. Alone (or when no file has labels) it imports as before: unlabeled items, a warning each.
  const unlabeledOnly = (f: FileRecords) =>
    f.count > 0 &&
    f.labeledOrMeta === 0 &&
    ctx.problems
      .slice(f.problemsFrom, f.problemsTo)
      .every((p) => p.severity === 'warning' && p.message === NO_LABELS_WARNING);
  const ignored =
    perFile.length > 1 && perFile.some((f) => f.withLabels > 0)
      ? new Set(perFile.filter(unlabeledOnly))
      : new Set<FileRecords>();
  const records: RecordOut[] = [];
  const problems: ImportProblem[] = [];
  let at = 0;
  perFile.forEach((f, index) => {
    append(problems, ctx.problems, at, f.problemsFrom);
    if (ignored.has(f)) {
      const label = ctx.label(f.file);
      problems.push({
        ref: label,
        message: `not imported: none of its ${f.count} record(s) has labels (question/answer, caption, text or conversation fields); the labels come from the other annotation files`,
        severity: 'warning' as const,
      });
      stage?.drop(index);
    } else {
      append(problems, ctx.problems, f.problemsFrom, f.problemsTo);
      append(records, f.got);
    }
    at = f.problemsTo;
  });
  append(problems, ctx.problems, at);
  if (stage) {
    stage.finish();
    return { format: format ?? 'vqa', items: [], problems, staged: stage };
  }
  return { format: format ?? 'vqa', items: assemble(records, { groupByImage: ctx.options.groupByImage }), problems };
}
