// `lenslab generate --json`, `lenslab score --json` and `lenslab train` on the tiny BLIP VQA folder: greedy tokens and
// losses equal the float64 PyTorch reference (tests/fixtures/models/blip-reference.json), with and without the
// committed adapter trained by our trainer (PyTorch merges it under PEFT's rules); `lenslab train` writes an adapter
// under PEFT's key names that the same commands load; bad input is a clear error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { runCli } from '../../src-main/cli';
import { writeTinyBlip } from '../../src-main/models/demo/tiny-blip';
import { SafetensorsFile } from '../../src-main/models/weights/safetensors';
import { tempDir } from '../helpers/tmp';
import { BLIP_ANSWERS, BLIP_QUESTIONS, BLIP_SEED, blipImages } from '../fixtures/models/blip-cases';

const tmp = tempDir('blip-cli-');
const modelDir = join(tmp.dir, 'model');
const dataDir = join(tmp.dir, 'data');
const adapterFixture = join(import.meta.dirname, '../fixtures/models/blip-adapter');
const ref = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/models/blip-reference.json'), 'utf8'));
const images: string[] = [];
let dataFile = '';

before(async () => {
  writeTinyBlip(modelDir, BLIP_SEED);
  const lines: string[] = [];
  for (const [i, img] of blipImages().entries()) {
    const p = join(tmp.dir, `img${i}.png`);
    await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } })
      .png()
      .toFile(p);
    images.push(p);
    lines.push(JSON.stringify({ image: `img${i}.png`, question: BLIP_QUESTIONS[i], answer: BLIP_ANSWERS[i] }));
  }
  dataFile = join(tmp.dir, 'vqa.jsonl');
  writeFileSync(dataFile, lines.join('\n') + '\n');
});
after(() => tmp.cleanup());

async function cli(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    [...argv, '--data-dir', dataDir],
    { out: (t: string) => out.push(t), err: (t: string) => err.push(t) },
    {},
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

for (const adapter of [null, adapterFixture]) {
  const want = adapter ? ref.adapter : { greedy: ref.greedy, loss: ref.loss, item_losses: ref.item_losses };
  const extra = adapter ? ['--adapter', adapter] : [];
  const what = adapter ? 'with the committed adapter (PEFT-merged in PyTorch)' : 'base model';

  test(`generate --json: greedy tokens equal PyTorch's, ${what}`, async () => {
    for (let i = 0; i < 2; i++) {
      const r = await cli([
        'generate',
        '--model',
        modelDir,
        ...extra,
        '--image',
        images[i],
        '--prompt',
        BLIP_QUESTIONS[i],
        '--json',
      ]);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out);
      assert.deepEqual(j.ids, want.greedy[i]);
      assert.equal(j.finishReason, want.greedy[i].at(-1) === 3 ? 'stop' : 'length');
    }
  });

  test(`score --json: per-item and batch losses equal PyTorch's (1e-4), ${what}`, async () => {
    const r = await cli(['score', '--model', modelDir, ...extra, '--data', dataFile, '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.samples.length, 2);
    j.samples.forEach((s: { loss: number }, i: number) =>
      assert.ok(Math.abs(s.loss - want.item_losses[i]) < 1e-4, `item ${i}: ${s.loss} vs ${want.item_losses[i]}`),
    );
    assert.ok(Math.abs(j.tokenWeightedLoss - want.loss) < 1e-4, `batch loss ${j.tokenWeightedLoss} vs ${want.loss}`);
    assert.equal(j.labelSmoothing, 0.1);
  });
}

test('train: the recipe LoRA on query/key writes a PEFT adapter that generate and score load', async () => {
  const out = join(tmp.dir, 'adapter');
  const r = await cli([
    'train',
    '--model',
    modelDir,
    '--data',
    dataFile,
    '--out',
    out,
    '--preset',
    'blip-vqa-lora',
    '--epochs',
    '3',
    '--batch-size',
    '2',
    '--lr',
    '1e-2',
    '--json',
  ]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.steps, 3);
  assert.ok(j.lastLoss < j.firstLoss, `loss ${j.firstLoss} -> ${j.lastLoss}`);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.deepEqual(
    [cfg.peft_type, cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules],
    ['LORA', 16, 32, 0.05, ['query', 'key']],
  );
  const f = SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
  const names = f.names().sort();
  f.close();
  // every query/key of both text models (self- and cross-attention), 2 layers each: 16 modules, A and B
  assert.equal(names.length, 32);
  assert.ok(names.includes('base_model.model.text_encoder.encoder.layer.0.attention.self.query.lora_A.weight'));
  assert.ok(names.includes('base_model.model.text_decoder.bert.encoder.layer.1.crossattention.self.key.lora_B.weight'));
  assert.ok(
    names.every((n) =>
      /^base_model\.model\.text_(encoder|decoder\.bert)\.encoder\.layer\.\d\.(attention|crossattention)\.self\.(query|key)\.lora_[AB]\.weight$/.test(
        n,
      ),
    ),
  );
  const s = await cli(['score', '--model', modelDir, '--adapter', out, '--data', dataFile, '--json']);
  assert.equal(s.code, 0, s.err);
  assert.ok(JSON.parse(s.out).tokenWeightedLoss < ref.loss);
  const g = await cli([
    'generate',
    '--model',
    modelDir,
    '--adapter',
    out,
    '--image',
    images[0],
    '--prompt',
    BLIP_QUESTIONS[0],
    '--json',
  ]);
  assert.equal(g.code, 0, g.err);
});

test('BLIP CLI: bad input is a clear error naming the flag or file', async () => {
  let r = await cli(['generate', '--model', modelDir, '--prompt', 'how many?']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--image FILE is required: BLIP answers a question about an image or captions it/);
  r = await cli(['generate', '--model', modelDir, '--image', images[0], '--prompt', 'hi', '--temperature', '0.7']);
  assert.match(r.err, /answers greedily/);
  r = await cli([
    'train',
    '--model',
    modelDir,
    '--data',
    dataFile,
    '--out',
    join(tmp.dir, 'bad'),
    '--target-modules',
    'q_proj',
  ]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /target module "q_proj" matches no linear layer/);
  r = await cli(['score', '--model', modelDir, '--adapter', join(tmp.dir, 'nope'), '--data', dataFile]);
  assert.match(r.err, /nope: not found \(--adapter\)/);
});

test('BlipForConditionalGeneration: generate --json (with and without --prompt), score --json and train', async () => {
  const { BLIP_CAPTION_SEED, BLIP_CAPTIONS, BLIP_CAPTION_PROMPT } = await import('../fixtures/models/blip-cases');
  const r = ref.caption;
  const capDir = join(tmp.dir, 'caption-model');
  writeTinyBlip(capDir, BLIP_CAPTION_SEED, { architecture: 'BlipForConditionalGeneration' });
  const capFile = join(tmp.dir, 'captions.jsonl');
  writeFileSync(
    capFile,
    BLIP_CAPTIONS.map((c, i) => JSON.stringify({ image: `img${i}.png`, caption: c })).join('\n') + '\n',
  );
  for (let i = 0; i < 2; i++) {
    const free = await cli(['generate', '--model', capDir, '--image', images[i], '--json']);
    assert.equal(free.code, 0, free.err);
    assert.deepEqual(JSON.parse(free.out).ids, r.greedy[i]);
    const p = await cli([
      'generate',
      '--model',
      capDir,
      '--image',
      images[i],
      '--prompt',
      BLIP_CAPTION_PROMPT,
      '--json',
    ]);
    assert.equal(p.code, 0, p.err);
    const j = JSON.parse(p.out);
    assert.deepEqual(j.ids, r.greedy_prompt[i]);
    assert.match(j.text, /^a picture of/);
  }
  const s = await cli(['score', '--model', capDir, '--data', capFile, '--json']);
  assert.equal(s.code, 0, s.err);
  const sj = JSON.parse(s.out);
  sj.samples.forEach((x: { loss: number; kind: string }, i: number) => {
    assert.equal(x.kind, 'caption');
    assert.ok(Math.abs(x.loss - r.item_losses[i]) < 1e-4, `caption ${i}: ${x.loss} vs ${r.item_losses[i]}`);
  });
  assert.ok(Math.abs(sj.tokenWeightedLoss - r.loss) < 1e-4);
  const out = join(tmp.dir, 'caption-adapter');
  const t = await cli([
    'train',
    '--model',
    capDir,
    '--data',
    capFile,
    '--out',
    out,
    '--epochs',
    '2',
    '--batch-size',
    '2',
    '--lr',
    '1e-2',
    '--json',
  ]);
  assert.equal(t.code, 0, t.err);
  assert.ok(JSON.parse(t.out).steps === 2);
  const f = SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
  const names = f.names();
  f.close();
  assert.equal(names.length, 16); // the decoder's 8 query/key modules (self + cross, 2 layers), A and B
  assert.ok(names.every((n) => n.startsWith('base_model.model.text_decoder.bert.encoder.layer.')));
});
