// File reading helpers shared by the importers: JSON / JSONL / CSV with clear, file-named errors,
// and a directory walk that skips hidden files and never follows links out of the tree.
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { ImportError, type ImportProblem } from './types';

/** Largest JSON/JSONL/CSV file read whole (bytes). */
export const MAX_TEXT_FILE_BYTES = 512 * 1024 * 1024;

export function readTextFile(file: string, label = basename(file)): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new ImportError(`${label}: cannot read: ${(err as Error).message}`, { file: label, cause: err });
  }
  if (size > MAX_TEXT_FILE_BYTES) throw new ImportError(`${label}: file is too large (${size} bytes; limit ${MAX_TEXT_FILE_BYTES})`, { file: label });
  let s = readFileSync(file, 'utf8');
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
  const s = readTextFile(file, label);
  const lower = label.toLowerCase();
  const looksJsonl = lower.endsWith('.jsonl') || lower.endsWith('.ndjson');
  if (!looksJsonl) {
    let doc: unknown;
    try {
      doc = JSON.parse(s);
    } catch (err) {
      // Some ".json" files are really JSON Lines: several objects, one per line.
      const lines = s.split('\n').filter((l) => l.trim() !== '');
      if (lines.length > 1 && lines.every((l) => l.trimStart().startsWith('{'))) return jsonl(s, label, problems);
      throw new ImportError(`${label}: invalid JSON: ${(err as Error).message}`, { file: label, cause: err });
    }
    const arr = recordsArray(doc);
    if (!arr) throw new ImportError(`${label}: expected a JSON array of records (or an object holding one), got ${kindOf(doc)}`, { file: label });
    return arr.records.map((value, i) => ({ ref: `${label}${arr.key ? `.${arr.key}` : ''}[${i}]`, value }));
  }
  return jsonl(s, label, problems);
}

function jsonl(s: string, label: string, problems: ImportProblem[]): JsonRecord[] {
  const out: JsonRecord[] = [];
  const lines = s.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const ref = `${label}:${i + 1}`;
    try {
      out.push({ ref, value: JSON.parse(line) });
    } catch (err) {
      problems.push({ ref, message: `invalid JSON: ${(err as Error).message}`, severity: 'error' });
    }
  }
  return out;
}

function recordsArray(doc: unknown): { records: unknown[]; key?: string } | undefined {
  if (Array.isArray(doc)) return { records: doc };
  if (doc && typeof doc === 'object') {
    const entries = Object.entries(doc as Record<string, unknown>).filter(([, v]) => Array.isArray(v));
    const preferred = entries.find(([k]) => ['data', 'train', 'annotations', 'items', 'samples', 'records'].includes(k));
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

/** RFC 4180 CSV: quoted fields, doubled quotes, CRLF. Returns rows of strings. */
export function parseCsv(s: string, label: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  const n = s.length;
  while (i < n) {
    const c = s[i];
    if (quoted) {
      if (c === '"') {
        if (s[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') {
      quoted = true;
      i++;
    } else if (c === ',') {
      row.push(field);
      field = '';
      i++;
    } else if (c === '\n' || c === '\r') {
      row.push(field);
      field = '';
      rows.push(row);
      row = [];
      i += c === '\r' && s[i + 1] === '\n' ? 2 : 1;
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) throw new ImportError(`${label}: invalid CSV: unterminated quoted field`, { file: label });
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** CSV rows as records keyed by the header row. Rows with a wrong column count become problems. */
export function readCsvRecords(file: string, label: string, problems: ImportProblem[]): JsonRecord[] {
  const rows = parseCsv(readTextFile(file, label), label);
  if (rows.length === 0) throw new ImportError(`${label}: empty CSV file`, { file: label });
  const header = rows[0].map((h) => h.trim());
  const out: JsonRecord[] = [];
  for (let r = 1; r < rows.length; r++) {
    const ref = `${label}:${r + 1}`;
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

/** Files below `root` (relative paths with `/`, sorted), skipping dot-files, `__MACOSX` and symbolic links. */
export function walkFiles(root: string, opts: { maxDepth?: number } = {}): string[] {
  const out: string[] = [];
  const maxDepth = opts.maxDepth ?? 64;
  (function walk(dir: string, depth: number) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (err) {
      throw new ImportError(`${relative(root, dir) || '.'}: cannot list folder: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names) {
      if (name.startsWith('.') || name === '__MACOSX' || name === 'node_modules') continue;
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) continue;
      if (st.isDirectory()) {
        if (depth < maxDepth) walk(p, depth + 1);
      } else if (st.isFile()) {
        out.push(relative(root, p).split('\\').join('/'));
        if (out.length > MAX_WALK_FILES) throw new ImportError(`too many files under ${root} (more than ${MAX_WALK_FILES})`);
      }
    }
  })(root, 0);
  return out;
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

/** `train` / `val` / `test` when a folder is named exactly so (train, training, val, valid, validation, dev, test, testing). */
export function splitFromDirName(name: string): 'train' | 'val' | 'test' | undefined {
  return /^(train|training|val|valid|validation|dev|test|testing)$/i.test(name) ? splitFromName(name) : undefined;
}
