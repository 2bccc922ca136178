// The backend worker (services/work-worker.ts): the run check and the tokenized preview give the same results in
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
import { PreviewSetupError, WorkLocal, WorkThread, type CheckInput } from '../../src-main/services/work-worker';
import { getFullItem } from '../../src-main/datasets/query';
import { importIcons, writeTinyModel } from '../training/vlm-fixture';
import { lengthItem, lintDataset, measureLengths, type LengthItem } from '../../src-main/datasets/lint';
import { loadItems } from '../../src-main/datasets/rows';
import { importDataset } from '../../src-main/datasets/import';
import { renderSetupFromFolder } from '../../src-main/datasets/model-setup';

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
const input = (over: Partial<CheckInput> = {}): CheckInput => ({
  modelDir,
  snapshot,
  hparams: { maxSteps: 3 },
  availableBytes: 8 * 1024 ** 3,
  ...over,
});

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
  assert.deepEqual(
    hp.issues,
    ((await rejection(local.check(input({ hparams: { method: 'full' } })))) as HparamsError).issues,
  );
  assert.match(hp.message, /method/);

  const model = await rejection(thread.check(input({ modelDir: join(tmp.dir, 'icons') })));
  assert.ok(model instanceof VlmCheckError);
  assert.equal(model.field, 'model');
  assert.match(model.message, /config\.json/);

  const long = await rejection(thread.check(input({ hparams: { maxSteps: 3, maxSeqLen: 16 } })));
  assert.ok(long instanceof SampleError);
  assert.ok(long.problems.length > 0);
  assert.match(long.message, /more than max_seq_len 16/);

  const mem = await rejection(
    thread.check(input({ availableBytes: 1024 * 1024, hparams: { maxSteps: 3, batchSize: 64 } })),
  );
  assert.ok(mem instanceof MemoryRefusalError);
  assert.equal(mem.estimate.fits, false);
  assert.ok(mem.estimate.suggestions.length > 0);
  assert.match(mem.message, /^not enough memory/);
});

test('the tokenized preview in the worker equals the preview in this thread; a bad folder is a PreviewSetupError', async () => {
  const itemId = (
    backend.db.prepare('SELECT id FROM items WHERE dataset_id = ? ORDER BY id LIMIT 1').get(datasetId) as { id: number }
  ).id;
  const it = getFullItem(backend.db, itemId)!;
  const req = { modelDir, item: { annotations: it.annotations, hasImage: !!it.image } };
  const [a, b] = await Promise.all([thread.preview(req), local.preview(req)]);
  assert.deepEqual(a, b);
  assert.ok(a.conversations.length > 0 && a.conversations[0].tokens.length > 0);
  const bad = await rejection(thread.preview({ ...req, modelDir: join(tmp.dir, 'nope') }));
  assert.ok(bad instanceof PreviewSetupError);
});

test('datasets.lint lengths measured in the worker give the same findings as in this thread (too_long)', async () => {
  const setup = renderSetupFromFolder(modelDir);
  const dataDir = join(tmp.dir, 'app');
  // the icons' captions (their lengths vary with the number of shapes) as a second dataset, and the QA items
  const capId = (
    await importDataset(backend.db, dataDir, join(tmp.dir, 'icons', 'captions.jsonl'), { dataset: 'captions' })
  ).datasetId;
  const items = loadItems(backend.db, capId).map(lengthItem);
  const own = measureLengths(items, setup);
  const counts = own.flatMap((l) => l.conversations.map((c) => ('tokens' in c ? c.tokens : 0))).sort((a, b) => a - b);
  const limit = counts[Math.floor(counts.length / 2)]; // about half the conversations are too long
  assert.ok(counts[0] <= limit && counts[counts.length - 1] > limit, `lengths ${counts.join(',')}`);
  const inThread = await lintDataset(backend.db, dataDir, capId, {
    model: { ...setup, contextLength: limit },
    store: false,
  });
  const viaWorker = await lintDataset(backend.db, dataDir, capId, {
    measure: (its, conversation) => thread.lintLengths({ modelDir, items: its, conversation }),
    contextLength: limit,
    store: false,
  });
  assert.ok(thread.started);
  assert.deepEqual(viaWorker, inThread);
  assert.ok((inThread.counts.too_long ?? 0) > 0, JSON.stringify(inThread.counts));
  assert.match(
    inThread.findings.find((f) => f.rule === 'too_long')!.message,
    new RegExp(`tokens; the model's context is ${limit}$`),
  );
  // the model's own context when none is given
  const full = await lintDataset(backend.db, dataDir, capId, {
    measure: (its, c) => thread.lintLengths({ modelDir, items: its, conversation: c }),
    store: false,
  });
  assert.deepEqual(full, await lintDataset(backend.db, dataDir, capId, { model: setup, store: false }));
  // the raw measurements agree too, and a bad folder is a PreviewSetupError
  assert.deepEqual((await thread.lintLengths({ modelDir, items })).lengths, own);
  assert.deepEqual(await thread.lintLengths({ modelDir, items }), await local.lintLengths({ modelDir, items }));
  const bad = await rejection(thread.lintLengths({ modelDir: join(tmp.dir, 'nope'), items }));
  assert.ok(bad instanceof PreviewSetupError);
});

test('a conversation that does not render is a render_error, the same in the worker', async () => {
  // a role that is not a string: the chat template refuses it (stored data never has one; the path is the same)
  const items = [
    {
      itemId: 1,
      hasImage: false,
      annotations: [
        {
          id: 1,
          kind: 'chat',
          data: {
            messages: [
              { role: 42, content: 'a' },
              { role: 'assistant', content: 'b' },
            ],
          },
        },
      ],
    },
    {
      itemId: 2,
      hasImage: false,
      annotations: [
        {
          id: 2,
          kind: 'chat',
          data: {
            messages: [
              { role: 'user', content: 'hi' },
              { role: 'assistant', content: 'b' },
            ],
          },
        },
      ],
    },
  ] as unknown as LengthItem[];
  const [w, l] = await Promise.all([thread.lintLengths({ modelDir, items }), local.lintLengths({ modelDir, items })]);
  assert.deepEqual(w, l);
  assert.deepEqual(w.lengths[0].conversations, [
    { kind: 'chat', error: 'chat template failed: messages[0].role must be a string' },
  ]);
  assert.ok('tokens' in w.lengths[1].conversations[0] && w.lengths[1].conversations[0].tokens > 0);
});
