// The Run view's score table and charts: the fine-tuned model beside the base model and a trivial baseline (always
// the most common answer for VQA, the most common caption for captions), baselines dashed on their metric's chart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evalScoreRows } from '../../src-renderer/composables/runView';
import { baselineMetric, metricLabel, ownAxisMetric } from '../../src-renderer/composables/chartData';
import { scorePredictions } from '../../src-main/eval/metrics';

test('caption evaluations: BLEU-4 and CIDEr beside the base model and the most-common-caption baseline', () => {
  const preds = [
    { prediction: 'a dog runs on the grass', references: ['A dog runs on the grass.', 'a brown dog running'] },
    { prediction: 'a cat on a sofa', references: ['a cat sleeps on a sofa', 'a dog runs on the grass'] },
  ];
  const tuned = scorePredictions('caption', preds).metrics;
  const base = scorePredictions(
    'caption',
    preds.map((p) => ({ ...p, prediction: 'a picture' })),
  ).metrics;
  const rows = evalScoreRows(tuned, base);
  assert.deepEqual(
    rows.map((r) => [r.label, r.tuned, r.base, r.baseline]),
    [
      ['BLEU-4', tuned.bleu4, base.bleu4, tuned.baseline_bleu4],
      ['CIDEr', tuned.cider, base.cider, tuned.baseline_cider],
    ],
  );
  assert.deepEqual(
    evalScoreRows(tuned, null).map((r) => r.base),
    [null, null],
    'no base evaluation yet',
  );
});

test('VQA evaluations: exact match beside the base model and always-the-most-common-answer', () => {
  const tuned = scorePredictions('vqa', [
    { prediction: '3', references: ['3'] },
    { prediction: '2', references: ['1'] },
    { prediction: '1', references: ['1'] },
  ]).metrics;
  const rows = evalScoreRows(tuned, { exact_match: 0 });
  assert.deepEqual(
    rows.map((r) => [r.label, r.tuned, r.base, r.baseline]),
    [['Exact match', 2 / 3, 0, 2 / 3]],
  );
});

test('baselines are named for people, dashed, and the CIDEr baseline shares the CIDEr scale', () => {
  assert.equal(metricLabel('eval_baseline_cider'), 'CIDEr, always the most common caption');
  assert.equal(metricLabel('eval_baseline_bleu4'), 'BLEU-4, always the most common caption');
  assert.ok(
    baselineMetric('eval_majority_baseline') &&
      baselineMetric('eval_baseline_bleu4') &&
      baselineMetric('baseline_cider'),
  );
  assert.ok(!baselineMetric('eval_bleu4') && !baselineMetric('eval_cider'));
  assert.ok(ownAxisMetric('eval_cider') && ownAxisMetric('eval_baseline_cider'));
  assert.ok(!ownAxisMetric('eval_baseline_bleu4'));
});
