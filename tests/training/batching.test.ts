import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  collate,
  pack,
  checkSamples,
  assertSamplesFit,
  BatchSchedule,
  IGNORE_INDEX,
  SampleError,
  type RenderedSample,
} from '../../src-main/training/batching';

const s = (ids: number[], mask: number[], key?: string, imageCount = 0): RenderedSample => ({
  ids,
  lossMask: mask,
  imageCount,
  key,
});

test('collate pads right, masks padding and non-assistant tokens with -100', () => {
  const samples = [s([5, 6, 7, 8], [0, 0, 1, 1], 'a', 1), s([9, 10, 11], [0, 1, 1], 'b')];
  const b = collate(samples, [0, 1], { padId: 0 });
  assert.equal(b.seqLen, 4);
  assert.deepEqual([...b.inputIds], [5, 6, 7, 8, 9, 10, 11, 0]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 1, 1, 1, 0]);
  assert.deepEqual([...b.labels], [IGNORE_INDEX, IGNORE_INDEX, 7, 8, IGNORE_INDEX, 10, 11, IGNORE_INDEX]);
  assert.equal(b.tokens, 7);
  assert.equal(b.lossTokens, 4);
  assert.deepEqual(b.imageCounts, [1, 0]);
  const fixed = collate(samples, [1], { padId: 0, padTo: 'max', maxSeqLen: 6 });
  assert.equal(fixed.seqLen, 6);
  assert.equal(collate(samples, [1], { padId: 0, padMultiple: 8 }).seqLen, 8);
});

test('too-long samples are reported by item, never cut', () => {
  const samples = [s([1, 2, 3], [0, 1, 1], 'ok'), s(Array(12).fill(1), [0, ...Array(11).fill(1)], 'img_0042.jpg')];
  const problems = checkSamples(samples, { maxSeqLen: 10 });
  assert.equal(problems.length, 1);
  assert.equal(problems[0].key, 'img_0042.jpg');
  assert.match(problems[0].message, /12 tokens.*max_seq_len 10/);
  assert.throws(
    () => assertSamplesFit(samples, { maxSeqLen: 10 }),
    (e: unknown) => e instanceof SampleError && /img_0042\.jpg/.test(e.message),
  );
  assert.throws(() => collate(samples, [0, 1], { padId: 0, maxSeqLen: 10 }), /img_0042\.jpg.*12 tokens/);
});

test('other sample problems name the item', () => {
  const problems = checkSamples(
    [
      s([1, 2], [0, 0], 'no-answer'),
      s([1, 2, 3], [0, 1], 'mismatch'),
      s([1, 99], [0, 1], 'vocab'),
      s([1, 2], [0, 1], 'imgs', 3),
    ],
    { maxSeqLen: 100, vocabSize: 50, maxImagesPerSample: 1 },
  );
  const by = (k: string) =>
    problems
      .filter((p) => p.key === k)
      .map((p) => p.message)
      .join(' | ');
  assert.match(by('no-answer'), /no assistant tokens/);
  assert.match(by('mismatch'), /3 token ids but a loss mask of 2/);
  assert.match(by('vocab'), /token id 99 outside the vocabulary/);
  assert.match(by('imgs'), /3 images/);
});

test('schedule: epochs, grad accumulation, seeded order per epoch', () => {
  const sch = new BatchSchedule({ numSamples: 10, batchSize: 3, gradAccum: 2, seed: 5, epochs: 2 });
  // 4 micro-batches per epoch (3,3,3,1) → 2 steps per epoch
  assert.equal(sch.microBatchesPerEpoch, 4);
  assert.equal(sch.stepsPerEpoch, 2);
  assert.equal(sch.totalSteps, 4);
  const steps = [];
  while (!sch.done()) steps.push(sch.nextStep());
  assert.equal(steps.length, 4);
  assert.deepEqual(
    steps.map((x) => x.microBatches.map((m) => m.length)),
    [
      [3, 3],
      [3, 1],
      [3, 3],
      [3, 1],
    ],
  );
  const epoch0 = steps.slice(0, 2).flatMap((x) => x.microBatches.flat());
  const epoch1 = steps.slice(2).flatMap((x) => x.microBatches.flat());
  assert.deepEqual(
    [...epoch0].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(
    [...epoch1].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.notDeepEqual(epoch0, epoch1);
  assert.throws(() => sch.nextStep(), /done/);
  // same seed → same order; another seed → another
  const again = new BatchSchedule({ numSamples: 10, batchSize: 3, gradAccum: 2, seed: 5, epochs: 2 });
  assert.deepEqual(again.nextStep().microBatches, steps[0].microBatches);
  const other = new BatchSchedule({ numSamples: 10, batchSize: 3, gradAccum: 2, seed: 6, epochs: 2 });
  assert.notDeepEqual(other.nextStep().microBatches, steps[0].microBatches);
});

test('schedule: max steps cycles epochs; drop_last; resuming from a saved position continues identically', () => {
  const opts = { numSamples: 7, batchSize: 2, seed: 11, maxSteps: 9, dropLast: true };
  const full = new BatchSchedule(opts);
  assert.equal(full.samplesPerEpoch, 6);
  const all = [];
  while (!full.done()) all.push(full.nextStep());
  assert.equal(all.length, 9);
  assert.deepEqual(
    all.map((x) => x.epoch),
    [0, 0, 0, 1, 1, 1, 2, 2, 2],
  );
  for (const st of all) assert.equal(st.microBatches[0].length, 2);

  const first = new BatchSchedule(opts);
  for (let i = 0; i < 4; i++) first.nextStep();
  const saved = JSON.parse(JSON.stringify(first.position()));
  assert.deepEqual(saved, { seed: 11, epoch: 1, index: 2, step: 4 });
  const resumed = new BatchSchedule(opts, saved);
  const rest = [];
  while (!resumed.done()) rest.push(resumed.nextStep());
  assert.deepEqual(rest, all.slice(4));
  assert.throws(() => new BatchSchedule({ ...opts, seed: 12 }, saved), /seed 11.*seed 12/);
});

test('schedule refuses bad settings with the field named', () => {
  assert.throws(() => new BatchSchedule({ numSamples: 0, batchSize: 2, seed: 1, epochs: 1 }), /at least 1/);
  assert.throws(() => new BatchSchedule({ numSamples: 5, batchSize: 0, seed: 1, epochs: 1 }), /batch_size/);
  assert.throws(() => new BatchSchedule({ numSamples: 5, batchSize: 2, seed: 1 }), /epochs or max_steps/);
  assert.throws(
    () => new BatchSchedule({ numSamples: 3, batchSize: 4, seed: 1, epochs: 1, dropLast: true }),
    /fewer than batch_size/,
  );
});

test('pack lays samples end to end, first-fit decreasing, ordinals in the mask, each first label ignored', () => {
  const samples = [
    s([1, 2, 3, 4, 5, 6], [0, 0, 1, 1, 1, 1], 'long', 1),
    s([7, 8, 9], [1, 1, 1], 'a', 1),
    s([10, 11], [0, 1], 'b'),
    s([12, 13, 14], [0, 1, 1], 'c', 1),
  ];
  const padded = collate(samples, [0, 1, 2, 3], { padId: 0 });
  const b = pack(samples, [0, 1, 2, 3], { padId: 0 });
  // capacity = the longest sample (6): [long], [a, c], [b]
  assert.equal(b.batchSize, 3);
  assert.equal(b.seqLen, 6);
  assert.deepEqual(b.sampleIndices, [0, 1, 3, 2]);
  assert.deepEqual(b.imageCounts, [1, 2, 0]);
  assert.deepEqual([...b.inputIds], [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 10, 11, 0, 0, 0, 0]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 0, 0, 0, 0]);
  const I = IGNORE_INDEX;
  // sample a's first token is a target of nothing (its label at t = 0 is never used), nor is c's: not the next of a
  assert.deepEqual([...b.labels], [I, I, 3, 4, 5, 6, I, 8, 9, I, 13, 14, I, 11, I, I, I, I]);
  assert.equal(b.tokens, padded.tokens);
  assert.equal(b.lossTokens, padded.lossTokens);
  // a wider capacity packs more into a row; a sample never splits
  const wide = pack(samples, [0, 1, 2, 3], { padId: 0, capacity: 9 });
  assert.equal(wide.batchSize, 2);
  assert.deepEqual(wide.sampleIndices, [0, 1, 3, 2]);
  assert.deepEqual([...wide.attentionMask].slice(0, 9), [1, 1, 1, 1, 1, 1, 2, 2, 2]);
  assert.throws(() => pack(samples, [0], { padId: 0, maxSeqLen: 4 }), /long.*6 tokens/);
});
