import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync, readFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { tempDir } from '../helpers/tmp';
import {
  saveCheckpoint,
  listCheckpoints,
  latestCheckpoint,
  loadCheckpoint,
  pruneCheckpoints,
  cleanCheckpoints,
  verifyCheckpoint,
  type CheckpointFiles,
} from '../../src-main/training/checkpoints';

const { dir: base, cleanup } = tempDir('ckpt-');
after(cleanup);
let n = 0;
const fresh = () => join(base, `r${n++}`);

const files = (step: number): CheckpointFiles => ({
  'adapter/adapter_model.safetensors': {
    kind: 'safetensors',
    tensors: { 'w.lora_A': { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, step]) } },
  },
  'optimizer.safetensors': {
    kind: 'safetensors',
    tensors: { m: { shape: [3], data: new Float32Array([0.5, 0.25, step]) } },
  },
  'state.json': { kind: 'json', value: { step, rng: { s: [1, 2, 3, 4] } } },
  'adapter/adapter_config.json': { kind: 'bytes', data: '{"r": 8}' },
});

test('save writes a manifest with sizes and sha256; load reads the state back', () => {
  const root = fresh();
  const ref = saveCheckpoint(root, 123, files(123), { info: { loss: 1.5 } });
  assert.equal(ref.dir, join(root, 'step-000123'));
  assert.deepEqual(readdirSync(root), ['step-000123']);
  const manifest = JSON.parse(readFileSync(join(ref.dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.step, 123);
  assert.deepEqual(manifest.info, { loss: 1.5 });
  assert.deepEqual(manifest.files.map((f: { path: string }) => f.path).sort(), [
    'adapter/adapter_config.json',
    'adapter/adapter_model.safetensors',
    'optimizer.safetensors',
    'state.json',
  ]);
  for (const f of manifest.files) assert.match(f.sha256, /^[0-9a-f]{64}$/);
  const ck = loadCheckpoint(ref.dir);
  assert.deepEqual(ck.json('state.json'), { step: 123, rng: { s: [1, 2, 3, 4] } });
  const t = ck.tensors('adapter/adapter_model.safetensors').get('w.lora_A')!;
  assert.deepEqual(t.shape, [2, 3]);
  assert.deepEqual([...t.data], [1, 2, 3, 4, 5, 123]);
  assert.equal(ck.raw('adapter/adapter_config.json').toString(), '{"r": 8}');
  assert.throws(() => ck.json('other.json'), /has no file other\.json/);
});

test('keep-last-K prunes the oldest; latestCheckpoint picks the newest', () => {
  const root = fresh();
  for (const s of [10, 20, 30, 40]) saveCheckpoint(root, s, files(s), { keepLastK: 2 });
  assert.deepEqual(
    listCheckpoints(root).map((c) => c.step),
    [30, 40],
  );
  assert.equal(latestCheckpoint(root)?.step, 40);
  assert.deepEqual(pruneCheckpoints(root, 1), [30]);
  assert.deepEqual(readdirSync(root), ['step-000040']);
  assert.equal(latestCheckpoint(fresh()), null);
});

test('a crash before the manifest leaves only a temp dir, which is ignored and cleaned', () => {
  const root = fresh();
  saveCheckpoint(root, 5, files(5));
  // simulate a crash mid-save in ANOTHER process: the child exits without committing
  const code = `
    import { saveCheckpoint } from ${JSON.stringify(new URL('../../src-main/training/checkpoints.ts', import.meta.url).pathname)};
    saveCheckpoint(${JSON.stringify(root)}, 6, { 'state.json': { kind: 'json', value: { step: 6 } } }, { beforeCommit: () => process.exit(9) });`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 9, r.stderr);
  const left = readdirSync(root).sort();
  assert.equal(left.length, 2);
  assert.match(left[1], /^step-000006\.tmp-\d+$/);
  assert.equal(latestCheckpoint(root)?.step, 5);
  assert.deepEqual(cleanCheckpoints(root), [left[1]]);
  assert.deepEqual(readdirSync(root), ['step-000005']);
});

test('a step dir whose files do not match the manifest is not a checkpoint', () => {
  const root = fresh();
  saveCheckpoint(root, 1, files(1));
  const b = saveCheckpoint(root, 2, files(2));
  // corrupt one byte without changing the size: size check passes, sha256 fails → latest falls back to step 1
  const p = join(b.dir, 'state.json');
  const buf = readFileSync(p);
  buf[buf.length - 2] ^= 1;
  writeFileSync(p, buf);
  assert.equal(verifyCheckpoint(b.dir).ok, false);
  assert.equal(latestCheckpoint(root)?.step, 1);
  assert.throws(() => loadCheckpoint(b.dir), /state\.json does not match its sha256/);
  // a truncated/extended file fails even the size check and is cleaned
  appendFileSync(p, 'x');
  assert.deepEqual(
    listCheckpoints(root).map((c) => c.step),
    [1],
  );
  // a step dir with no manifest at all
  mkdirSync(join(root, 'step-000003'));
  writeFileSync(join(root, 'step-000003', 'state.json'), '{}');
  assert.deepEqual(cleanCheckpoints(root).sort(), ['step-000002', 'step-000003']);
  assert.deepEqual(readdirSync(root), ['step-000001']);
});

test('re-saving a step replaces it; paths may not escape the checkpoint', () => {
  const root = fresh();
  saveCheckpoint(root, 7, files(7));
  saveCheckpoint(root, 7, { 'state.json': { kind: 'json', value: { again: true } } });
  assert.deepEqual(loadCheckpoint(join(root, 'step-000007')).json('state.json'), { again: true });
  assert.throws(() => saveCheckpoint(root, 8, { '../evil.json': { kind: 'json', value: 1 } }), /must be relative/);
  assert.throws(() => saveCheckpoint(root, 8, { 'manifest.json': { kind: 'json', value: 1 } }), /reserved/);
  assert.throws(
    () =>
      saveCheckpoint(root, 8, {
        'a.safetensors': { kind: 'safetensors', tensors: { x: { shape: [2], data: new Float32Array(3) } } },
      }),
    /tensor "x" has shape \[2\]/,
  );
  assert.ok(!existsSync(join(root, 'step-000008')));
  assert.deepEqual(readdirSync(root), ['step-000007']);
});
