// Safe zip extraction: entry names may not escape the destination (zip-slip), and the entry count,
// each entry's size, the total size and the compression ratio are bounded (zip bombs).
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { safeArchiveName } from './paths';
import { splitFromDirName } from './read';
import { ImportError } from './types';

export interface ZipLimits {
  /** Largest zip file read (bytes). */
  maxArchiveBytes: number;
  maxEntries: number;
  /** Largest single entry once decompressed (bytes). */
  maxEntryBytes: number;
  /** Largest sum of decompressed entries (bytes). */
  maxTotalBytes: number;
  /** Largest decompressed/compressed ratio for entries above 1 MiB. */
  maxRatio: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxArchiveBytes: 2 * 1024 ** 3,
  maxEntries: 200_000,
  maxEntryBytes: 1024 ** 3,
  maxTotalBytes: 8 * 1024 ** 3,
  maxRatio: 200,
};

/** Extract `zipFile` into the (empty) folder `dest`. Throws ImportError before writing anything when a limit is broken. */
export function extractZip(zipFile: string, dest: string, limits: Partial<ZipLimits> = {}): { entries: number; bytes: number } {
  const L = { ...DEFAULT_ZIP_LIMITS, ...limits };
  const label = zipFile.split(/[\\/]/).pop() ?? zipFile;
  const size = statSync(zipFile).size;
  if (size > L.maxArchiveBytes) throw new ImportError(`${label}: archive is too large (${size} bytes; limit ${L.maxArchiveBytes})`, { file: label });
  const data = new Uint8Array(readFileSync(zipFile));
  const entries: { name: string; rel: string; size: number }[] = [];
  const seen = new Set<string>();
  let total = 0;
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
        if (entries.length + 1 > L.maxEntries) throw new ImportError(`${label}: too many entries (more than ${L.maxEntries})`, { file: label });
        if (f.originalSize > L.maxEntryBytes) throw new ImportError(`${label}: entry ${safe.rel} is too large once decompressed (${f.originalSize} bytes; limit ${L.maxEntryBytes})`, { file: label });
        if (f.originalSize > 1024 * 1024 && f.originalSize / Math.max(1, f.size) > L.maxRatio) {
          throw new ImportError(`${label}: entry ${safe.rel} has a suspicious compression ratio (${Math.round(f.originalSize / Math.max(1, f.size))}:1; likely a zip bomb)`, { file: label });
        }
        if (f.compression !== 0 && f.compression !== 8) throw new ImportError(`${label}: entry ${safe.rel} uses unsupported compression method ${f.compression}`, { file: label });
        total += f.originalSize;
        if (total > L.maxTotalBytes) throw new ImportError(`${label}: archive expands to more than ${L.maxTotalBytes} bytes`, { file: label });
        entries.push({ name: f.name, rel: safe.rel, size: f.originalSize });
        return false;
      },
    });
  } catch (err) {
    if (err instanceof ImportError) throw err;
    throw new ImportError(`${label}: not a readable zip archive: ${(err as Error).message}`, { file: label, cause: err });
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
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, content);
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
    if (names.length === 1 && statSync(join(root, names[0])).isDirectory() && !splitFromDirName(names[0])) root = join(root, names[0]);
    else break;
  }
  return root;
}
