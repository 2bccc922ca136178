// A data folder that cannot be created or written: every command says which path and why (no stack trace), and
// the commands that only read (datasets list, runs list, export) still work, reading the database read-only.
// The CLI runs as another user (uid 65534) when the tests run as root, since root may write anywhere.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../src-main/cli';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('cli-data-dir-');
after(() => tmp.cleanup());
chmodSync(tmp.dir, 0o755);
const root = join(import.meta.dirname, '..', '..');
const asRoot = process.getuid?.() === 0;
// the snapshot of a read-only database goes to the child's temp folder: one the test can look into
const childTmp = join(tmp.dir, 'child-tmp');
mkdirSync(childTmp, { mode: 0o777 });
chmodSync(childTmp, 0o777);

function lenslab(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = spawn(process.execPath, [join(root, 'bin', 'lenslab.mjs'), ...argv], {
    cwd: root,
    env: { ...process.env, TMPDIR: childTmp, LENSLAB_DATA_DIR: '' },
    ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  return new Promise((res) => child.on('close', (code) => res({ code: code ?? -1, out: out.trim(), err: err.trim() })));
}

const noStack = (s: string) => assert.doesNotMatch(s, /\n\s+at /, `no stack trace in: ${s}`);

test('a data folder that cannot be created: the folder and the reason, for reads and writes', async () => {
  const parent = join(tmp.dir, 'locked');
  mkdirSync(parent, { mode: 0o555 });
  chmodSync(parent, 0o555);
  const dir = join(parent, 'data');
  for (const argv of [
    ['datasets', 'list'],
    ['datasets', 'create', 'A'],
    ['runs', 'list'],
  ]) {
    const r = await lenslab('--data-dir', dir, ...argv);
    assert.equal(r.code, 1, `${argv.join(' ')}: ${r.err}`);
    assert.equal(r.err, `error: cannot create the data folder ${dir}: permission denied (EACCES)`);
  }
  const j = await lenslab('--data-dir', dir, 'datasets', 'list', '--json');
  assert.deepEqual(JSON.parse(j.err), {
    error: { code: 'unavailable', message: `cannot create the data folder ${dir}: permission denied (EACCES)` },
  });
});

test('a data folder that cannot be written: lists work read-only with a note, writes name the folder', async () => {
  const dir = join(tmp.dir, 'ro-folder');
  const made = await runCli(['--data-dir', dir, 'datasets', 'create', 'Leaves'], { out: () => {}, err: () => {} }, {});
  assert.equal(made, 0);
  chmodSync(dir, 0o555);
  const note = `note: cannot write the data folder ${dir}: permission denied (EACCES); reading it read-only`;
  let r = await lenslab('--data-dir', dir, 'datasets', 'list');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ID\s+NAME\s+ITEMS\s+UPDATED\n1\s+Leaves\s+0\s+/);
  assert.equal(r.err, note);
  r = await lenslab('--data-dir', dir, 'runs', 'list', '--json');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), []);
  r = await lenslab('--data-dir', dir, 'export', '1', join(childTmp, 'export'), '--format', 'llava');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Exported 0 item\(s\)/);
  r = await lenslab('--data-dir', dir, 'datasets', 'create', 'More');
  assert.equal(r.code, 1);
  assert.equal(r.err, `error: cannot write the data folder ${dir}: permission denied (EACCES)`);
  assert.deepEqual(
    readdirSync(childTmp).filter((f) => f.startsWith('lenslab-readonly-')),
    [],
    'read-only snapshots are removed',
  );
  assert.deepEqual(readdirSync(dir).sort(), ['lenslab.db'], 'nothing written in the folder');
});

test('a database file that cannot be written in a writable folder: writes name the file, lists still work', async () => {
  const dir = join(tmp.dir, 'ro-file');
  assert.equal(
    await runCli(['--data-dir', dir, 'datasets', 'create', 'Leaves'], { out: () => {}, err: () => {} }, {}),
    0,
  );
  chmodSync(dir, 0o777);
  chmodSync(join(dir, 'lenslab.db'), 0o444);
  const file = join(dir, 'lenslab.db');
  let r = await lenslab('--data-dir', dir, 'datasets', 'create', 'More');
  assert.equal(r.code, 1);
  assert.equal(r.err, `error: cannot write the database ${file}: permission denied (EACCES)`);
  noStack(r.err);
  r = await lenslab('--data-dir', dir, 'datasets', 'list', '--json');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(
    JSON.parse(r.out).map((d: { name: string }) => d.name),
    ['Leaves'],
  );
  assert.equal(r.err, `note: cannot write the database ${file}: permission denied (EACCES); reading it read-only`);
});
