// Contrastive fine-tuning of tiny CLIP / SigLIP models: the refusal of a batch of one, the loss going down, and the
// PEFT adapter it writes: keys and config as PEFT's, applied under PEFT's rules (LoRA branches = merged weights
// W + alpha/r B A; modules_to_save replace the base tensors) to the same logits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { makeSample } from '../../src-main/models/demo/shapes';
import { loadContrastiveAdapter } from '../../src-main/models/families/contrastive/adapter';
import { ContrastiveRunner, loadContrastive } from '../../src-main/models/families/contrastive/model';
import { SafetensorsFile } from '../../src-main/models/weights/safetensors';
import { checkContrastiveOptions, trainContrastiveToFolder } from '../../src-main/training/contrastive';

const { dir, cleanup } = tempDir('contrastive-train-');
after(cleanup);

function pairs(n: number, seed = 5) {
  return Array.from({ length: n }, (_, i) => {
    const s = makeSample(seed, i, { size: 32 });
    return { image: { data: s.rgb, width: 32, height: 32 }, text: s.caption };
  });
}

function maxDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((row, i) => row.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j])))));
  return m;
}

test('a batch of one is refused with the reason', () => {
  assert.throws(
    () => checkContrastiveOptions({ method: 'lora', batchSize: 1 }, 10),
    /at least 2 pairs per batch.*negatives/,
  );
  assert.throws(() => checkContrastiveOptions({ method: 'lora', batchSize: 4 }, 1), /1 image-text pair\(s\)/);
  assert.throws(
    () => checkContrastiveOptions({ method: 'lora', targets: ['fc1'] }, 4),
    /"fc1" is not an attention projection/,
  );
});

test('CLIP LoRA on both towers: the loss goes down and the PEFT adapter applies to the same logits', async () => {
  const model = join(dir, 'clip');
  writeTinyContrastive(model, 'clip', 3);
  const m = loadContrastive(model);
  const out = join(dir, 'clip-adapter');
  const data = pairs(16);
  const res = await trainContrastiveToFolder(
    m,
    data,
    { method: 'lora', batchSize: 8, epochs: 4, lr: 3e-3, rank: 4, alpha: 8, targets: ['q_proj', 'v_proj'] },
    out,
  );
  assert.equal(res.steps, 8);
  const first = (res.losses[0] + res.losses[1]) / 2;
  const last = (res.losses.at(-1)! + res.losses.at(-2)!) / 2;
  assert.ok(last < first - 0.1, `loss ${first} -> ${last}`);

  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 4);
  assert.equal(cfg.lora_alpha, 8);
  assert.equal(cfg.target_modules.length, 2 * 2 * 2);
  assert.ok(cfg.target_modules.includes('text_model.encoder.layers.1.self_attn.v_proj'));
  assert.ok(cfg.target_modules.includes('vision_model.encoder.layers.0.self_attn.q_proj'));
  const f = SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
  assert.deepEqual(
    f.info('base_model.model.vision_model.encoder.layers.0.self_attn.q_proj.lora_A.weight').shape,
    [4, 32],
  );
  assert.deepEqual(
    f.info('base_model.model.text_model.encoder.layers.1.self_attn.v_proj.lora_B.weight').shape,
    [32, 4],
  );
  assert.equal(f.names().length, 16);
  f.close();

  const ad = loadContrastiveAdapter(out, m.config);
  assert.equal(ad.scaling, 2);
  const imgs = pairs(4, 9).map((p) => p.image);
  const texts = pairs(4, 9).map((p) => p.text);
  const run = async (o: Parameters<typeof ContrastiveRunner.create>[1]) => {
    const r = await ContrastiveRunner.create(m, o);
    const x = await r.run(imgs, texts);
    await r.release();
    return x;
  };
  const base = await run({});
  const branches = await run({ adapter: ad });
  const merged = await run({ adapter: ad, merge: true });
  assert.ok(maxDiff(branches.logitsPerText, merged.logitsPerText) < 1e-4, 'LoRA branches = merged weights');
  assert.ok(maxDiff(branches.logitsPerText, base.logitsPerText) > 1e-2, 'the adapter changes the logits');
  m.close();
});

test('SigLIP projections method: the heads are saved as modules_to_save and replace the base tensors', async () => {
  const model = join(dir, 'siglip');
  writeTinyContrastive(model, 'siglip', 4);
  const m = loadContrastive(model);
  const out = join(dir, 'siglip-adapter');
  const res = await trainContrastiveToFolder(
    m,
    pairs(8),
    { method: 'projections', batchSize: 4, epochs: 2, lr: 1e-3 },
    out,
  );
  assert.equal(res.steps, 4);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.deepEqual(cfg.modules_to_save, ['text_model.head', 'vision_model.head']);
  const ad = loadContrastiveAdapter(out, m.config);
  assert.equal(ad.lora.size, 0);
  assert.ok(ad.saved.has('vision_model.head.probe') && ad.saved.has('text_model.head.weight'));
  const changed = [...ad.saved].some(([k, v]) => v.some((x, i) => Math.abs(x - m.weights.get(k)[i]) > 1e-6));
  assert.ok(changed, 'training moved the heads');
  const r1 = await ContrastiveRunner.create(m, { adapter: ad });
  const r0 = await ContrastiveRunner.create(m);
  const ps = pairs(3, 9);
  const a = await r1.run(
    ps.map((p) => p.image),
    ps.map((p) => p.text),
  );
  const b = await r0.run(
    ps.map((p) => p.image),
    ps.map((p) => p.text),
  );
  assert.ok(maxDiff(a.logitsPerText, b.logitsPerText) > 1e-4);
  await r1.release();
  await r0.release();
  m.close();
});
