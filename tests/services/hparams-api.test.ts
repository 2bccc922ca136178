// Hyperparameters over the API are the contract's schema (contract/hparams.ts): a bad one is refused by the dispatcher
// before any handler runs, naming its path and saying what it must be; runs stored by another version read back with
// the fields this version takes typed and the rest shown apart, as stored.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createBackend } from '../../src-main/services/backend';
import type { ApiErrorData } from '../../src-main/contract/errors';
import { insertRun } from '../../src-main/storage/runs-queries';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('hparams-api-');
const quiet = { error() {}, warn() {} };
const backend = createBackend({ dataDir: tmp.dir, host: 'test', log: quiet });
after(async () => {
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

async function ok(method: string, params?: unknown): Promise<any> {
  const env = await backend.dispatcher.dispatch(method, params);
  if (!env.ok) assert.fail(`${method} failed: ${JSON.stringify(env.error)}`);
  return env.result;
}
async function fail(method: string, params?: unknown): Promise<ApiErrorData> {
  const env = await backend.dispatcher.dispatch(method, params);
  if (env.ok) assert.fail(`${method} unexpectedly succeeded: ${JSON.stringify(env.result)}`);
  return env.error;
}
// the model and dataset do not exist: a refusal for them would mean the hyperparameters were not checked first
const start = (hparams: unknown) => ({ model: { path: '/nonexistent/model' }, data: { datasetId: 999 }, hparams });

test('runs.start and runs.estimate refuse a bad hyperparameter naming its path, in the CLI’s words', async () => {
  const cases: Array<[unknown, string, RegExp]> = [
    [{ rank: 5000 }, 'hparams.rank', /hparams\.rank: must be ≤ 1024 \(got 5000\)/],
    [{ rank: 2.5 }, 'hparams.rank', /hparams\.rank: must be an integer \(got 2\.5\)/],
    [{ lr: 0 }, 'hparams.lr', /hparams\.lr: must be > 0 \(got 0\)/],
    [{ batchSize: '8' }, 'hparams.batchSize', /hparams\.batchSize: must be a number \(got "8"\)/],
    [
      { method: 'full' },
      'hparams.method',
      /hparams\.method: must be one of "lora", "projector", "lora\+projector" \(got "full"\)/,
    ],
    [
      { targetModules: ['q_proj', 'query'] },
      'hparams.targetModules.1',
      /hparams\.targetModules\.1: must be one of "q_proj", .*"down_proj" \(got "query"\)/,
    ],
    [{ dropout: 1 }, 'hparams.dropout', /hparams\.dropout: must be < 1 \(got 1\)/],
    [{ evalAtStart: 'yes' }, 'hparams.evalAtStart', /hparams\.evalAtStart: must be true or false \(got "yes"\)/],
    // cross-field checks name the field to change
    [{ epochs: 2, maxSteps: 10 }, 'hparams.maxSteps', /hparams\.maxSteps: give either epochs or maxSteps, not both/],
    [
      { maxSteps: 4, warmupSteps: 4 },
      'hparams.warmupSteps',
      /hparams\.warmupSteps: warmup \(4 steps\) must be shorter than maxSteps \(4\)/,
    ],
    // a field of another program (PEFT's name for the rank) is unknown here, not ignored
    [{ loraRank: 8 }, 'hparams.loraRank', /hparams\.loraRank: unknown field/],
    ['fast', 'hparams', /hparams: must be an object \(got "fast"\)/],
  ];
  for (const [hp, field, message] of cases) {
    for (const method of ['runs.start', 'runs.estimate']) {
      const e = await fail(method, start(hp));
      assert.equal(e.code, 'invalid_request', `${method} ${JSON.stringify(hp)}`);
      assert.equal(e.field, field, `${method} ${JSON.stringify(hp)}: ${e.message}`);
      assert.match(e.message, message);
    }
  }
  assert.equal((await ok('runs.list')).runs.length, 0, 'no run row was created');
  // good hyperparameters pass the contract: the refusal is then about the model, which does not exist
  const past = await fail('runs.start', start({ rank: 16, method: 'lora+projector' }));
  assert.match(past.field ?? '', /^model/);
});

test('runs recorded by another version read back: this version’s fields typed, the rest apart as stored', async () => {
  const older = insertRun(backend.db, {
    name: 'older',
    config: {
      trainer: 'vlm',
      // a field this version does not know, a target name it does not list, a rank above today's limit
      hparams: { method: 'lora', rank: 4096, lr: 2e-4, targetModules: ['query', 'key'], loraDropout: 0.1, epochs: 2 },
    },
  });
  const plain = insertRun(backend.db, {
    name: 'plain',
    config: { trainer: 'vlm', hparams: { method: 'projector', lr: 1e-3, maxSteps: 30 } },
  });
  const none = insertRun(backend.db, { name: 'toy', config: { trainer: 'toy' } });
  const odd = insertRun(backend.db, { name: 'odd', config: { hparams: 'not an object' } });

  const r = await ok('runs.get', { id: older.id });
  assert.deepEqual(
    r.config.hparams,
    { method: 'lora', lr: 2e-4, epochs: 2 },
    'nothing filled in: the defaults of today are not what that run used',
  );
  assert.deepEqual(r.config.otherHparams, { rank: 4096, targetModules: ['query', 'key'], loraDropout: 0.1 });
  assert.equal(r.config.trainer, 'vlm', 'the rest of the config is kept');
  const p = await ok('runs.get', { id: plain.id });
  assert.deepEqual(p.config.hparams, { method: 'projector', lr: 1e-3, maxSteps: 30 });
  assert.equal('otherHparams' in p.config, false);
  assert.deepEqual((await ok('runs.get', { id: none.id })).config, { trainer: 'toy' });
  const o = await ok('runs.get', { id: odd.id });
  assert.deepEqual(o.config.hparams, {});
  // one odd record does not break the list
  assert.deepEqual((await ok('runs.list')).runs.map((x: any) => x.name).sort(), ['odd', 'older', 'plain', 'toy']);
});
