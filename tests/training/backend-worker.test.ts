// The backend worker (training/backend-worker.ts): the run check and the tokenized preview give the same results in
// a worker_thread as in this thread, and their errors come back as the same classes with the same fields.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { createBackend } from '../../src-main/services/backend';
import { snapshotDataset } from '../../src-main/training/data';
import { HparamsError } from '../../src-main/training/hparams';
import { SampleError } from '../../src-main/training/batching';
import { MemoryRefusalError, VlmCheckError } from '../../src-main/training/vlm-config';
import { PreviewSetupError, WorkLocal, WorkThread, type CheckInput } from '../../src-main/training/backend-worker';
import { getFullItem } from '../../src-main/datasets/query';
import { importIcons, writeTinyModel } from './vlm-fixture';

const tmp = tempDir('backend-worker-');
const backend = createBackend({ dataDir: join(tmp.dir, 'app'), host: 'test', log: { error() {}, warn() {} } });
const thread = new WorkThread();
const local = new WorkLocal();
after(async () => {
  await thread.close();
  backend.close();
  tmp.cleanup();
});

const modelDir = writeTinyModel(join(tmp.dir, 'model'));
const datasetId = await importIcons(backend.db, join(tmp.dir, 'app'), join(tmp.dir, 'icons'));
const snapshot = snapshotDataset(backend.db, join(tmp.dir, 'app'), datasetId);
const input = (over: Partial<CheckInput> = {}): CheckInput => ({ modelDir, snapshot, hparams: { maxSteps: 3 }, availableBytes: 8 * 1024 ** 3, ...over });

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail('unexpectedly succeeded');
}

test('the run check in the worker equals the check in this thread', async () => {
  const [a, b] = await Promise.all([thread.check(input()), local.check(input())]);
  assert.ok(thread.started, 'the check ran in a worker thread');
  assert.deepEqual(a, b);
  assert.ok(a.trainSamples > 0);
});

test('check errors cross the thread as their own classes with their fields', async () => {
  const hp = await rejection(thread.check(input({ hparams: { method: 'full' } })));
  assert.ok(hp instanceof HparamsError);
  assert.deepEqual(hp.issues, ((await rejection(local.check(input({ hparams: { method: 'full' } })))) as HparamsError).issues);
  assert.match(hp.message, /method/);

  const model = await rejection(thread.check(input({ modelDir: join(tmp.dir, 'icons') })));
  assert.ok(model instanceof VlmCheckError);
  assert.equal(model.field, 'model');
  assert.match(model.message, /config\.json/);

  const long = await rejection(thread.check(input({ hparams: { maxSteps: 3, maxSeqLen: 16 } })));
  assert.ok(long instanceof SampleError);
  assert.ok(long.problems.length > 0);
  assert.match(long.message, /more than max_seq_len 16/);

  const mem = await rejection(thread.check(input({ availableBytes: 1024 * 1024, hparams: { maxSteps: 3, batchSize: 64 } })));
  assert.ok(mem instanceof MemoryRefusalError);
  assert.equal(mem.estimate.fits, false);
  assert.ok(mem.estimate.suggestions.length > 0);
  assert.match(mem.message, /^not enough memory/);
});

test('the tokenized preview in the worker equals the preview in this thread; a bad folder is a PreviewSetupError', async () => {
  const itemId = (backend.db.prepare('SELECT id FROM items WHERE dataset_id = ? ORDER BY id LIMIT 1').get(datasetId) as { id: number }).id;
  const it = getFullItem(backend.db, itemId)!;
  const req = { modelDir, item: { annotations: it.annotations, hasImage: !!it.image } };
  const [a, b] = await Promise.all([thread.preview(req), local.preview(req)]);
  assert.deepEqual(a, b);
  assert.ok(a.conversations.length > 0 && a.conversations[0].tokens.length > 0);
  const bad = await rejection(thread.preview({ ...req, modelDir: join(tmp.dir, 'nope') }));
  assert.ok(bad instanceof PreviewSetupError);
});
