// Recipe presets (`--preset blip-vqa-lora`, `--preset blip2-caption-lora`, the Train view's picker): they carry the
// published recipes' numbers, the user's own flags / fields win, and a preset whose family is not loaded, or a model of
// another family, is refused in words.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { write } from '../datasets/fixtures';
import { TRAIN_PRESETS, presetById, presetFlags, presetProblem } from '../../src-main/contract/presets';
import { LORA_TARGETS } from '../../src-main/contract/hparams';
import { hparamsFromCli, parseHparams } from '../../src-main/training/hparams';
import { vlmModelTypes } from '../../src-main/models/registry';
import { withPreset } from '../../src-main/transport/cli/train';
import { UsageError } from '../../src-main/transport/cli/command';
import { presetValues } from '../../src-renderer/composables/trainExtras';
import { TRAIN_FIELDS, toHparams } from '../../src-renderer/composables/trainForm';
import { defaultsOf } from '../../src-renderer/composables/hyperparams';

const tmp = tempDir('presets-');
after(() => tmp.cleanup());

const modelDir = (name: string, modelType: string) => {
  const dir = join(tmp.dir, name);
  write(dir, 'config.json', JSON.stringify({ model_type: modelType }));
  return dir;
};

/** Whether this build can train the preset (its family is registered and its LoRA targets are known). */
const trainable = (id: string) => {
  const p = presetById(id)!;
  return (
    p.modelTypes.some((t) => vlmModelTypes().includes(t)) &&
    p.hparams.targetModules.every((t) => (LORA_TARGETS as readonly string[]).includes(t))
  );
};

test('the presets carry the recipes: BLIP VQA r16/α32/0.05 on query,key, lr 4e-5, batch 8, 1 epoch; BLIP-2 r16/α32/0.05 on q_proj,v_proj, lr 5e-5', () => {
  assert.deepEqual(
    TRAIN_PRESETS.map((p) => p.id),
    ['blip-vqa-lora', 'blip2-caption-lora'],
  );
  const vqa = presetById('blip-vqa-lora')!;
  assert.deepEqual(
    { ...vqa.hparams, targetModules: [...vqa.hparams.targetModules] },
    {
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0.05,
      targetModules: ['query', 'key'],
      lr: 4e-5,
      weightDecay: 0.01,
      schedule: 'constant',
      clipNorm: 0,
      batchSize: 8,
      epochs: 1,
    },
  );
  assert.deepEqual(vqa.modelTypes, ['blip']);
  const cap = presetById('blip2-caption-lora')!;
  assert.deepEqual(
    { ...cap.hparams, targetModules: [...cap.hparams.targetModules] },
    {
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0.05,
      targetModules: ['q_proj', 'v_proj'],
      lr: 5e-5,
      weightDecay: 0.01,
      schedule: 'constant',
      clipNorm: 0,
    },
  );
  assert.deepEqual(cap.modelTypes, ['blip-2']);
  // BLIP-2's targets are decoder projections every build knows: its flags parse to the recipe
  const h = hparamsFromCli(presetFlags(cap));
  assert.equal(h.rank, 16);
  assert.equal(h.alpha, 32);
  assert.equal(h.dropout, 0.05);
  assert.deepEqual(h.targetModules, ['q_proj', 'v_proj']);
  assert.equal(h.lr, 5e-5);
  assert.equal(h.schedule, 'constant');
  assert.equal(h.clipNorm, 0);
});

test('a preset whose family is not loaded says so plainly; a model of another family is named with its model_type', () => {
  const vqa = presetById('blip-vqa-lora')!;
  const notLoaded = presetProblem(vqa, { loadedModelTypes: ['llava', 'idefics3'] });
  assert.equal(
    notLoaded,
    'The blip-vqa-lora preset is for BLIP models (BlipForQuestionAnswering, config.json model_type "blip"). The app cannot train BLIP models yet; train them from a terminal: lenslab train --model BLIP_VQA_DIR --data DATA --out ADAPTER_DIR --preset blip-vqa-lora',
  );
  const cap = presetById('blip2-caption-lora')!;
  assert.equal(presetProblem(cap, { loadedModelTypes: ['blip-2'] }), null);
  assert.equal(
    presetProblem(cap, { loadedModelTypes: ['llava'] }),
    'The blip2-caption-lora preset is for BLIP-2 models (Blip2ForConditionalGeneration, config.json model_type "blip-2"). This version of Lenslab does not load the BLIP-2 model family yet, so it cannot train with this preset.',
  );
  assert.equal(
    presetProblem(cap, { loadedModelTypes: ['blip-2', 'llava'], modelType: 'llava', modelLabel: 'Demo' }),
    'The blip2-caption-lora preset is for BLIP-2 models (Blip2ForConditionalGeneration, config.json model_type "blip-2"); the chosen model (Demo) is model_type "llava". Choose a BLIP-2 model to use it.',
  );
  // this build, as it is
  for (const p of TRAIN_PRESETS) {
    const problem = presetProblem(p, { loadedModelTypes: vlmModelTypes() });
    if (trainable(p.id)) assert.equal(problem, null);
    else
      assert.match(
        problem!,
        /does not load the BLIP(-2)? model family yet|The app cannot train BLIP models yet; train them from a terminal/,
      );
  }
});

test("lenslab train --preset: the user's flags win, --steps replaces the epochs, an unknown preset or a model of another family is refused", () => {
  const notes: string[] = [];
  const llava = modelDir('llava', 'llava');
  assert.throws(
    () => withPreset('blip3-lora', llava, {}, () => {}),
    (e: unknown) =>
      e instanceof UsageError &&
      /unknown preset "blip3-lora" \(one of blip-vqa-lora, blip2-caption-lora\)/.test((e as Error).message),
  );
  for (const p of TRAIN_PRESETS) {
    assert.throws(
      () => withPreset(p.id, llava, {}, () => {}),
      (e: unknown) =>
        e instanceof UsageError &&
        new RegExp(`The ${p.id} preset is for ${p.familyLabel} models`).test((e as Error).message),
    );
  }
  const blip2 = modelDir('blip2', 'blip-2');
  assert.ok(trainable('blip2-caption-lora'), 'the BLIP-2 family is registered and q_proj / v_proj are decoder targets');
  const flags = withPreset('blip2-caption-lora', blip2, { lr: '1e-4', steps: '20' }, (l) => notes.push(l));
  const h = hparamsFromCli(flags);
  assert.equal(h.lr, 1e-4, "the user's --lr wins");
  assert.equal(h.maxSteps, 20);
  assert.equal(h.epochs, undefined);
  assert.equal(h.rank, 16);
  assert.match(notes[0], /^preset blip2-caption-lora: .* Given: --lr --steps\.$/);
});

test('the Train view: a preset fills the form as editable defaults and the form sends the recipe', () => {
  const defaults = defaultsOf(TRAIN_FIELDS);
  const cap = presetById('blip2-caption-lora')!;
  const v = presetValues(cap, { ...defaults, batchSize: 3, epochs: 5 });
  assert.equal(v.targets, 'qv');
  const h = parseHparams(toHparams(v));
  assert.deepEqual(
    {
      rank: h.rank,
      alpha: h.alpha,
      dropout: h.dropout,
      targetModules: h.targetModules,
      lr: h.lr,
      weightDecay: h.weightDecay,
      schedule: h.schedule,
      clipNorm: h.clipNorm,
      batchSize: h.batchSize,
      epochs: h.epochs,
    },
    {
      rank: 16,
      alpha: 32,
      dropout: 0.05,
      targetModules: ['q_proj', 'v_proj'],
      lr: 5e-5,
      weightDecay: 0.01,
      schedule: 'constant',
      clipNorm: 0,
      batchSize: 3,
      epochs: 5,
    },
    'what the recipe does not state stays as set',
  );
  // edited after the preset: the edit is sent
  assert.equal(parseHparams(toHparams({ ...v, lr: 1e-4 })).lr, 1e-4);

  const vqa = presetById('blip-vqa-lora')!;
  const w = presetValues(vqa, { ...defaults, duration: 'steps', maxSteps: 30 });
  // BLIP's names are the family's, not a choice of the form: the form carries them as they are
  assert.equal(w.targets, 'query,key');
  const sent = toHparams(w);
  assert.deepEqual(
    {
      rank: sent.rank,
      alpha: sent.alpha,
      dropout: sent.dropout,
      targetModules: sent.targetModules,
      lr: sent.lr,
      batchSize: sent.batchSize,
      epochs: sent.epochs,
      maxSteps: sent.maxSteps,
    },
    {
      rank: 16,
      alpha: 32,
      dropout: 0.05,
      targetModules: ['query', 'key'],
      lr: 4e-5,
      batchSize: 8,
      epochs: 1,
      maxSteps: undefined,
    },
  );
});

test('lenslab train --preset for a model of another family exits with the reason before anything is imported or started', async () => {
  const { runCli } = await import('../../src-main/cli');
  const err: string[] = [];
  const code = await runCli(
    [
      'train',
      '--preset',
      'blip2-caption-lora',
      '--model',
      modelDir('llava-cli', 'llava'),
      '--data',
      join(tmp.dir, 'no-such-data'),
      '--out',
      join(tmp.dir, 'out'),
      '--data-dir',
      join(tmp.dir, 'data'),
    ],
    { out: () => {}, err: (t) => err.push(t) },
    {},
  );
  assert.notEqual(code, 0);
  assert.match(
    err.join('\n'),
    /The blip2-caption-lora preset is for BLIP-2 models \(Blip2ForConditionalGeneration, config\.json model_type "blip-2"\)/,
  );
});
