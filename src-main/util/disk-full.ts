// A full disk (or quota) is not a bug in the work that hit it: the work can go on once space is freed. Writes by
// file descriptor fail with "ENOSPC: no space left on device, write" and no path, so the writer names the file.

const CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && CODES.has(code);
}

/** `e` itself, or for a full disk an error "<what> <path>: no space left on device (ENOSPC)" with the same code. */
export function nameDiskFull(e: unknown, what: string, path: string): unknown {
  if (!isDiskFull(e) || (e as Error).message.includes(path)) return e;
  const code = (e as { code: string }).code;
  const why = code === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on device';
  return Object.assign(new Error(`${what} ${path}: ${why} (${code})`, { cause: e }), { code });
}
