// The generator hosts: the worker_thread gives the same tokens as this thread, maps errors by class name, stops
// when idle and starts again on demand; the pool keeps at most maxGenerators models and reloads a changed folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { GeneratorPool, GeneratorWorker } from '../../src-main/models/generate-worker';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('generate-worker-');
const cacheDir = join(tmp.dir, 'cache');
const a = join(tmp.dir, 'a');
const b = join(tmp.dir, 'b');
const messages = [{ role: 'user', content: 'Describe a red circle.' }];

before(() => {
  writeTinyLlava(a, 0, { initStd: 0.2 });
  writeTinyLlava(b, 1, { initStd: 0.2 });
});
after(() => tmp.cleanup());

test('worker: same tokens as in-thread, errors keep their class name, idle stop and restart', async () => {
  const pool = new GeneratorPool({ cacheDir });
  const want = await pool.generate({ modelDir: a, messages }, { maxNewTokens: 6 });
  await pool.close();
  const w = new GeneratorWorker({ cacheDir, idleMs: 100 });
  try {
    const tokens: number[] = [];
    const got = await w.generate({ modelDir: a, messages }, { maxNewTokens: 6 }, { onToken: (t) => tokens.push(t.id) });
    assert.deepEqual(got.ids, want.ids);
    assert.deepEqual(tokens, want.ids);
    await assert.rejects(
      w.generate({ modelDir: join(tmp.dir, 'none'), messages }, {}),
      (e: Error) => e.name === 'GenerateError' && /none: model folder not found/.test(e.message),
    );
    for (let i = 0; i < 100 && w.started; i++) await sleep(50);
    assert.equal(w.started, false, 'the idle worker stopped');
    const again = await w.generate({ modelDir: a, messages }, { maxNewTokens: 6 });
    assert.deepEqual(again.ids, want.ids);
    assert.equal(w.started, true);
  } finally {
    await w.close();
  }
  await assert.rejects(w.generate({ modelDir: a, messages }, {}), /closed/);
});

test('pool: at most maxGenerators loaded, a rewritten folder is reloaded', async () => {
  const pool = new GeneratorPool({ cacheDir, maxGenerators: 1 });
  try {
    const ra = await pool.generate({ modelDir: a, messages }, { maxNewTokens: 5 });
    const rb = await pool.generate({ modelDir: b, messages }, { maxNewTokens: 5 });
    assert.notDeepEqual(ra.ids, rb.ids);
    assert.deepEqual((await pool.generate({ modelDir: a, messages }, { maxNewTokens: 5 })).ids, ra.ids);
    // overwrite folder a with b's weights: the pool notices and reloads
    await sleep(20);
    writeTinyLlava(a, 1, { initStd: 0.2 });
    assert.deepEqual((await pool.generate({ modelDir: a, messages }, { maxNewTokens: 5 })).ids, rb.ids);
    // a request whose signal is already aborted never loads anything
    const ac = new AbortController();
    ac.abort();
    const c = await pool.generate({ modelDir: join(tmp.dir, 'none'), messages }, {}, { signal: ac.signal });
    assert.equal(c.finishReason, 'cancelled');
  } finally {
    await pool.close();
  }
});
