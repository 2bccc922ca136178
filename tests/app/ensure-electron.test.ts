import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// @ts-expect-error plain .mjs script without type declarations
import { electronSqliteBinding, electronBinaryPresent } from '../../scripts/ensure-electron.mjs';
import { electronSqliteBindingPath } from '../../src-main/app/app';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { tempDir } from '../helpers/tmp';
import { createRequire } from 'node:module';

const tmp = tempDir('ensure-electron-');
after(() => tmp.cleanup());

test('ensure-electron and the main process agree where the Electron build of better-sqlite3 lives', () => {
  for (const [platform, arch] of [
    ['linux', 'x64'],
    ['darwin', 'arm64'],
    ['win32', 'x64'],
  ]) {
    assert.equal(
      electronSqliteBinding('/app', '41.7.1', platform, arch),
      electronSqliteBindingPath('/app', '41.7.1', platform, arch),
    );
  }
  assert.match(
    electronSqliteBindingPath('/app', '41.7.1', 'linux', 'x64'),
    /node_modules\/\.lenslab-electron\/electron-41\.7\.1-linux-x64\/better_sqlite3\.node$/,
  );
});

test('the Electron binary check reads electron/path.txt', () => {
  const dir = join(tmp.dir, 'electron');
  mkdirSync(join(dir, 'dist'), { recursive: true });
  assert.equal(electronBinaryPresent(dir), false);
  writeFileSync(join(dir, 'path.txt'), 'electron');
  assert.equal(electronBinaryPresent(dir), false);
  writeFileSync(join(dir, 'dist', 'electron'), '');
  assert.equal(electronBinaryPresent(dir), true);
});

test('openDatabase loads an explicitly given native binding (how the Electron backend gets its build)', () => {
  const require = createRequire(import.meta.url);
  const binding = join(require.resolve('better-sqlite3/package.json'), '..', 'build', 'Release', 'better_sqlite3.node');
  const db = openDatabase(':memory:', { nativeBinding: binding });
  assert.equal((db.prepare('SELECT 1 AS one').get() as { one: number }).one, 1);
  closeDatabase(db);
  assert.throws(() => openDatabase(':memory:', { nativeBinding: join(tmp.dir, 'missing.node') }));
});
