// Import path confinement beyond the dataset fuzz test: links to folders outside the root, Windows and UNC forms,
// lookalike dots, and archive entry names.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveInside, safeArchiveName, joinSafe } from '../../src-main/datasets/paths';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('sec-paths-');
after(() => tmp.cleanup());
const root = join(tmp.dir, 'root');
const outside = join(tmp.dir, 'outside');
mkdirSync(join(root, 'sub'), { recursive: true });
mkdirSync(outside, { recursive: true });
writeFileSync(join(root, 'sub', 'in.png'), 'in');
writeFileSync(join(outside, 'secret.png'), 'secret');
symlinkSync(outside, join(root, 'linkdir'));
symlinkSync(root, join(root, 'sub', 'loop'));
// a root reached through a link is fine: what matters is where files really are
symlinkSync(root, join(tmp.dir, 'root-link'));

test('references through a linked folder, UNC or drive forms, or lookalike dots cannot leave the root', () => {
  const escapes: [string, RegExp][] = [
    ['linkdir/secret.png', /links outside the import folder/],
    ['sub/../linkdir/secret.png', /links outside the import folder/],
    ['sub\\..\\linkdir\\secret.png', /links outside the import folder/],
    ['\\\\server\\share\\secret.png', /escapes the import folder/],
    ['//server/share/secret.png', /escapes the import folder/],
    [`${outside}/secret.png`, /escapes the import folder/],
    [`${root}/../outside/secret.png`, /escapes the import folder/],
    ['sub/./../../outside/secret.png', /escapes the import folder/],
    ['C:\\Windows\\win.ini', /not found/], // on POSIX a drive letter is a plain (missing) relative name
    ['\u2024\u2024/outside/secret.png', /not found/], // one dot leader: not a dot
    ['\uff0e\uff0e/outside/secret.png', /not found/], // fullwidth full stop: not a dot
    ['file:/etc/passwd', /not found/],
  ];
  for (const [ref, re] of escapes) {
    const r = resolveInside([root], root, ref);
    assert.equal(r.ok, false, ref);
    assert.match((r as { reason: string }).reason, re, ref);
  }
  for (const ref of ['sub/in.png', 'sub/loop/sub/in.png', `${root}/sub/in.png`, 'sub\\in.png']) {
    const r = resolveInside([root], root, ref);
    assert.equal(r.ok, true, `${ref}: ${JSON.stringify(r)}`);
  }
  // importing through a link to the root still confines to the real root
  const viaLink = join(tmp.dir, 'root-link');
  assert.equal(resolveInside([viaLink], viaLink, 'sub/in.png').ok, true);
  assert.equal(resolveInside([viaLink], viaLink, 'linkdir/secret.png').ok, false);
  assert.throws(() => joinSafe(root, '../outside/x'), /escapes/);
});

test('archive entry names: traversal, absolute, drive, UNC and NUL forms are refused; lookalike dots are names', () => {
  for (const name of [
    '..',
    '../x',
    './../x',
    'a/../../x',
    '..\\x',
    'a\\..\\..\\x',
    '/abs',
    '\\abs',
    'C:x',
    'c:\\x',
    'C:/x',
    '\\\\server\\share\\x',
    '//server/share/x',
    'x\u0000y',
  ]) {
    assert.equal(safeArchiveName(name).ok, false, name);
  }
  for (const [name, rel] of [
    ['a/b.png', 'a/b.png'],
    ['./a/./b.png', 'a/b.png'],
    ['\u2024\u2024/x', '\u2024\u2024/x'],
    ['a\\b.png', 'a/b.png'],
  ]) {
    assert.deepEqual(safeArchiveName(name), { ok: true, rel }, name);
  }
});
