// File reading helpers shared by the importers: JSON / JSONL / CSV with clear, file-named errors,
// and a directory walk that skips hidden files and never follows links out of the tree.
//
// Record files are untrusted: they are opened only when they are regular files (a FIFO or device would
// block or never end), JSON arrays and JSON Lines are streamed record by record so memory stays bounded
// by the largest record (itself limited), and bytes that are not UTF-8 become a warning naming the offset.
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { basename, join } from 'node:path';
import { ImportError, type ImportProblem } from './types';

/** Largest JSON/JSONL/CSV file read whole (bytes). JSON arrays and JSON Lines are streamed instead. */
export const MAX_TEXT_FILE_BYTES = 512 * 1024 * 1024;
/** Largest single record: one JSON Lines line, one element of a JSON array (characters). */
export const MAX_RECORD_CHARS = 16 * 1024 * 1024;
/** Largest CSV field (characters). */
export const MAX_CSV_FIELD_CHARS = 4 * 1024 * 1024;
/** Deepest nesting inside one streamed JSON record. */
export const MAX_RECORD_DEPTH = 64;
/** Deepest folder nesting a walk descends into. */
export const MAX_FOLDER_DEPTH = 64;

const CHUNK_BYTES = 4 * 1024 * 1024;

/** What a non-regular file is, for messages. */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a folder';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * Open `file` for reading only when it is a regular file. The open itself never blocks: O_NONBLOCK keeps a
 * FIFO without writer from hanging the open, and the descriptor is checked with fstat before any read.
 */
export function openRegularFile(file: string, label = basename(file)): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw new ImportError(`${label}: cannot read: ${(err as Error).message}`, { file: label, cause: err });
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new ImportError(`${label}: not a regular file (${fileKind(st)}); only regular files are read`, {
      file: label,
    });
  }
  return { fd, size: st.size };
}

/** The bytes of a regular file, refusing files above `maxBytes` before reading them. */
export function readRegularFile(
  file: string,
  label = basename(file),
  maxBytes = MAX_TEXT_FILE_BYTES,
  what = 'file',
): Buffer {
  const { fd, size } = openRegularFile(file, label);
  try {
    if (size > maxBytes)
      throw new ImportError(`${label}: ${what} is too large (${size} bytes; limit ${maxBytes})`, { file: label });
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return off === size ? buf : buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/** Offset of the first byte that breaks UTF-8 in `b` (or -1). Only called once a chunk is known to be invalid. */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (n === 0 || i + n > b.length) return i;
    for (let k = 1; k < n; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    i += n;
  }
  return -1;
}

/** Where the UTF-8 check found its first bad byte (-1 when the text is valid). */
export interface TextCheck {
  invalidAt: number;
}

export function utf8Warning(label: string, at: number): ImportProblem {
  return {
    ref: label,
    message: `not valid UTF-8 (first bad byte at offset ${at}; Latin-1 or another legacy encoding?): undecodable bytes were replaced by U+FFFD; save the file as UTF-8`,
    severity: 'warning',
  };
}

/** The text of a regular file in chunks of whole characters, checking UTF-8 as it goes (BOM dropped). */
export function* textChunks(file: string, label: string, check: TextCheck): Generator<string> {
  const { fd } = openRegularFile(file, label);
  check.invalidAt = -1;
  try {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES + 4);
    let carry = 0; // bytes of an incomplete character kept at the front of buf
    let pos = 0; // file offset of buf[0]
    let first = true;
    for (;;) {
      const n = readSync(fd, buf, carry, CHUNK_BYTES, null);
      const end = carry + n;
      if (end === 0) break;
      let cut = end;
      if (n > 0) {
        // keep a trailing incomplete UTF-8 sequence for the next read
        for (let k = 1; k <= 3 && end - k >= 0; k++) {
          const c = buf[end - k];
          if ((c & 0xc0) === 0x80) continue;
          const len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
          if (len > k) cut = end - k;
          break;
        }
      }
      const part = buf.subarray(0, cut);
      if (check.invalidAt < 0 && !isUtf8(part)) check.invalidAt = pos + firstInvalidUtf8(part);
      let s = part.toString('utf8');
      if (first && s.charCodeAt(0) === 0xfeff) s = s.slice(1);
      first = false;
      if (s) yield s;
      buf.copy(buf, 0, cut, end);
      carry = end - cut;
      pos += cut;
      if (n === 0) {
        if (carry === 0) break;
        // an incomplete character at the very end: decoded (replaced) as it is
        if (check.invalidAt < 0) check.invalidAt = pos;
        yield buf.subarray(0, carry).toString('utf8');
        break;
      }
    }
  } finally {
    closeSync(fd);
  }
}

export function readTextFile(file: string, label = basename(file), check?: TextCheck): string {
  const b = readRegularFile(file, label);
  if (check) check.invalidAt = isUtf8(b) ? -1 : firstInvalidUtf8(b);
  let s = b.toString('utf8');
  if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
  return s;
}

/** Parse a whole JSON document; a syntax error becomes an ImportError naming the file and position. */
export function parseJsonText(s: string, label: string): unknown {
  try {
    return JSON.parse(s);
  } catch (err) {
    throw new ImportError(`${label}: invalid JSON: ${(err as Error).message}`, { file: label, cause: err });
  }
}

export interface JsonRecord {
  ref: string;
  value: unknown;
}

/**
 * Records of a `.json` (array of objects, or an object with one array field such as `data`)
 * or `.jsonl` file (one object a line). Bad JSONL lines become problems; a broken `.json` throws.
 */
export function readJsonRecords(file: string, label: string, problems: ImportProblem[]): JsonRecord[] {
  const out: JsonRecord[] = [];
  for (const r of jsonRecords(file, label, problems)) out.push(r);
  return out;
}

/** `readJsonRecords` one record at a time: a JSON array or JSON Lines file is never held whole. */
export function* jsonRecords(file: string, label: string, problems: ImportProblem[]): Generator<JsonRecord> {
  const lower = label.toLowerCase();
  const looksJsonl = lower.endsWith('.jsonl') || lower.endsWith('.ndjson');
  const check: TextCheck = { invalidAt: -1 };
  if (looksJsonl) yield* jsonl(textChunks(file, label, check), label, problems);
  else if (firstChar(file, label) === '[') yield* jsonArray(textChunks(file, label, check), label, problems);
  else {
    const s = readTextFile(file, label, check);
    let doc: unknown;
    try {
      doc = JSON.parse(s);
    } catch (err) {
      // Some ".json" files are really JSON Lines: several objects, one per line.
      const lines = s.split('\n').filter((l) => l.trim() !== '');
      if (lines.length > 1 && lines.every((l) => l.trimStart().startsWith('{'))) {
        yield* jsonl([s], label, problems);
        if (check.invalidAt >= 0) problems.push(utf8Warning(label, check.invalidAt));
        return;
      }
      throw new ImportError(`${label}: invalid JSON: ${(err as Error).message}`, { file: label, cause: err });
    }
    const arr = recordsArray(doc);
    if (!arr)
      throw new ImportError(
        `${label}: expected a JSON array of records (or an object holding one), got ${kindOf(doc)}`,
        { file: label },
      );
    for (let i = 0; i < arr.records.length; i++)
      yield { ref: `${label}${arr.key ? `.${arr.key}` : ''}[${i}]`, value: arr.records[i] };
  }
  if (check.invalidAt >= 0) problems.push(utf8Warning(label, check.invalidAt));
}

/** The first non-blank character of a file (after a BOM), read from its first bytes only. */
function firstChar(file: string, label: string): string {
  const { fd } = openRegularFile(file, label);
  try {
    const b = Buffer.alloc(4096);
    const n = readSync(fd, b, 0, b.length, 0);
    const s = b
      .subarray(0, n)
      .toString('utf8')
      .replace(/^\uFEFF/, '');
    return /\S/.exec(s)?.[0] ?? '';
  } finally {
    closeSync(fd);
  }
}

function tooLarge(what: string, n: number, limit: number): string {
  return `${what} is too large (${n} characters; limit ${limit})`;
}

function* jsonl(chunks: Iterable<string>, label: string, problems: ImportProblem[]): Generator<JsonRecord> {
  let parts: string[] = [];
  let len = 0;
  let lineNo = 1;
  const finish = function* (tail: string): Generator<JsonRecord> {
    const ref = `${label}:${lineNo}`;
    const total = len + tail.length;
    if (total > MAX_RECORD_CHARS)
      problems.push({ ref, message: tooLarge('line', total, MAX_RECORD_CHARS), severity: 'error' });
    else {
      const line = (parts.length ? parts.join('') + tail : tail).trim();
      if (line !== '') {
        try {
          yield { ref, value: JSON.parse(line) };
        } catch (err) {
          problems.push({ ref, message: `invalid JSON: ${(err as Error).message}`, severity: 'error' });
        }
      }
    }
    parts = [];
    len = 0;
    lineNo++;
  };
  for (const c of chunks) {
    let at = 0;
    for (;;) {
      const nl = c.indexOf('\n', at);
      if (nl < 0) {
        const rest = c.length - at;
        if (len + rest > MAX_RECORD_CHARS)
          parts = []; // keep counting, stop keeping
        else parts.push(c.slice(at));
        len += rest;
        break;
      }
      yield* finish(c.slice(at, nl));
      at = nl + 1;
    }
  }
  if (len > 0 || parts.length) yield* finish('');
}

/**
 * The elements of a top-level JSON array, each parsed on its own. The scanner tracks only strings and
 * bracket depth; JSON.parse checks each element, so a syntax error still names the record.
 */
function* jsonArray(chunks: Iterable<string>, label: string, problems: ImportProblem[]): Generator<JsonRecord> {
  const bad = (msg: string) => new ImportError(`${label}: invalid JSON: ${msg}`, { file: label });
  let depth = 0;
  let inStr = false;
  let esc = false;
  let closed = false;
  let index = 0;
  let collecting = false;
  let parts: string[] = [];
  let len = 0;
  let over: string | undefined;
  let since = true; // no element since '[' or the last ','
  const emit = (tail: string): JsonRecord | undefined => {
    const ref = `${label}[${index}]`;
    const text = parts.length ? parts.join('') + tail : tail;
    const total = len + tail.length;
    parts = [];
    len = 0;
    collecting = false;
    since = false;
    index++;
    if (over || total > MAX_RECORD_CHARS) {
      problems.push({
        ref,
        message:
          over === 'depth'
            ? `record is nested too deeply (more than ${MAX_RECORD_DEPTH} levels)`
            : tooLarge('record', total, MAX_RECORD_CHARS),
        severity: 'error',
      });
      over = undefined;
      return undefined;
    }
    try {
      return { ref, value: JSON.parse(text) };
    } catch (err) {
      throw bad(`record [${index - 1}]: ${(err as Error).message}`);
    }
  };
  for (const c of chunks) {
    let start = collecting ? 0 : -1;
    const n = c.length;
    for (let i = 0; i < n; i++) {
      if (closed) {
        if (!/\s/.test(c[i])) throw bad(`unexpected data after the closing ] (at record [${index}])`);
        continue;
      }
      const ch = c.charCodeAt(i);
      if (inStr) {
        if (esc) esc = false;
        else if (ch === 92) esc = true;
        else if (ch === 34) inStr = false;
        continue;
      }
      if (ch === 32 || ch === 10 || ch === 13 || ch === 9) continue;
      if (depth === 0) {
        if (ch !== 91) throw bad('expected [ at the start');
        depth = 1;
        continue;
      }
      if (depth === 1) {
        if (ch === 44) {
          if (collecting) {
            const r = emit(c.slice(start, i));
            if (r) yield r;
          } else if (since) throw bad(`unexpected , before record [${index}]`);
          since = true;
          continue;
        }
        if (ch === 93) {
          if (collecting) {
            const r = emit(c.slice(start, i));
            if (r) yield r;
          } else if (since && index > 0) throw bad(`trailing , after record [${index - 1}]`);
          depth = 0;
          closed = true;
          continue;
        }
        if (!collecting) {
          if (!since) throw bad(`missing , before record [${index}]`);
          collecting = true;
          start = i;
        }
      }
      if (ch === 34) inStr = true;
      else if (ch === 91 || ch === 123) {
        depth++;
        if (depth > MAX_RECORD_DEPTH + 1) over ??= 'depth';
      } else if (ch === 93 || ch === 125) {
        depth--;
        if (depth === 1) {
          const r = emit(c.slice(start, i + 1));
          if (r) yield r;
        }
      }
    }
    if (collecting) {
      const rest = n - start;
      if (len + rest > MAX_RECORD_CHARS) {
        over ??= 'size';
        parts = [];
      } else if (!over) parts.push(c.slice(start));
      len += rest;
    }
  }
  if (!closed) throw bad(depth === 0 ? 'the file is empty' : `unexpected end of file (in or after record [${index}])`);
}

function recordsArray(doc: unknown): { records: unknown[]; key?: string } | undefined {
  if (Array.isArray(doc)) return { records: doc };
  if (doc && typeof doc === 'object') {
    const entries = Object.entries(doc as Record<string, unknown>).filter(([, v]) => Array.isArray(v));
    const preferred = entries.find(([k]) =>
      ['data', 'train', 'annotations', 'items', 'samples', 'records'].includes(k),
    );
    const pick = preferred ?? (entries.length === 1 ? entries[0] : undefined);
    if (pick) return { records: pick[1] as unknown[], key: pick[0] };
  }
  return undefined;
}

export function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * RFC 4180 CSV: quoted fields, doubled quotes, CRLF. Returns rows of strings. A field longer than
 * `maxField` characters is cut to '' and reported through `onTooLarge(row, column, length)` (rows count
 * from 1, the header included), so one huge field costs no more memory than the file itself.
 */
export function parseCsv(
  s: string,
  label: string,
  opts: { maxField?: number; onTooLarge?: (row: number, col: number, length: number) => void } = {},
): string[][] {
  const maxField = opts.maxField ?? MAX_CSV_FIELD_CHARS;
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  const n = s.length;
  const push = (f: string, len = f.length) => {
    if (len > maxField) {
      opts.onTooLarge?.(rows.length + 1, row.length, len);
      f = '';
    }
    row.push(f);
  };
  while (i < n) {
    if (s.charCodeAt(i) === 34) {
      // quoted field: pieces between doubled quotes
      let j = i + 1;
      const pieces: string[] = [];
      let len = 0;
      for (;;) {
        const q = s.indexOf('"', j);
        if (q < 0)
          throw new ImportError(`${label}: invalid CSV: unterminated quoted field (row ${rows.length + 1})`, {
            file: label,
          });
        len += q - j;
        if (len <= maxField) pieces.push(s.slice(j, q));
        if (s.charCodeAt(q + 1) === 34) {
          len++;
          if (len <= maxField) pieces.push('"');
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      // text after the closing quote up to the delimiter belongs to the field (lenient, as before)
      let k = i;
      while (k < n && s[k] !== ',' && s[k] !== '\n' && s[k] !== '\r') k++;
      len += k - i;
      push(len <= maxField ? pieces.join('') + s.slice(i, k) : '', len);
      i = k;
    } else {
      let k = i;
      while (k < n) {
        const c = s.charCodeAt(k);
        if (c === 44 || c === 10 || c === 13) break;
        k++;
      }
      push(s.slice(i, k));
      i = k;
    }
    if (i >= n) break;
    const c = s.charCodeAt(i);
    if (c === 44) {
      i++;
      if (i >= n) row.push('');
      continue;
    }
    rows.push(row);
    row = [];
    i += c === 13 && s.charCodeAt(i + 1) === 10 ? 2 : 1;
  }
  if (row.length > 0) rows.push(row);
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** CSV rows as records keyed by the header row. Rows with a wrong column count become problems. */
export function readCsvRecords(file: string, label: string, problems: ImportProblem[]): JsonRecord[] {
  const check: TextCheck = { invalidAt: -1 };
  const tooLargeAt = new Map<number, string>();
  let header: string[] = [];
  const rows = parseCsv(readTextFile(file, label, check), label, {
    onTooLarge: (r, col, length) => {
      if (!tooLargeAt.has(r))
        tooLargeAt.set(
          r,
          `${r === 1 ? 'header ' : ''}field ${col + 1}: ${tooLarge('field', length, MAX_CSV_FIELD_CHARS)}`,
        );
    },
  });
  if (check.invalidAt >= 0) problems.push(utf8Warning(label, check.invalidAt));
  if (rows.length === 0) throw new ImportError(`${label}: empty CSV file`, { file: label });
  if (tooLargeAt.has(1)) throw new ImportError(`${label}:1: ${tooLargeAt.get(1)}`, { file: label });
  header = rows[0].map((h) => h.trim());
  const out: JsonRecord[] = [];
  for (let r = 1; r < rows.length; r++) {
    const ref = `${label}:${r + 1}`;
    const big = tooLargeAt.get(r + 1);
    if (big) {
      const col = Number(/field (\d+)/.exec(big)?.[1]) - 1;
      problems.push({ ref, field: header[col], message: big.replace(/^field \d+: /, ''), severity: 'error' });
      continue;
    }
    if (rows[r].length !== header.length) {
      problems.push({ ref, message: `expected ${header.length} columns, found ${rows[r].length}`, severity: 'error' });
      continue;
    }
    const rec: Record<string, string> = {};
    header.forEach((h, k) => (rec[h] = rows[r][k]));
    out.push({ ref, value: rec });
  }
  return out;
}

/** Most files a directory walk visits before giving up. */
export const MAX_WALK_FILES = 2_000_000;

/** An entry a walk left out, with the reason (a symbolic link, a FIFO, a socket, a device). */
export interface SkippedEntry {
  rel: string;
  reason: string;
}

/**
 * Files below `root` (relative paths with `/`, sorted), skipping dot-files, `__MACOSX` and symbolic links.
 * Iterative (no recursion, so no stack limit); a folder nested deeper than `maxDepth` is an error naming it.
 * Links and special files are listed in `skipped` when given.
 */
export function walkFiles(root: string, opts: { maxDepth?: number; skipped?: SkippedEntry[] } = {}): string[] {
  const out: string[] = [];
  const maxDepth = opts.maxDepth ?? MAX_FOLDER_DEPTH;
  // A stack of folders to list and files to emit, pushed in reverse so files come out in the order of a
  // depth-first walk over sorted names.
  const stack: { rel: string; depth: number; file?: boolean }[] = [{ rel: '', depth: 0 }];
  while (stack.length > 0) {
    const { rel, depth, file } = stack.pop()!;
    if (file) {
      out.push(rel);
      if (out.length > MAX_WALK_FILES)
        throw new ImportError(`too many files under ${root} (more than ${MAX_WALK_FILES})`);
      continue;
    }
    const dir = rel ? join(root, rel) : root;
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (err) {
      throw new ImportError(`${rel || '.'}: cannot list folder: ${(err as Error).message}`, { cause: err });
    }
    const next: typeof stack = [];
    for (const name of names) {
      if (name.startsWith('.') || name === '__MACOSX' || name === 'node_modules') continue;
      const r = rel ? `${rel}/${name}` : name;
      let st: Stats;
      try {
        st = lstatSync(join(root, r));
      } catch {
        continue; // vanished while walking
      }
      if (st.isDirectory()) {
        if (depth + 1 > maxDepth)
          throw new ImportError(
            `${r.length > 200 ? `${r.slice(0, 200)}…` : r}: folders nested deeper than ${maxDepth} levels`,
            { file: r.split('/')[0] },
          );
        next.push({ rel: r, depth: depth + 1 });
      } else if (st.isFile()) next.push({ rel: r, depth, file: true });
      else
        opts.skipped?.push({
          rel: r,
          reason: st.isSymbolicLink()
            ? 'a symbolic link (links inside a folder are not followed)'
            : `${fileKind(st)}, not a regular file`,
        });
    }
    for (let k = next.length - 1; k >= 0; k--) stack.push(next[k]);
  }
  return out;
}

/**
 * Remove a folder tree of any depth. Iterative, and every sub-folder is first moved up to the top folder,
 * so no path ever grows past the top folder's own length plus one name: a tree deeper than the stack or
 * longer than PATH_MAX (a hostile archive) is removed like any other. A missing `top` is not an error.
 */
export function removeTree(top: string): void {
  try {
    if (!lstatSync(top).isDirectory()) {
      unlinkSync(top);
      return;
    }
  } catch {
    return;
  }
  const folders = [top];
  let moved = 0;
  for (let k = 0; k < folders.length; k++) {
    const dir = folders[k];
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (lstatSync(p).isDirectory()) {
        const flat = dir === top ? p : join(top, `.rm-${moved++}-${name.slice(0, 32)}`);
        if (flat !== p) renameSync(p, flat);
        folders.push(flat);
      } else unlinkSync(p);
    }
  }
  for (let k = folders.length - 1; k >= 0; k--) rmdirSync(folders[k]);
}

/** `train` / `val` / `test` from a file or folder name such as `train-00000-of-00001.parquet` or `validation`. */
export function splitFromName(name: string): 'train' | 'val' | 'test' | undefined {
  const m = /^(train|training|val|valid|validation|dev|test|testing)(?:$|[-_.])/i.exec(name);
  if (!m) return undefined;
  const k = m[1].toLowerCase();
  if (k.startsWith('train')) return 'train';
  if (k.startsWith('test')) return 'test';
  return 'val';
}

/**
 * `train` / `val` / `test` when a folder is named so (train, training, val, valid, validation, dev, test, testing),
 * alone or with a `_data` / `_set` / `_split` suffix (`test_data`, as published layouts name their held-out folder).
 */
export function splitFromDirName(name: string): 'train' | 'val' | 'test' | undefined {
  return /^(train|training|val|valid|validation|dev|test|testing)([-_](data|set|split))?$/i.test(name)
    ? splitFromName(name)
    : undefined;
}
