import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

/** A fresh temporary directory, removed by the returned cleanup (call it in `after`). */
export function tempDir(prefix = 'lenslab-test-'): { dir: string; cleanup: () => void } {
  const base = join(tmpdir(), 'lenslab-tests');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
