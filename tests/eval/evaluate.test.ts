import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { runEvaluation, compareResults, taskForAnnotation, type EvalItem } from '../../src-main/eval/evaluate';
import {
  createEvaluation,
  storeEvaluationResult,
  loadEvaluationResult,
  getEvaluation,
  failEvaluation,
  encodeReferences,
  decodeReferences,
} from '../../src-main/storage/evaluations-queries';

const items: EvalItem[] = [
  { key: 'a', prompt: '<image>\nHow many stars?', references: ['2'] },
  { key: 'b', prompt: '<image>\nWhat colour is the circle?', references: ['red'] },
  { key: 'c', prompt: '<image>\nWhat shape is top left?', references: ['square', 'a square'] },
  { key: 'd', prompt: '<image>\nHow many circles?', references: ['three'] },
];
const base = { a: 'no', b: 'blue', c: 'circle', d: '3.' } as Record<string, string>;
const tuned = { a: 'Two', b: 'Red', c: 'the square', d: '4' } as Record<string, string>;

test('runEvaluation generates, scores and reports progress; compareResults pairs items', async () => {
  const seen: number[] = [];
  const b = await runEvaluation({
    task: 'vqa',
    items,
    generate: async (it) => base[it.key as string],
    onProgress: (d) => seen.push(d),
  });
  const t = await runEvaluation({ task: 'vqa', items, generate: async (it) => tuned[it.key as string] });
  assert.deepEqual(seen, [1, 2, 3, 4]);
  assert.equal(b.metrics.exact_match, 0.25); // "3." = "three"
  assert.equal(t.metrics.exact_match, 0.75); // Two=2, Red=red, the square=square; 4≠three
  const cmp = compareResults(b, t);
  assert.equal(cmp.metrics.exact_match.delta, 0.5);
  assert.deepEqual(
    cmp.items.map((i) => i.change),
    ['better', 'better', 'better', 'worse'],
  );
  await assert.rejects(
    runEvaluation({ task: 'vqa', items: [{ key: 'x', prompt: 'q', references: [] }], generate: async () => '' }),
    /item "x" has no reference/,
  );
  assert.throws(() => compareResults(b, { ...t, predictions: t.predictions.slice(1) }), /only in base: \["a"\]/);
  assert.equal(taskForAnnotation('qa'), 'vqa');
  assert.equal(taskForAnnotation('caption'), 'caption');
});

test('evaluations and predictions round-trip through SQLite; base vs fine-tuned from storage', async () => {
  const db = openDatabase(':memory:');
  try {
    const b = await runEvaluation({ task: 'vqa', items, generate: async (it) => base[it.key as string] });
    const t = await runEvaluation({ task: 'vqa', items, generate: async (it) => tuned[it.key as string] });
    const idB = createEvaluation(db, { split: 'test', config: { model: 'demo' } });
    const idT = createEvaluation(db, { split: 'test', config: { model: 'demo', adapter: 'final' } });
    assert.equal(getEvaluation(db, idB)!.status, 'running');
    storeEvaluationResult(db, idB, b);
    storeEvaluationResult(db, idT, t);
    const row = getEvaluation(db, idT)!;
    assert.equal(row.status, 'completed');
    assert.deepEqual(JSON.parse(row.metrics_json), t.metrics);
    assert.equal(JSON.parse(row.config_json).task, 'vqa');
    const lb = loadEvaluationResult(db, idB);
    assert.deepEqual(
      lb.predictions.map((p) => [p.item.key, p.output, p.item.references]),
      items.map((i) => [i.key, base[i.key as string], i.references]),
    );
    const cmp = compareResults(lb, loadEvaluationResult(db, idT));
    assert.equal(cmp.metrics.exact_match.delta, 0.5);
    const idF = createEvaluation(db, {});
    failEvaluation(db, idF, 'model file missing');
    assert.equal(getEvaluation(db, idF)!.error, 'model file missing');
    assert.throws(() => loadEvaluationResult(db, idF), /is failed/);
  } finally {
    closeDatabase(db);
  }
  for (const refs of [['x'], ['a', 'b'], ['[odd]']]) assert.deepEqual(decodeReferences(encodeReferences(refs)), refs);
});
