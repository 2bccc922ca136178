// SQL lives in storage/: a prepare() on a database anywhere else in src-main fails this test. The one exception is
// datasets/stage.ts, whose statements run on its own scratch database (records staged during an import), not
// on the app's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const ALLOWED = new Set([`src-main${sep}datasets${sep}stage.ts`]);

/** `x.prepare(` calls in a file's text, ignoring a class's own prepare() method (`this.prepare(`). */
export function prepareCalls(text: string): number[] {
  const lines: number[] = [];
  text.split('\n').forEach((line, i) => {
    if (/\.prepare\s*\(/.test(line.replace(/\bthis\.prepare\s*\(/g, ''))) lines.push(i + 1);
  });
  return lines;
}

test('the scanner finds db.prepare( and chained .prepare(, not this.prepare(', () => {
  assert.deepEqual(
    prepareCalls("const a = db.prepare('SELECT 1');\n  return db\n    .prepare('x')\nawait this.prepare(input);"),
    [1, 3],
  );
});

test('prepare() is called only in src-main/storage/', () => {
  const offenders: string[] = [];
  let files = 0;
  (function walk(d: string) {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        if (name !== 'storage' || d !== join(root, 'src-main')) walk(p);
        continue;
      }
      if (!/\.(ts|mts)$/.test(name)) continue;
      files++;
      const rel = relative(root, p);
      if (ALLOWED.has(rel)) continue;
      for (const line of prepareCalls(readFileSync(p, 'utf8'))) offenders.push(`${rel}:${line}`);
    }
  })(join(root, 'src-main'));
  assert.ok(files > 50, 'found the sources');
  assert.deepEqual(offenders, [], 'move these queries into src-main/storage/<domain>-queries.ts');
});
