// Import: parse a source (pure), store its images content-addressed with thumbnails, then insert every
// row in ONE transaction. Either the whole import is stored or nothing is (files it created are removed
// again). The report lists per item what was skipped and why. Items of record files are streamed from a
// scratch file on disk (stage.ts), so memory does not grow with the number of records: what is held is
// one result per image file, the problems, and (on re-import) one digest per existing item.
//
// Importing into a dataset that already has items skips every incoming item that is already there
// (see `alreadyPresentKey` for what "the same" means); those are counted in `alreadyPresent`, not
// stored, and not errors. Importing into a new dataset stores every item, as does an import whose
// records duplicate each other (the linter flags those).
import { createHash } from 'node:crypto';
import { basename, extname, resolve } from 'node:path';
import type { Database } from 'better-sqlite3';
import { nowIso } from '../storage/database';
import { nextItemPosition } from '../storage/items-queries';
import {
  importRowWriter,
  insertImportRecord,
  presentItemTuples,
  setDatasetUpdatedAt,
  setImportItemCount,
} from '../storage/imports-queries';
import { checkAnnotation } from './annotations';
import { dropRedo } from './history';
import { ImageError, removeUnreferenced, storeImage, type StoredImage } from './images';
import { mediaKindOf, storeMedia, type StoredMedia } from './media-store';
import { parseSource, type ParseSourceOptions } from './parse';
import { createDataset, ensureTag, findDataset, nextId, setHighWater } from './rows';
import {
  ImportError,
  formatProblem,
  type Annotation,
  type ImageSource,
  type ImportFormat,
  type ImportProblem,
  type NormalizedItem,
} from './types';

export interface ImportOptions extends ParseSourceOptions {
  /** Target dataset: a name (created when missing) or an id. Default: the source's base name. */
  dataset?: string | number;
  /** Abort (store nothing) when any record has an error. Default false: skip bad records and report them. */
  strict?: boolean;
  /** Called as images are stored. */
  onProgress?: (done: number, total: number) => void;
  /** Images processed at once (default 4). */
  concurrency?: number;
  /** Cancels the import: nothing is stored, files it wrote are removed. */
  signal?: AbortSignal;
  /** Called once the source is read, with the number of items found. */
  onParsed?: (items: number) => void;
  /** Called with the files each stored image created (so a host can remove them if this thread dies). */
  onCreated?: (files: string[]) => void;
  /** Called every few thousand rows while the items are inserted (the insert of a large import takes a while). */
  onInserting?: (done: number, total: number) => void;
}

export interface ImportReport {
  datasetId: number;
  datasetName: string;
  importId: number;
  format: ImportFormat;
  source: string;
  imported: number;
  annotations: number;
  /** Records not imported, each with the reason. */
  skipped: ImportProblem[];
  warnings: ImportProblem[];
  imagesStored: number;
  imagesReused: number;
  /** Items not stored because the dataset already holds the same item (same image, same labels). */
  alreadyPresent: AlreadyPresent[];
}

export interface AlreadyPresent {
  /** The incoming record, e.g. `llava.json[3]`. */
  ref: string;
  /** The item of the dataset that already holds it. */
  itemId: number;
  message: string;
}

export async function importDataset(
  db: Database,
  dataDir: string,
  source: string,
  options: ImportOptions = {},
): Promise<ImportReport> {
  // Records of JSON / JSONL / CSV files stay on disk until they are inserted (stage.ts): the items are read
  // as a stream, twice (images, then the transaction), and only compact per-image results stay in memory.
  const parsed = await parseSource(source, { ...options, tempDir: options.tempDir ?? dataDir, stage: true });
  const created: string[] = [];
  const staged = parsed.staged;
  const items: Iterable<NormalizedItem> = staged ?? parsed.items;
  const itemCount = staged ? staged.count : parsed.items.length;
  try {
    options.onParsed?.(itemCount);
    const problems = parsed.problems.slice();
    if (options.strict) throwIfErrors(problems, source);
    if (itemCount === 0) {
      const errs = problems.filter((p) => p.severity === 'error');
      throw new ImportError(
        errs.length > 0
          ? `${basename(source)}: nothing to import: all ${errs.length} record(s) have errors; first: ${formatProblem(errs[0])}`
          : `${basename(source)}: nothing to import (no items found)`,
        { file: basename(source), problems },
      );
    }
    // Images: hash, validate, copy + thumbnail (outside the transaction; content-addressed, so harmless if we abort).
    // Results are kept per image file (its path) or per embedded image (its source object), never per item.
    const images = new Map<string | ImageSource, StoredImage | StoredMedia>();
    const failed = new Map<string | ImageSource, ImageError>();
    const keyOf = (src: ImageSource) => ('path' in src ? src.path : src);
    let failedItems = 0;
    let stored = 0;
    let reused = 0;
    const withImage = staged ? staged.withImage : parsed.items.filter((it) => it.image).length;
    let done = 0;
    const iter = items[Symbol.iterator]();
    // The first failure that is not about one image (disk full, store not writable, cancelled) stops every
    // worker before its next image, and the import waits for all of them to settle before removing what
    // they wrote: nothing is written after the failure, nothing written is left behind.
    let fatal: { err: unknown } | undefined;
    // Records that name the same file (kept apart with groupByImage off, or in several record files) read,
    // hash and decode it once: later ones find its result (or its error), those meanwhile wait for it.
    const inFlight = new Map<string, Promise<Awaited<ReturnType<typeof storeItemFile>>>>();
    const worker = async () => {
      while (!fatal) {
        const n = iter.next();
        if (n.done) return;
        const it = n.value;
        if (!it.image) continue;
        try {
          options.signal?.throwIfAborted();
          const src = it.image;
          const key = keyOf(src);
          const known = failed.get(key);
          if (known) throw known;
          if (images.has(key)) reused++;
          else {
            let pending = 'path' in src ? inFlight.get(src.path) : undefined;
            const first = !pending;
            if (!pending) {
              pending = storeItemFile(dataDir, src);
              if ('path' in src) inFlight.set(src.path, pending);
            }
            let r;
            try {
              r = await pending;
            } catch (err) {
              if (first && err instanceof ImageError) failed.set(key, err);
              throw err;
            } finally {
              if (first && 'path' in src) inFlight.delete(src.path);
            }
            if (first) {
              if (r.warning)
                problems.push({
                  ref: it.sourcePath,
                  field: r.image.media?.kind ?? 'image',
                  message: `${r.warning} (${src.original})`,
                  severity: 'warning',
                });
              for (const f of r.created) created.push(f);
              if (r.created.length) options.onCreated?.(r.created);
            }
            if (first && r.isNew) stored++;
            else reused++;
            images.set(key, r.image);
          }
        } catch (err) {
          if (!(err instanceof ImageError)) {
            fatal ??= { err };
            return;
          }
          failedItems++;
          problems.push({
            ref: it.sourcePath,
            field: mediaKindOf(it.image, 'bytes' in it.image ? it.image.bytes : undefined) ?? 'image',
            message: `${err.message} (${it.image.original})`,
            severity: 'error',
          });
        }
        options.onProgress?.(++done, withImage);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
    } finally {
      iter.return?.();
    }
    if (fatal) throw fatal.err;
    options.signal?.throwIfAborted();
    if (options.strict) throwIfErrors(problems, source);
    if (itemCount - failedItems === 0) {
      throw new ImportError(
        `${basename(source)}: nothing to import: every item was skipped; first: ${formatProblem(problems.find((p) => p.severity === 'error')!)}`,
        {
          file: basename(source),
          problems,
        },
      );
    }
    const imageOf = (it: NormalizedItem) => (it.image ? images.get(keyOf(it.image)) : undefined);
    const isFailed = (it: NormalizedItem) => !!it.image && failed.has(keyOf(it.image));
    // the images the dataset's items are compared with (and '' when some item has none)
    const hashes = new Set<string>();
    for (const im of images.values()) hashes.add(im.hash);
    if (itemCount > withImage) hashes.add('');
    const incoming = { items, count: itemCount, imageOf, isFailed, hashes };
    const report = db.transaction(() => store(db, source, parsed.format, options, incoming, problems)).immediate();
    return { ...report, imagesStored: stored, imagesReused: reused };
  } catch (err) {
    removeUnreferenced(db, created);
    if (err instanceof ImportError) throw err;
    if (options.signal?.aborted)
      throw new ImportError(`${basename(source)}: import cancelled; nothing was stored`, {
        file: basename(source),
        cause: err,
      });
    const code = (err as { code?: string })?.code;
    if (code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_WRITE') {
      throw new ImportError(
        `${basename(source)}: import failed: cannot write the database ${db.name}: ${(err as Error).message}; nothing was stored`,
        { file: basename(source), cause: err },
      );
    }
    throw new ImportError(`${basename(source)}: import failed: ${(err as Error).message}`, {
      file: basename(source),
      cause: err,
    });
  } finally {
    parsed.cleanup();
  }
}

function throwIfErrors(problems: ImportProblem[], source: string): void {
  const errs = problems.filter((p) => p.severity === 'error');
  if (errs.length === 0) return;
  const more = errs.length > 1 ? ` (and ${errs.length - 1} more)` : '';
  throw new ImportError(`${basename(source)}: ${formatProblem(errs[0])}${more}`, { file: basename(source), problems });
}

/**
 * Inserts the items in one pass over them (they may be streamed from disk): each is checked, compared with
 * the dataset's items and inserted as it comes. Ids and positions are taken in order from the first free
 * ones; the id high-water marks and the import's item count are set at the end, in the same transaction.
 */
function store(
  db: Database,
  source: string,
  format: ImportFormat,
  options: ImportOptions,
  incoming: {
    items: Iterable<NormalizedItem>;
    count: number;
    imageOf: (it: NormalizedItem) => (StoredImage & { media?: StoredMedia['media'] }) | undefined;
    isFailed: (it: NormalizedItem) => boolean;
    /** The incoming items' image hashes ('' for none). */
    hashes: Set<string>;
  },
  problems: ImportProblem[],
): Omit<ImportReport, 'imagesStored' | 'imagesReused'> {
  const now = nowIso();
  const target = options.dataset ?? basename(resolve(source), extname(source));
  let ds = findDataset(db, target);
  if (!ds) {
    if (typeof target === 'number') throw new ImportError(`dataset ${target} does not exist`);
    const name = target.trim();
    if (!name || name.length > 100 || /[\u0000-\u001f\u007f]/.test(name))
      throw new ImportError(`invalid dataset name '${name}'`);
    ds = { id: createDataset(db, name), name };
  }
  const datasetId = ds.id;
  const present = presentItems(db, datasetId, incoming.hashes);
  const { imageOf, isFailed } = incoming;
  const alreadyPresent: AlreadyPresent[] = [];
  const skipped = problems.filter((p) => p.severity === 'error');
  const warnings = problems.filter((p) => p.severity === 'warning');
  const optionsJson = JSON.stringify({
    format: options.format,
    imageRoot: options.imageRoot,
    textColumn: options.textColumn,
    imageColumn: options.imageColumn,
    strict: options.strict,
    groupByImage: options.groupByImage,
  });
  const importId = insertImportRecord(db, {
    datasetId,
    source: resolve(source),
    format,
    optionsJson,
    skippedCount: new Set(skipped.map((p) => p.ref)).size,
    problemsJson: JSON.stringify(problems.slice(0, 10_000)),
    createdAt: now,
  });
  const basePos = nextItemPosition(db, datasetId);
  const firstItem = nextId(db, 'items');
  const firstAnn = nextId(db, 'annotations');
  const write = importRowWriter(db);
  const tagIds = new Map<string, number>();
  let annId = firstAnn;
  let i = 0;
  let seen = 0;
  for (const it of incoming.items) {
    if (seen++ % 5000 === 0) options.onInserting?.(seen - 1, incoming.count);
    if (isFailed(it)) continue;
    it.annotations = it.annotations.map((a, k) => checkAnnotation(a, `${it.sourcePath}: annotations[${k}]`));
    const img = imageOf(it);
    if (present) {
      const hash = img?.hash ?? '';
      const same = present.byKey.get(keyDigest(alreadyPresentKey(hash, it.annotations)));
      if (same !== undefined) {
        alreadyPresent.push({ ref: it.sourcePath, itemId: same, message: `already in this dataset (item ${same})` });
        continue;
      }
      const withImage = it.annotations.length === 0 && hash ? present.byImage.get(hash) : undefined;
      if (withImage !== undefined) {
        alreadyPresent.push({
          ref: it.sourcePath,
          itemId: withImage,
          message: `no labels, and its image is already in this dataset (item ${withImage})`,
        });
        continue;
      }
    }
    const id = firstItem + i;
    const media = img?.media;
    if (media)
      write.item(
        id,
        datasetId,
        null,
        null,
        img.width || null,
        img.height || null,
        img.bytes,
        it.image?.original ?? it.sourcePath,
        it.split ?? null,
        basePos + i,
        now,
        now,
        media.kind,
        img.hash,
        img.ext,
        JSON.stringify(media.meta),
      );
    else
      write.item(
        id,
        datasetId,
        img?.hash ?? null,
        img?.ext ?? null,
        img?.width ?? null,
        img?.height ?? null,
        img?.bytes ?? null,
        it.image?.original ?? it.sourcePath,
        it.split ?? null,
        basePos + i,
        now,
        now,
        null,
        null,
        null,
        null,
      );
    it.annotations.forEach((a, k) => write.annotation(annId++, id, a.kind, JSON.stringify(a.data), k, now, now));
    write.source(id, importId, it.sourcePath, it.image?.original ?? null);
    for (const t of it.tags ?? []) {
      let tid = tagIds.get(t);
      if (tid === undefined) tagIds.set(t, (tid = ensureTag(db, datasetId, t)[0]));
      write.tag(id, tid);
    }
    i++;
  }
  if (i === 0) {
    // everything was already there: the import is recorded, the dataset and its history are untouched
    return {
      datasetId,
      datasetName: ds.name,
      importId,
      format,
      source: resolve(source),
      imported: 0,
      annotations: 0,
      skipped,
      warnings,
      alreadyPresent,
    };
  }
  setHighWater(db, 'items', firstItem + i - 1);
  if (annId > firstAnn) setHighWater(db, 'annotations', annId - 1);
  setImportItemCount(db, importId, i);
  dropRedo(db, datasetId);
  setDatasetUpdatedAt(db, datasetId, now);
  return {
    datasetId,
    datasetName: ds.name,
    importId,
    format,
    source: resolve(source),
    imported: i,
    annotations: annId - firstAnn,
    skipped,
    warnings,
    alreadyPresent,
  };
}

/** An item's file: an audio clip or a video (by its name, or an embedded file's bytes) goes to the media store. */
async function storeItemFile(
  dataDir: string,
  src: ImageSource,
): Promise<{
  image: StoredImage & { media?: StoredMedia['media'] };
  created: string[];
  isNew: boolean;
  warning?: string;
}> {
  const kind = mediaKindOf(src, 'bytes' in src ? src.bytes : undefined);
  return kind ? storeMedia(dataDir, src, kind) : storeImage(dataDir, src);
}

/**
 * What makes an incoming item "already in this dataset": the same image content (sha256; '' for an item
 * without image) and the same labels, compared as a multiset (order does not matter) of
 * (kind, text fields) after normalizing each text: Unicode NFC, CRLF/CR → LF, leading/trailing
 * whitespace trimmed. Case, inner whitespace and punctuation count; a chat's messages count in order with
 * their roles. Tags, split and source path are not compared (the item already there keeps its own).
 */
export function alreadyPresentKey(imageHash: string, annotations: readonly Annotation[]): string {
  const norm = (t: string) => t.normalize('NFC').replace(/\r\n?/g, '\n').trim();
  const sigs = annotations.map((a) => {
    switch (a.kind) {
      case 'caption':
        return JSON.stringify(['caption', norm(a.data.text)]);
      case 'qa':
        return JSON.stringify(['qa', norm(a.data.question), norm(a.data.answer)]);
      case 'chat':
        return JSON.stringify(['chat', ...a.data.messages.map((m) => [m.role, norm(m.content)])]);
    }
  });
  return `${imageHash}\n${sigs.sort().join('\n')}`;
}

/** A key's sha256: the dataset's items are held as digests, not as their (long) label texts. */
function keyDigest(key: string): string {
  return createHash('sha256').update(key).digest('base64');
}

/**
 * The dataset's items as `alreadyPresentKey` (its digest) → lowest item id, and image hash → lowest item id, read in
 * one query. Only items whose image is among the incoming ones (or without image, when some incoming item
 * has none) are keyed. Undefined when the dataset has no items.
 */
function presentItems(
  db: Database,
  datasetId: number,
  hashes: Set<string>,
): { byKey: Map<string, number>; byImage: Map<string, number> } | undefined {
  const rows = presentItemTuples(db, datasetId) as IterableIterator<
    [number, string | null, Annotation['kind'] | null, string | null]
  >;
  const byKey = new Map<string, number>();
  const byImage = new Map<string, number>();
  let any = false;
  let cur: { id: number; hash: string; anns: Annotation[] } | undefined;
  const flush = () => {
    if (!cur) return;
    const key = keyDigest(alreadyPresentKey(cur.hash, cur.anns));
    if (!byKey.has(key)) byKey.set(key, cur.id);
  };
  for (const [id, hash, kind, data] of rows) {
    any = true;
    const h = hash ?? '';
    if (!hashes.has(h)) continue;
    if (cur?.id !== id) {
      flush();
      cur = { id, hash: h, anns: [] };
      if (h && !byImage.has(h)) byImage.set(h, id);
    }
    if (kind !== null && data !== null) cur.anns.push({ kind, data: JSON.parse(data) } as Annotation);
  }
  flush();
  return any ? { byKey, byImage } : undefined;
}
