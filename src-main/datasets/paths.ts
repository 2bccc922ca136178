// Path safety for imports: every path a dataset file mentions must resolve inside the import root.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileKind } from './read';

export type Resolved = { ok: true; path: string } | { ok: false; reason: string };

/** True when `child` is `root` itself or below it (both absolute, normalized). */
export function isInside(root: string, child: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && rel.split(sep)[0] !== '..');
}

/**
 * Resolve `ref` (as written in a dataset file) against `base` and require the result, after following
 * symbolic links, to lie inside one of `roots`. Backslashes are treated as separators (Windows-made files).
 * Returns a reason instead of throwing so importers can report per item.
 */
export function resolveInside(
  roots: string[],
  base: string,
  ref: unknown,
  opts: { mustExist?: boolean } = {},
): Resolved {
  if (typeof ref !== 'string') return { ok: false, reason: `path must be a string, got ${describeType(ref)}` };
  if (ref.trim() === '') return { ok: false, reason: 'path is empty' };
  if (ref.length > 4096) return { ok: false, reason: `path is too long (${ref.length} characters)` };
  if (ref.includes('\0')) return { ok: false, reason: 'path contains a NUL character' };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref))
    return { ok: false, reason: `remote or URL paths are not supported: ${clip(ref)}` };
  const norm = ref.replace(/\\/g, '/');
  const target = isAbsolute(norm) ? resolve(norm) : resolve(base, norm);
  const realRoots = roots.map(realOrSelf);
  if (!realRoots.some((r) => isInside(r, target)) && !roots.some((r) => isInside(resolve(r), target))) {
    return { ok: false, reason: `path escapes the import folder: ${clip(ref)}` };
  }
  if (!existsSync(target)) {
    return opts.mustExist === false
      ? { ok: true, path: target }
      : { ok: false, reason: `file not found: ${clip(ref)}` };
  }
  const real = realOrSelf(target);
  if (!realRoots.some((r) => isInside(r, real)))
    return { ok: false, reason: `path links outside the import folder: ${clip(ref)}` };
  try {
    const st = statSync(real);
    if (!st.isFile()) return { ok: false, reason: `not a regular file (${fileKind(st)}): ${clip(ref)}` };
  } catch (err) {
    return { ok: false, reason: `cannot read ${clip(ref)}: ${(err as Error).message}` };
  }
  return { ok: true, path: target };
}

/** A name inside an archive: relative, no `..`, no drive letters; returns the safe relative path or a reason. */
export function safeArchiveName(name: string): { ok: true; rel: string } | { ok: false; reason: string } {
  if (name.includes('\0')) return { ok: false, reason: 'entry name contains a NUL character' };
  const norm = name.replace(/\\/g, '/');
  if (norm.startsWith('/') || /^[a-zA-Z]:/.test(norm))
    return { ok: false, reason: `absolute entry path: ${clip(name)}` };
  const parts = norm.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return { ok: false, reason: `entry path escapes the archive: ${clip(name)}` };
  return { ok: true, rel: parts.join('/') };
}

export function joinSafe(root: string, rel: string): string {
  const p = join(root, rel);
  if (!isInside(resolve(root), resolve(p))) throw new Error(`path escapes ${root}: ${rel}`);
  return p;
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

export function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

export function clip(s: string, n = 120): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
