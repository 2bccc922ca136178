import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRAIN_FIELDS, toHparams, suggestionPatch, formFieldOf } from '../../src-renderer/composables/trainForm';
import { defaultsOf } from '../../src-renderer/composables/hyperparams';
import { parseHparams } from '../../src-main/training/hparams';
import { runSummary, bestMetrics, toGallery, progressLabel } from '../../src-renderer/composables/runView';

test("the Train form's defaults are the backend's defaults, and every form value parses", () => {
  const fromForm = parseHparams(toHparams(defaultsOf(TRAIN_FIELDS)));
  const backend = parseHparams({});
  // one deliberate difference: runs started in the app evaluate the base model at step 0 (the curves show the gain)
  assert.equal(fromForm.evalAtStart, true);
  assert.deepEqual({ ...fromForm, evalAtStart: false }, backend);
  const steps = parseHparams(toHparams({ ...defaultsOf(TRAIN_FIELDS), duration: 'steps', maxSteps: 30, method: 'projector', warmupRatio: 0.1, targets: 'all' }));
  assert.equal(steps.maxSteps, 30);
  assert.equal(steps.epochs, undefined);
  assert.equal(steps.method, 'projector');
  assert.equal(steps.warmupRatio, 0.1);
  const all = parseHparams(toHparams({ ...defaultsOf(TRAIN_FIELDS), targets: 'all' }));
  assert.equal(all.targetModules.length, 7);
  assert.equal(parseHparams(toHparams({ ...defaultsOf(TRAIN_FIELDS), quantizeBase: 'int4' })).quantizeBase, 'int4');
  assert.equal('quantizeBase' in toHparams(defaultsOf(TRAIN_FIELDS)), false, 'a float base sends nothing new');
  assert.deepEqual(suggestionPatch('hold the frozen base as int4 (quantizeBase int4, --quantize-base int4; the adapter stays float32)'), { quantizeBase: 'int4' });
});

test('memory suggestions that name values become field changes; backend fields map to form fields', () => {
  assert.deepEqual(suggestionPatch('use batch size 1 with gradient accumulation ×4 (keeps the effective batch of 4)'), { batchSize: 1, gradAccum: 4 });
  assert.deepEqual(suggestionPatch('limit sequences to 512 tokens (max_seq_len; image tokens count)'), { maxSeqLen: 512 });
  assert.deepEqual(suggestionPatch('use batch size 1 and sequences of at most 256 tokens'), { batchSize: 1, maxSeqLen: 256 });
  assert.equal(suggestionPatch('close other applications: the machine has 8 GB in all'), null);
  assert.equal(formFieldOf('hparams.lr'), 'lr');
  assert.equal(formFieldOf('hparams.targetModules.2'), 'targets');
  assert.equal(formFieldOf('data.datasetId'), null);
});

test('run summaries, best metrics and the prediction gallery rows', () => {
  assert.equal(runSummary({ hparams: { method: 'lora', rank: 8, lr: 0.0002, epochs: 3, batchSize: 4, gradAccum: 2 } }), 'lora r8 · lr 2e-4 · 3 epochs · batch 4×2');
  assert.equal(runSummary({ trainer: 'toy' }), 'toy');
  const best = bestMetrics(new Map([
    ['loss', [{ step: 1, value: 3 }, { step: 2, value: 1.5 }, { step: 3, value: 2 }]],
    ['eval_exact_match', [{ step: 2, value: 0.25 }, { step: 4, value: 0.5 }]],
    ['lr', [{ step: 1, value: 1 }]],
  ]));
  assert.deepEqual(best, [{ name: 'loss', value: 1.5, step: 2 }, { name: 'eval_exact_match', value: 0.5, step: 4 }]);
  const tuned = [{ id: 1, itemId: 7, key: 0, prompt: '<image>\nHow many stars?', output: 'two', references: ['two'], scores: { exact_match: 1 } }];
  const base = [{ id: 9, itemId: 7, key: 0, prompt: '<image>\nHow many stars?', output: 'red', references: ['two'], scores: { exact_match: 0 } }];
  const rows = toGallery(tuned, (id) => `/thumb/${id}`, base);
  assert.deepEqual(rows[0], { id: 1, imageUrl: '/thumb/7', question: 'How many stars?', reference: 'two', prediction: 'two', correct: true, score: null, compare: { prediction: 'red', correct: false, score: null } });
  // a caption item is marked by its exact match and still shows its BLEU-4
  const cap = toGallery([{ id: 2, itemId: 8, key: 1, prompt: '<image>\nDescribe.', output: 'a red star', references: ['a red star'], scores: { bleu4: 0.9, cider: 3, exact_match: 1 } }], () => null);
  assert.equal(cap[0].correct, true);
  assert.equal(cap[0].score, 0.9);
});

test('progressLabel: the words over the progress bar follow the run status', () => {
  assert.equal(progressLabel('running'), 'Training');
  assert.equal(progressLabel('paused'), 'Paused');
  assert.equal(progressLabel('completed'), 'Finished');
  assert.equal(progressLabel('cancelled'), 'Cancelled');
  assert.equal(progressLabel('failed'), 'Failed');
  assert.match(progressLabel('interrupted'), /resume/);
  assert.notEqual(progressLabel('queued'), 'Training');
});
