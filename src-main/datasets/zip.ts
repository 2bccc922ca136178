// Safe zip extraction: entry names may not escape the destination (zip-slip), and the entry count,
// each entry's size, the total size, the compression ratio (per entry and over the whole archive) and the
// folder depth are bounded (zip bombs, hostile trees). Every check runs on the central directory before
// anything is written.
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { safeArchiveName } from './paths';
import { MAX_FOLDER_DEPTH, readRegularFile, splitFromDirName } from './read';
import { ImportError } from './types';

export interface ZipLimits {
  /** Largest zip file read (bytes). */
  maxArchiveBytes: number;
  maxEntries: number;
  /** Largest single entry once decompressed (bytes). */
  maxEntryBytes: number;
  /** Largest sum of decompressed entries (bytes). */
  maxTotalBytes: number;
  /**
   * Largest decompressed/compressed ratio: for each entry of at least `ratioMinBytes`, and for the sum of
   * all entries once it passes 1 MiB (many small entries at a high ratio are a bomb too).
   */
  maxRatio: number;
  /** Entries smaller than this (decompressed) are not ratio-checked one by one (tiny files compress well). */
  ratioMinBytes: number;
  /** Deepest folder nesting of an entry path. */
  maxDepth: number;
  /** Longest entry path (characters). */
  maxPathChars: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxArchiveBytes: 2 * 1024 ** 3,
  maxEntries: 200_000,
  maxEntryBytes: 1024 ** 3,
  maxTotalBytes: 8 * 1024 ** 3,
  maxRatio: 200,
  ratioMinBytes: 64 * 1024,
  maxDepth: MAX_FOLDER_DEPTH,
  maxPathChars: 1024,
};

/** Extract `zipFile` into the (empty) folder `dest`. Throws ImportError before writing anything when a limit is broken. */
export function extractZip(
  zipFile: string,
  dest: string,
  limits: Partial<ZipLimits> = {},
): { entries: number; bytes: number } {
  const L = { ...DEFAULT_ZIP_LIMITS, ...limits };
  const label = zipFile.split(/[\\/]/).pop() ?? zipFile;
  const data = new Uint8Array(readRegularFile(zipFile, label, L.maxArchiveBytes, 'archive'));
  const entries: { name: string; rel: string; size: number }[] = [];
  const seen = new Set<string>();
  let total = 0;
  let packed = 0;
  try {
    unzipSync(data, {
      filter(f) {
        if (f.name.endsWith('/') || f.name.endsWith('\\')) return false;
        const safe = safeArchiveName(f.name);
        if (!safe.ok) throw new ImportError(`${label}: ${safe.reason}`, { file: label });
        if (safe.rel === '') return false;
        const key = safe.rel.toLowerCase();
        if (seen.has(key)) throw new ImportError(`${label}: duplicate entry ${safe.rel}`, { file: label });
        seen.add(key);
        if (entries.length + 1 > L.maxEntries)
          throw new ImportError(`${label}: too many entries (more than ${L.maxEntries})`, { file: label });
        if (f.originalSize > L.maxEntryBytes)
          throw new ImportError(
            `${label}: entry ${safe.rel} is too large once decompressed (${f.originalSize} bytes; limit ${L.maxEntryBytes})`,
            { file: label },
          );
        const depth = safe.rel.split('/').length - 1;
        if (depth > L.maxDepth)
          throw new ImportError(
            `${label}: entry ${safe.rel.slice(0, 120)}… is nested ${depth} folders deep (limit ${L.maxDepth})`,
            { file: label },
          );
        if (safe.rel.length > L.maxPathChars)
          throw new ImportError(
            `${label}: entry path ${safe.rel.slice(0, 120)}… is too long (${safe.rel.length} characters; limit ${L.maxPathChars})`,
            { file: label },
          );
        if (f.originalSize >= L.ratioMinBytes && f.originalSize / Math.max(1, f.size) > L.maxRatio) {
          throw new ImportError(
            `${label}: entry ${safe.rel} has a suspicious compression ratio (${Math.round(f.originalSize / Math.max(1, f.size))}:1; limit ${L.maxRatio}:1; likely a zip bomb)`,
            { file: label },
          );
        }
        if (f.compression !== 0 && f.compression !== 8)
          throw new ImportError(`${label}: entry ${safe.rel} uses unsupported compression method ${f.compression}`, {
            file: label,
          });
        total += f.originalSize;
        packed += f.size;
        if (total > L.maxTotalBytes)
          throw new ImportError(`${label}: archive expands to more than ${L.maxTotalBytes} bytes`, { file: label });
        if (total > 1024 * 1024 && total / Math.max(1, packed) > L.maxRatio) {
          throw new ImportError(
            `${label}: entries up to ${safe.rel} have a suspicious overall compression ratio (${Math.round(total / Math.max(1, packed))}:1; limit ${L.maxRatio}:1; likely a zip bomb)`,
            { file: label },
          );
        }
        entries.push({ name: f.name, rel: safe.rel, size: f.originalSize });
        return false;
      },
    });
  } catch (err) {
    if (err instanceof ImportError) throw err;
    throw new ImportError(`${label}: not a readable zip archive: ${(err as Error).message}`, {
      file: label,
      cause: err,
    });
  }
  // Extract in batches of bounded declared size so memory stays bounded.
  const BATCH = 256 * 1024 * 1024;
  let i = 0;
  let written = 0;
  while (i < entries.length) {
    const batch = new Map<string, string>();
    let bytes = 0;
    while (i < entries.length && (batch.size === 0 || bytes + entries[i].size <= BATCH)) {
      batch.set(entries[i].name, entries[i].rel);
      bytes += entries[i].size;
      i++;
    }
    let out: Record<string, Uint8Array>;
    try {
      out = unzipSync(data, { filter: (f) => batch.has(f.name) });
    } catch (err) {
      throw new ImportError(`${label}: corrupt archive: ${(err as Error).message}`, { file: label, cause: err });
    }
    for (const [name, rel] of batch) {
      const content = out[name];
      if (!content) throw new ImportError(`${label}: entry ${rel} could not be read`, { file: label });
      const p = join(dest, rel);
      try {
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, content);
      } catch (err) {
        throw new ImportError(`${label}: cannot extract ${rel} into ${dest}: ${(err as Error).message}`, {
          file: label,
          cause: err,
        });
      }
      written += content.length;
    }
  }
  return { entries: entries.length, bytes: written };
}

/** When an extracted archive holds one folder and nothing else, that folder is the dataset root (repeatedly). */
export function archiveRoot(dest: string): string {
  let root = dest;
  for (let depth = 0; depth < 4; depth++) {
    const names = readdirSync(root).filter((n) => !n.startsWith('.') && n !== '__MACOSX');
    // A lone train/ val/ test/ folder is kept: its name sets the split.
    if (names.length === 1 && statSync(join(root, names[0])).isDirectory() && !splitFromDirName(names[0]))
      root = join(root, names[0]);
    else break;
  }
  return root;
}
