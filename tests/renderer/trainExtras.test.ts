import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  quickStartPreset,
  trainCommand,
  trainWarnings,
  valuesFromHparams,
} from '../../src-renderer/composables/trainExtras';
import { TRAIN_FIELDS, toHparams } from '../../src-renderer/composables/trainForm';
import { defaultsOf } from '../../src-renderer/composables/hyperparams';
import { hparamsFromCli, parseHparams } from '../../src-main/training/hparams';

test("the demo's quick-start preset is its measured recipe; real models get a conservative one", () => {
  const demo = parseHparams(
    toHparams({
      ...defaultsOf(TRAIN_FIELDS),
      ...quickStartPreset({ name: 'Demo', source: 'demo', params: 444_500 }).values,
    }),
  );
  assert.equal(demo.lr, 3e-3);
  assert.equal(demo.rank, 16);
  assert.equal(demo.maxSteps, 400);
  assert.equal(demo.batchSize, 16);
  assert.equal(demo.targetModules.length, 7);
  assert.equal(demo.evalAtStart, true);
  const big = parseHparams(
    toHparams({ ...defaultsOf(TRAIN_FIELDS), ...quickStartPreset({ name: 'x', params: 9e8 }).values }),
  );
  assert.equal(big.lr, 2e-4);
  assert.equal(big.epochs, 3);
});

test("clone settings: a run's hyperparameters back into the form give the same hyperparameters", () => {
  const h = parseHparams(
    toHparams({
      ...defaultsOf(TRAIN_FIELDS),
      ...quickStartPreset({ name: 'Demo', source: 'demo' }).values,
      seed: 5,
      warmupRatio: 0.1,
    }),
  );
  const back = parseHparams(
    toHparams(valuesFromHparams(h as unknown as Record<string, unknown>, defaultsOf(TRAIN_FIELDS))),
  );
  assert.deepEqual(back, h);
});

test('the equivalent CLI command parses to the same hyperparameters', () => {
  const hp = toHparams({ ...defaultsOf(TRAIN_FIELDS), ...quickStartPreset({ name: 'Demo', source: 'demo' }).values });
  const line = trainCommand({ modelPath: '/models/My Model', dataset: 3, hparams: hp, name: "bob's run" });
  assert.match(
    line,
    /^lenslab train --model '\/models\/My Model' --data 3 --out \.\/runs\/new-run --name 'bob'\\''s run' /,
  );
  // the flags after the fixed ones, as `lenslab train` reads them
  const flags: Record<string, string> = {};
  const words = line.slice(line.indexOf("s run' ") + 7).split(' ');
  for (let i = 0; i < words.length; i += 2) flags[words[i].replace(/^--/, '')] = words[i + 1];
  assert.deepEqual(hparamsFromCli(flags), parseHparams(hp));
});

test('warnings: a tiny validation split, many epochs over few samples', () => {
  assert.match(
    trainWarnings({ train: 40, val: 5 }, { maxSteps: 400, batchSize: 16 }).join('\n'),
    /5 items: one answer moves the score by 20 points[\s\S]*About 160 passes over 40 training samples/,
  );
  assert.deepEqual(trainWarnings({ train: 960, val: 240 }, { maxSteps: 400, batchSize: 16 }), []);
  assert.match(trainWarnings({ train: 10, val: 0 }, { epochs: 3 })[0], /No validation items/);
});

test('an upload is named after its files, never the batch id', async () => {
  const { uploadLabel } = await import('../../src-renderer/composables/uploadLabel');
  assert.deepEqual(uploadLabel(['icons/a.png', 'icons/b.png']), { text: 'icons', name: 'icons' });
  assert.deepEqual(uploadLabel(['data.json']), { text: 'data.json', name: 'data' });
  assert.deepEqual(uploadLabel(['llava.json', 'vqa.jsonl']), { text: 'llava.json and vqa.jsonl', name: 'llava (+1)' });
  assert.deepEqual(uploadLabel(['a.json', 'b.png', 'c.png', 'd.png']), {
    text: 'a.json, b.png and 2 more files',
    name: 'a (+3)',
  });
});

test('train loss far below eval loss is named; close losses and the step-0 evaluation are not', async () => {
  const { overfitWarning } = await import('../../src-renderer/composables/trainExtras');
  const train = Array.from({ length: 30 }, (_, i) => ({ step: i + 1, value: 0.1 }));
  assert.match(
    overfitWarning(train, [
      { step: 0, value: 11 },
      { step: 30, value: 1.4 },
    ]) ?? '',
    /Train loss \(0\.10\) is far below eval loss \(1\.40\) at step 30/,
  );
  assert.equal(overfitWarning(train, [{ step: 30, value: 0.15 }]), null);
  assert.equal(overfitWarning(train, [{ step: 0, value: 11 }]), null);
});
