// The tiny BLIP-2 of the PyTorch reference through the CLI: `lenslab generate --json` gives the reference's greedy
// answer and prompt-free caption, `lenslab score --json` its loss; `lenslab train --preset blip2-caption-lora`
// (LoRA r16 alpha 32 dropout 0.05 on q_proj/v_proj) and the Q-Former-only method fine-tune on captions, their
// adapters carry PEFT's keys for Blip2ForConditionalGeneration, change the caption, and score as the base model with
// the adapter merged under PEFT's rules (W + alpha/r B A, saved modules replaced).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { tempDir } from '../helpers/tmp';
import { runCli } from '../../src-main/cli';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { writeTinyBlip2 } from '../../src-main/models/demo/tiny-blip2';
import { loadHfFolder, saveHfFolder } from '../../src-main/models/hf-folder';
import { loadAdapter, mergeAdapter } from '../../src-main/models/peft';
import { SafetensorsFile } from '../../src-main/models/weights/safetensors';
import { BLIP2_ANSWER, BLIP2_OPTIONS, BLIP2_QUESTION, blip2Image } from '../fixtures/models/blip2';

const tmp = tempDir('blip2-cli-');
after(() => tmp.cleanup());
const ref = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/models/blip2-reference.json'), 'utf8'))
  .blip2 as {
  seed: number;
  greedy: number[];
  caption_greedy: number[];
  loss: number;
};
const env = { ...process.env, LENSLAB_GRAPH_CACHE: join(tmp.dir, 'graph-cache'), LENSLAB_NO_TTY: '1' };
const dataDir = join(tmp.dir, 'app');
const modelDir = join(tmp.dir, 'model');
writeTinyBlip2(modelDir, ref.seed, BLIP2_OPTIONS);
const image = join(tmp.dir, 'img.png');
const img = blip2Image();
await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } })
  .png()
  .toFile(image);
await writeDemoDataset(join(tmp.dir, 'icons'), { seed: 9, count: 12, size: 48, families: ['colors'] });
const captions = join(tmp.dir, 'icons', 'captions.jsonl');

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    ['--data-dir', dataDir, ...args],
    { out: (t) => out.push(t), err: (t) => err.push(t) },
    env,
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const generate = async (prompt: string, n: number, adapter?: string) => {
  const g = await cli(
    'generate',
    '--model',
    modelDir,
    ...(adapter ? ['--adapter', adapter] : []),
    '--image',
    image,
    '--prompt',
    prompt,
    '--max-new-tokens',
    String(n),
    '--json',
  );
  assert.equal(g.code, 0, g.err);
  return JSON.parse(g.out) as { ids: number[]; promptTokens: number };
};

test('generate --json (a question, and prompt-free captioning) and score --json match the PyTorch reference', async () => {
  const a = await generate(BLIP2_QUESTION, ref.greedy.length);
  assert.deepEqual(a.ids, ref.greedy);
  const c = await generate('', ref.caption_greedy.length);
  assert.deepEqual(c.ids, ref.caption_greedy);
  assert.equal(c.promptTokens, 4 + 1, 'num_query_tokens image tokens and </s>');
  const data = join(tmp.dir, 'score.jsonl');
  writeFileSync(
    data,
    JSON.stringify({
      images: ['img.png'],
      messages: [
        { role: 'user', content: `<image>\n${BLIP2_QUESTION}` },
        { role: 'assistant', content: BLIP2_ANSWER },
      ],
    }) + '\n',
  );
  const s = await cli('score', '--model', modelDir, '--data', data, '--json');
  assert.equal(s.code, 0, s.err);
  const j = JSON.parse(s.out);
  assert.ok(Math.abs(j.samples[0].loss - ref.loss) < 1e-4, `score loss ${j.samples[0].loss} vs reference ${ref.loss}`);
});

for (const method of ['lora', 'projector'] as const) {
  test(`lenslab train ${method === 'lora' ? '--preset blip2-caption-lora' : '--method projector (Q-Former only)'} on captions; the adapter has PEFT's keys and scores as merged`, async () => {
    const out = join(tmp.dir, `run-${method}`);
    const flags =
      method === 'lora'
        ? ['--preset', 'blip2-caption-lora', '--lr', '2e-2']
        : ['--method', 'projector', '--lr', '1e-2'];
    const t = await cli(
      'train',
      '--model',
      modelDir,
      '--data',
      captions,
      '--out',
      out,
      ...flags,
      '--steps',
      '4',
      '--batch-size',
      '2',
      '--save-every',
      '4',
      '--eval-items',
      '2',
    );
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /run \d+ completed: 4 steps/);
    // frozen parts' image features are cached: after the Q-Former for LoRA, after the vision model when the Q-Former trains
    assert.match(
      t.out + t.err,
      method === 'lora'
        ? /image features: computed once per image at the connector's output/
        : /image features: computed once per image at the tower's output/,
    );
    const adapter = join(out, 'final');
    assert.ok(existsSync(join(adapter, 'adapter_model.safetensors')));
    const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
    const f = SafetensorsFile.open(join(adapter, 'adapter_model.safetensors'));
    const keys = f.names();
    f.close();
    if (method === 'lora') {
      assert.equal(cfg.r, 16);
      assert.equal(cfg.lora_alpha, 32);
      assert.equal(cfg.lora_dropout, 0.05);
      assert.equal(cfg.modules_to_save, null);
      assert.ok(
        keys.includes('base_model.model.language_model.model.decoder.layers.0.self_attn.q_proj.lora_A.weight'),
        keys.join(', '),
      );
      assert.ok(
        keys.includes('base_model.model.language_model.model.decoder.layers.1.self_attn.v_proj.lora_B.weight'),
        keys.join(', '),
      );
      assert.equal(keys.length, 2 * 2 * 2);
    } else {
      assert.deepEqual(cfg.modules_to_save, ['qformer', 'language_projection']);
      assert.ok(
        keys.includes('base_model.model.qformer.encoder.layer.0.crossattention.attention.key.weight'),
        keys.join(', '),
      );
      assert.ok(keys.includes('base_model.model.language_projection.weight'), keys.join(', '));
    }
    const base = await generate('', 4);
    const tuned = await generate('', 4, adapter);
    assert.notDeepEqual(tuned.ids, base.ids, 'the adapter changes the caption');
    // scored with the adapter = scored by the base model with the adapter merged in (PEFT's merge rule)
    const sc = await cli(
      'score',
      '--model',
      modelDir,
      '--adapter',
      adapter,
      '--data',
      captions,
      '--limit',
      '3',
      '--json',
    );
    assert.equal(sc.code, 0, sc.err);
    const m = loadHfFolder(modelDir);
    const merged = join(tmp.dir, `merged-${method}`);
    try {
      saveHfFolder(merged, { ...m.json, weights: mergeAdapter(m.weights, loadAdapter(adapter, m.config)) });
    } finally {
      m.close();
    }
    const sm = await cli('score', '--model', merged, '--data', captions, '--limit', '3', '--json');
    assert.equal(sm.code, 0, sm.err);
    const a = JSON.parse(sc.out).samples as Array<{ loss: number }>;
    const b = JSON.parse(sm.out).samples as Array<{ loss: number }>;
    a.forEach((x, i) =>
      assert.ok(Math.abs(x.loss - b[i].loss) < 1e-4, `sample ${i}: ${x.loss} with the adapter vs ${b[i].loss} merged`),
    );
  });
}
