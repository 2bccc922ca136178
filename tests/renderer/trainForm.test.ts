import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRAIN_FIELDS,
  TARGET_PRESETS,
  fieldsFor,
  toHparams,
  suggestionPatch,
  formFieldOf,
} from '../../src-renderer/composables/trainForm';
import { defaultsOf, validateField } from '../../src-renderer/composables/hyperparams';
import { parseHparams } from '../../src-main/training/hparams';
import { DEFAULT_EPOCHS, hparamsFields, hparamsSchema, LORA_TARGETS } from '../../src-main/contract/hparams';
import { TRAIN_PRESETS } from '../../src-main/contract/presets';
import { presetValues, valuesFromHparams } from '../../src-renderer/composables/trainExtras';
import { runSummary, bestMetrics, toGallery, progressLabel } from '../../src-renderer/composables/runView';

test("the Train form's defaults are the backend's defaults, and every form value parses", () => {
  const fromForm = parseHparams(toHparams(defaultsOf(TRAIN_FIELDS)));
  const backend = parseHparams({});
  // one deliberate difference: runs started in the app evaluate the base model at step 0 (the curves show the gain)
  assert.equal(fromForm.evalAtStart, true);
  assert.deepEqual({ ...fromForm, evalAtStart: false }, backend);
  const steps = parseHparams(
    toHparams({
      ...defaultsOf(TRAIN_FIELDS),
      duration: 'steps',
      maxSteps: 30,
      method: 'projector',
      warmupRatio: 0.1,
      targets: 'all',
    }),
  );
  assert.equal(steps.maxSteps, 30);
  assert.equal(steps.epochs, undefined);
  assert.equal(steps.method, 'projector');
  assert.equal(steps.warmupRatio, 0.1);
  const all = parseHparams(toHparams({ ...defaultsOf(TRAIN_FIELDS), targets: 'all' }));
  assert.equal(all.targetModules.length, 7);
  assert.equal(parseHparams(toHparams({ ...defaultsOf(TRAIN_FIELDS), quantizeBase: 'int4' })).quantizeBase, 'int4');
  assert.equal('quantizeBase' in toHparams(defaultsOf(TRAIN_FIELDS)), false, 'a float base sends nothing new');
  assert.equal(parseHparams(toHparams({ ...defaultsOf(TRAIN_FIELDS), packing: true })).packing, true);
  assert.equal('packing' in toHparams(defaultsOf(TRAIN_FIELDS)), false, 'unpacked sends nothing new');
  assert.deepEqual(
    suggestionPatch(
      'hold the frozen base as int4 (quantizeBase int4, --quantize-base int4; the adapter stays float32)',
    ),
    { quantizeBase: 'int4' },
  );
});

test("the Train form's defaults, limits and choices are the schema's", () => {
  const schemaDefaults = hparamsSchema.parse({}) as Record<string, unknown>;
  const shape = hparamsFields.shape as Record<string, { safeParse(v: unknown): { success: boolean } }>;
  const formDefaults = defaultsOf(TRAIN_FIELDS);
  let checked = 0;
  for (const f of TRAIN_FIELDS) {
    if (!(f.key in shape)) continue;
    checked++;
    // the one default the app sets apart (runs started here evaluate the base model at step 0); fields the schema
    // leaves unset get a value the schema takes (epochs as parseHparams fills it in)
    if (f.key === 'evalAtStart') assert.equal(f.default, true);
    else if (f.key in schemaDefaults) assert.deepEqual(f.default, schemaDefaults[f.key], `${f.key}'s default`);
    else assert.ok(shape[f.key].safeParse(f.default).success, `${f.key}'s default ${f.default} parses`);
    if (f.key === 'epochs') assert.equal(f.default, DEFAULT_EPOCHS);
    const form = (v: unknown) => validateField(f, v as number, formDefaults) === null;
    const schema = (v: unknown) => shape[f.key].safeParse(v).success;
    if (f.type === 'number') {
      // both sides of each limit, and a fraction where whole numbers are asked: the form says no exactly where the schema does
      const probes = [f.default, 0.5, -1];
      for (const b of [f.min, f.max]) if (b !== undefined) probes.push(b, b - 1e-9, b + 1e-9, b - 1, b + 1);
      if (f.max === undefined) probes.push(1e9);
      for (const v of probes) assert.equal(form(v), schema(v), `${f.key} = ${v}: form ${form(v)}, schema ${schema(v)}`);
    } else if (f.type === 'select') {
      for (const o of f.options) assert.ok(schema(o.value), `${f.key} option ${o.value}`);
      const all = (hparamsFields.shape as Record<string, any>)[f.key].unwrap().options as string[];
      assert.deepEqual(
        f.options.map((o) => o.value),
        all,
        `${f.key}: every choice of the schema, in its order`,
      );
    }
  }
  assert.equal(checked, TRAIN_FIELDS.length - 2, 'every field but duration and targets is a schema field');
  // the LoRA layer choices are the schema's targets: its default, and all of them
  assert.deepEqual(TARGET_PRESETS.attention, schemaDefaults.targetModules);
  assert.deepEqual(TARGET_PRESETS.all, LORA_TARGETS);
  for (const mods of Object.values(TARGET_PRESETS)) assert.ok(shape.targetModules.safeParse(mods).success);
  const targets = TRAIN_FIELDS.find((f) => f.key === 'targets');
  assert.ok(targets?.type === 'select');
  assert.deepEqual(
    targets.options.map((o) => o.value),
    Object.keys(TARGET_PRESETS),
  );
});

test('recipe presets and cloned runs fill the form; LoRA layers outside its choices are offered as they are', () => {
  const blip2 = TRAIN_PRESETS.find((p) => p.id === 'blip2-caption-lora')!;
  const v = presetValues(blip2, defaultsOf(TRAIN_FIELDS));
  assert.equal(v.targets, 'qv');
  const h = parseHparams(toHparams(v));
  assert.deepEqual(
    [h.rank, h.alpha, h.dropout, h.lr, h.weightDecay, h.schedule, h.clipNorm],
    [16, 32, 0.05, 5e-5, 0.01, 'constant', 0],
  );
  assert.deepEqual(h.targetModules, ['q_proj', 'v_proj']);
  // BLIP's BERT text model names its projections query / key: a family fact, not a choice of this form; the form
  // offers them as the recipe gives them and the backend names what it does not take
  const blip = TRAIN_PRESETS.find((p) => p.id === 'blip-vqa-lora')!;
  const b = presetValues(blip, { ...defaultsOf(TRAIN_FIELDS), targets: 'all' });
  assert.equal(b.targets, 'query,key');
  const offered = fieldsFor(b).find((f) => f.key === 'targets');
  assert.ok(offered?.type === 'select' && offered.options.some((o) => o.value === 'query,key'));
  assert.equal(validateField(offered, 'query,key', b), null);
  assert.deepEqual(toHparams(b).targetModules, ['query', 'key']);
  assert.throws(() => parseHparams(toHparams(b)), /targetModules\.0 \(--target-modules\): must be one of "q_proj"/);
  // a run started with its own set of layers clones with them
  const custom = valuesFromHparams({ method: 'lora', targetModules: ['k_proj', 'q_proj'] }, defaultsOf(TRAIN_FIELDS));
  assert.equal(custom.targets, 'k_proj,q_proj');
  assert.deepEqual(parseHparams(toHparams(custom)).targetModules, ['k_proj', 'q_proj']);
  assert.equal(valuesFromHparams({ targetModules: ['v_proj', 'q_proj'] }, defaultsOf(TRAIN_FIELDS)).targets, 'qv');
  // the usual choices are not repeated
  assert.deepEqual(fieldsFor(defaultsOf(TRAIN_FIELDS)), TRAIN_FIELDS);
});

test('memory suggestions that name values become field changes; backend fields map to form fields', () => {
  assert.deepEqual(suggestionPatch('use batch size 1 with gradient accumulation ×4 (keeps the effective batch of 4)'), {
    batchSize: 1,
    gradAccum: 4,
  });
  assert.deepEqual(suggestionPatch('limit sequences to 512 tokens (max_seq_len; image tokens count)'), {
    maxSeqLen: 512,
  });
  assert.deepEqual(suggestionPatch('use batch size 1 and sequences of at most 256 tokens'), {
    batchSize: 1,
    maxSeqLen: 256,
  });
  assert.equal(suggestionPatch('close other applications: the machine has 8 GB in all'), null);
  assert.equal(formFieldOf('hparams.lr'), 'lr');
  assert.equal(formFieldOf('hparams.targetModules.2'), 'targets');
  assert.equal(formFieldOf('data.datasetId'), null);
});

test('run summaries, best metrics and the prediction gallery rows', () => {
  assert.equal(
    runSummary({ hparams: { method: 'lora', rank: 8, lr: 0.0002, epochs: 3, batchSize: 4, gradAccum: 2 } }),
    'lora r8 · lr 2e-4 · 3 epochs · batch 4×2',
  );
  assert.equal(runSummary({ trainer: 'toy' }), 'toy');
  const best = bestMetrics(
    new Map([
      [
        'loss',
        [
          { step: 1, value: 3 },
          { step: 2, value: 1.5 },
          { step: 3, value: 2 },
        ],
      ],
      [
        'eval_exact_match',
        [
          { step: 2, value: 0.25 },
          { step: 4, value: 0.5 },
        ],
      ],
      ['lr', [{ step: 1, value: 1 }]],
    ]),
  );
  assert.deepEqual(best, [
    { name: 'loss', value: 1.5, step: 2 },
    { name: 'eval_exact_match', value: 0.5, step: 4 },
  ]);
  const tuned = [
    {
      id: 1,
      itemId: 7,
      key: 0,
      prompt: '<image>\nHow many stars?',
      output: 'two',
      references: ['two'],
      scores: { exact_match: 1 },
    },
  ];
  const base = [
    {
      id: 9,
      itemId: 7,
      key: 0,
      prompt: '<image>\nHow many stars?',
      output: 'red',
      references: ['two'],
      scores: { exact_match: 0 },
    },
  ];
  const rows = toGallery(tuned, (id) => `/thumb/${id}`, base);
  assert.deepEqual(rows[0], {
    id: 1,
    imageUrl: '/thumb/7',
    question: 'How many stars?',
    reference: 'two',
    prediction: 'two',
    correct: true,
    score: null,
    compare: { prediction: 'red', correct: false, score: null },
  });
  // a caption item is marked by its exact match and still shows its BLEU-4
  const cap = toGallery(
    [
      {
        id: 2,
        itemId: 8,
        key: 1,
        prompt: '<image>\nDescribe.',
        output: 'a red star',
        references: ['a red star'],
        scores: { bleu4: 0.9, cider: 3, exact_match: 1 },
      },
    ],
    () => null,
  );
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
