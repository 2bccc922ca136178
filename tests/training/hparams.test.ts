import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseHparams,
  HparamsError,
  planRun,
  lrAt,
  hparamsHash,
  hparamsFromCli,
} from '../../src-main/training/hparams';

const rejects = (input: unknown, field: RegExp) =>
  assert.throws(
    () => parseHparams(input),
    (e: unknown) => e instanceof HparamsError && field.test(e.message),
    `expected ${field}`,
  );

test('defaults fill in; epochs defaults to 3 only when maxSteps is absent', () => {
  const h = parseHparams({});
  assert.equal(h.method, 'lora');
  assert.equal(h.rank, 8);
  assert.equal(h.epochs, 3);
  assert.deepEqual(h.betas, [0.9, 0.999]);
  const s = parseHparams({ maxSteps: 100 });
  assert.equal(s.epochs, undefined);
  assert.equal(s.maxSteps, 100);
});

test('invalid values are refused with the field and flag named', () => {
  rejects({ lr: -1 }, /lr \(--lr\): must be > 0 \(got -1\)/);
  rejects({ batchSize: 0 }, /batchSize \(--batch-size\): must be ≥ 1/);
  rejects({ rank: 2.5 }, /rank \(--rank\): must be an integer/);
  rejects({ method: 'full' }, /method \(--method\): must be one of "lora", "projector", "lora\+projector"/);
  rejects({ dropout: 1 }, /dropout .*must be < 1/);
  rejects({ targetModules: [] }, /targetModules/);
  rejects({ targetModules: ['q_proj', 'q_proj'] }, /targetModules.*twice/);
  rejects({ betas: [0.9, 1.2] }, /betas\.1.*must be < 1/);
  rejects({ learningRate: 1 }, /unknown hyperparameter: learningRate/);
  rejects({ epochs: 2, maxSteps: 10 }, /maxSteps .*either epochs or maxSteps/);
  rejects({ warmupSteps: 5, warmupRatio: 0.1 }, /warmupRatio .*not both/);
  rejects({ maxSteps: 10, warmupSteps: 10 }, /warmupSteps .*shorter than maxSteps/);
});

test('planRun checks against the dataset size', () => {
  const plan = planRun(parseHparams({ epochs: 2, batchSize: 4, gradAccum: 2, warmupRatio: 0.25 }), {
    trainSamples: 30,
  });
  // 8 micro-batches per epoch → 4 steps per epoch → 8 steps; warmup floor(0.25·8) = 2
  assert.deepEqual(plan, { totalSteps: 8, stepsPerEpoch: 4, warmupSteps: 2, effectiveBatch: 8 });
  assert.throws(() => planRun(parseHparams({}), { trainSamples: 0 }), /training split is empty/);
  assert.throws(
    () => planRun(parseHparams({ epochs: 1, warmupSteps: 5 }), { trainSamples: 8 }),
    /warmupSteps.*warmup \(5 steps\) must be shorter than the run \(2 steps\)/,
  );
  assert.throws(
    () => planRun(parseHparams({ evalEvery: 10 }), { trainSamples: 8, evalSamples: 0 }),
    /evalEvery.*no validation items/,
  );
});

test("LR schedule (the engine's, HF semantics on step − 1): linear warmup then cosine / linear decay", () => {
  const h = parseHparams({ lr: 1, schedule: 'cosine' });
  assert.equal(lrAt(1, h, 10, 2), 0);
  assert.equal(lrAt(2, h, 10, 2), 0.5);
  assert.equal(lrAt(3, h, 10, 2), 1); // first step after warmup at the peak
  assert.ok(Math.abs(lrAt(7, h, 10, 2) - (1 + Math.cos((Math.PI * 4) / 8)) / 2) < 1e-15);
  assert.ok(lrAt(10, h, 10, 2) > 0);
  const lin = parseHparams({ lr: 0.5, schedule: 'linear', minLrRatio: 0.5 });
  assert.equal(lrAt(1, lin, 5, 0), 0.5);
  assert.ok(Math.abs(lrAt(5, lin, 5, 0) - 0.5 * (0.5 + 0.5 * (1 / 5))) < 1e-15);
  assert.equal(lrAt(4, parseHparams({ lr: 0.3, schedule: 'constant' }), 5, 0), 0.3);
  assert.throws(() => lrAt(0, h, 10, 2), /outside/);
});

test('hash ignores eval/save cadence but not training settings', () => {
  const a = parseHparams({ lr: 1e-3 });
  assert.equal(hparamsHash(a), hparamsHash(parseHparams({ lr: 1e-3, saveEvery: 7, evalEvery: 3, keepLastK: 9 })));
  assert.notEqual(hparamsHash(a), hparamsHash(parseHparams({ lr: 2e-3 })));
});

test('CLI flags map to fields; bad numbers and unknown flags are named', () => {
  const h = hparamsFromCli({
    'batch-size': '8',
    lr: '1e-4',
    steps: '200',
    'grad-accum': '2',
    betas: '0.9,0.95',
    method: 'lora+projector',
    'target-modules': 'q_proj,v_proj',
  });
  assert.equal(h.batchSize, 8);
  assert.equal(h.maxSteps, 200);
  assert.equal(h.gradAccum, 2);
  assert.deepEqual(h.betas, [0.9, 0.95]);
  assert.deepEqual(h.targetModules, ['q_proj', 'v_proj']);
  assert.throws(() => hparamsFromCli({ lr: 'fast' }), /lr \(--lr\): must be a number \(got "fast"\)/);
  assert.throws(() => hparamsFromCli({ 'learning-rate': '1' }), /unknown option --learning-rate/);
});

test('quantizeBase: --quantize-base int4|int8|none, named when wrong; a float base keeps the hash of before it existed', () => {
  assert.equal(parseHparams({}).quantizeBase, 'none');
  assert.equal(hparamsFromCli({ 'quantize-base': 'int4' }).quantizeBase, 'int4');
  assert.equal(hparamsFromCli({ 'quantize-base': 'int8' }).quantizeBase, 'int8');
  assert.throws(
    () => hparamsFromCli({ 'quantize-base': 'int3' }),
    /quantizeBase \(--quantize-base\): must be one of "none", "int8", "int4" \(got "int3"\)/,
  );
  const none = parseHparams({ lr: 1e-3 });
  // the hash of a checkpoint written before the field existed: the same fields without quantizeBase
  const { quantizeBase: _q, ...older } = none;
  void _q;
  assert.equal(hparamsHash(none), hparamsHash(older as typeof none));
  assert.notEqual(hparamsHash(none), hparamsHash(parseHparams({ lr: 1e-3, quantizeBase: 'int4' })));
  assert.notEqual(
    hparamsHash(parseHparams({ quantizeBase: 'int8' })),
    hparamsHash(parseHparams({ quantizeBase: 'int4' })),
  );
});

test('packing: off by default, --packing true|false, and a checkpoint resumes across it (same loss and gradients)', () => {
  assert.equal(parseHparams({}).packing, false);
  assert.equal(hparamsFromCli({ packing: 'true' }).packing, true);
  assert.equal(hparamsFromCli({ packing: 'false' }).packing, false);
  assert.throws(() => hparamsFromCli({ packing: 'maybe' }), /packing \(--packing\): must be true or false/);
  assert.equal(hparamsHash(parseHparams({ lr: 1e-3 })), hparamsHash(parseHparams({ lr: 1e-3, packing: true })));
  const { packing: _p, ...older } = parseHparams({ lr: 1e-3 });
  void _p;
  assert.equal(hparamsHash(parseHparams({ lr: 1e-3 })), hparamsHash(older as ReturnType<typeof parseHparams>));
});

test('gradientCheckpointing: off by default, --gradient-checkpointing true|false, resumable across it', () => {
  assert.equal(parseHparams({}).gradientCheckpointing, false);
  assert.equal(hparamsFromCli({ 'gradient-checkpointing': 'true' }).gradientCheckpointing, true);
  assert.equal(hparamsFromCli({ 'gradient-checkpointing': 'no' }).gradientCheckpointing, false);
  assert.throws(
    () => hparamsFromCli({ 'gradient-checkpointing': 'sometimes' }),
    /gradientCheckpointing \(--gradient-checkpointing\): must be true or false/,
  );
  // the same loss and gradients: a run's hash (and so its checkpoints) does not depend on it
  assert.equal(
    hparamsHash(parseHparams({ lr: 1e-3 })),
    hparamsHash(parseHparams({ lr: 1e-3, gradientCheckpointing: true })),
  );
});
