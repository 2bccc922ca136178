import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src-main/cli';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('cli-');
after(() => tmp.cleanup());

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t) }, {});
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('datasets create/list/rename/delete with text and --json output', async () => {
  const dir = join(tmp.dir, 'a');
  let r = await cli('datasets', 'list', '--data-dir', dir);
  assert.equal(r.code, 0);
  assert.match(r.out, /No datasets yet/);
  r = await cli('--data-dir', dir, 'datasets', 'create', 'Leaves', '--description', 'autumn');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Created dataset 1 "Leaves"/);
  r = await cli('datasets', 'list', '--json', `--data-dir=${dir}`);
  const list = JSON.parse(r.out);
  assert.deepEqual(
    list.map((d: any) => [d.id, d.name, d.description]),
    [[1, 'Leaves', 'autumn']],
  );
  r = await cli('datasets', 'create', 'Leaves', '--data-dir', dir);
  assert.equal(r.code, 1);
  assert.match(r.err, /error \(conflict\): a dataset named "Leaves" already exists/);
  r = await cli('datasets', 'create', '', '--json', '--data-dir', dir);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.err).error.field, 'name');
  r = await cli('datasets', 'rename', '1', 'Trees', '--data-dir', dir);
  assert.equal(r.code, 0);
  r = await cli('datasets', 'list', '--data-dir', dir);
  assert.match(r.out, /^ID\s+NAME\s+ITEMS\s+UPDATED\n1\s+Trees\s+0\s+/);
  r = await cli('datasets', 'delete', 'x', '--data-dir', dir);
  assert.equal(r.code, 2);
  assert.match(r.err, /ID must be a positive integer/);
  r = await cli('datasets', 'delete', '1', '--data-dir', dir);
  assert.equal(r.code, 0);
  r = await cli('datasets', 'list', '--json', '--data-dir', dir);
  assert.deepEqual(JSON.parse(r.out), []);
});

test('runs list, usage errors and help', async () => {
  const dir = join(tmp.dir, 'b');
  let r = await cli('runs', 'list', '--data-dir', dir);
  assert.equal(r.code, 0);
  assert.match(r.out, /No runs yet/);
  r = await cli('runs', 'list', '--status', 'bogus', '--data-dir', dir);
  assert.equal(r.code, 1);
  assert.match(r.err, /status/);
  r = await cli('runs', 'list', '--colour', 'red', '--data-dir', dir);
  assert.equal(r.code, 2);
  r = await cli('frobnicate');
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown command "frobnicate"/);
  r = await cli('--help');
  assert.equal(r.code, 0);
  assert.match(r.out, /serve\s+serve the app/);
  r = await cli('datasets', '--help');
  assert.match(r.out, /create NAME/);
});

test('LENSLAB_DATA_DIR chooses the data dir when --data-dir is absent', async () => {
  const dir = join(tmp.dir, 'env');
  const out: string[] = [];
  assert.equal(
    await runCli(['datasets', 'create', 'E'], { out: (t) => out.push(t), err: () => {} }, { LENSLAB_DATA_DIR: dir }),
    0,
  );
  const r = await cli('datasets', 'list', '--json', '--data-dir', dir);
  assert.equal(JSON.parse(r.out)[0].name, 'E');
});

test('bin/lenslab.mjs runs the CLI from source', async () => {
  const bin = fileURLToPath(new URL('../../bin/lenslab.mjs', import.meta.url));
  const dir = join(tmp.dir, 'bin');
  const child = spawn(process.execPath, [bin, 'datasets', 'create', 'From bin', '--json', '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0);
  assert.equal(JSON.parse(out).name, 'From bin');
});
