import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { makeSample } from '../../src-main/models/demo/shapes';
import { expectedTensors } from '../../src-main/models/weights/names';
import { tinyLlavaReference, type TinyLlavaRefCase } from '../fixtures/models/tiny-llava-reference';

const { dir, cleanup } = tempDir('tiny-llava-');
after(cleanup);

const ref = tinyLlavaReference;
type RefCase = TinyLlavaRefCase;

test('the tiny LLaVA folder is exact HF layout and has what the demo needs', () => {
  const d = join(dir, 'plain');
  const cfg = writeTinyLlava(d, 0);
  const raw = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
  assert.equal(raw.model_type, 'llava');
  assert.deepEqual(raw.architectures, ['LlavaForConditionalGeneration']);
  assert.equal(raw.vision_config.model_type, 'clip_vision_model');
  assert.equal(raw.text_config.model_type, 'llama');
  assert.ok(raw.text_config.num_key_value_heads < raw.text_config.num_attention_heads, 'GQA');
  assert.equal(cfg.numImageTokens, 64);
  const m = loadHfFolder(d);
  assert.equal(m.weights.names().length, expectedTensors(m.config).length);
  assert.equal(m.tokenizer!.idToToken(cfg.imageTokenIndex), '<image>');
  assert.equal(m.tokenizer!.vocabSize, cfg.text.vocabSize);
  assert.deepEqual(m.imageProcessor!.outputSize(64, 64), { width: 64, height: 64 });
  const tc = JSON.parse(readFileSync(join(d, 'tokenizer_config.json'), 'utf8'));
  assert.equal(tc.eos_token, '</s>');
  assert.equal(typeof tc.chat_template, 'string');
  m.close();
  // a different seed gives different weights, the same seed the same bytes
  const d2 = join(dir, 'again');
  writeTinyLlava(d2, 0);
  assert.deepEqual(readFileSync(join(d2, 'model.safetensors')), readFileSync(join(d, 'model.safetensors')));
  const d3 = join(dir, 'other-seed');
  writeTinyLlava(d3, 1);
  assert.notDeepEqual(readFileSync(join(d3, 'model.safetensors')), readFileSync(join(d, 'model.safetensors')));
});

test('the PyTorch reference fixture inputs are reproduced exactly: weights, pixel values, prompt ids', async () => {
  assert.equal(ref.cases.length, 2);
  for (const c of ref.cases) {
    const d = join(dir, `ref-${c.name}`);
    writeTinyLlava(d, c.seed, c.options);
    const sha = createHash('sha256')
      .update(readFileSync(join(d, 'model.safetensors')))
      .digest('hex');
    assert.equal(sha, c.model_sha256, `${c.name}: writeTinyLlava no longer reproduces the reference weights`);
    const m = loadHfFolder(d);
    if (m.config.kind !== 'llava') throw new Error('llava expected');
    const s = makeSample(c.image.seed, c.image.index, { size: m.config.vision.imageSize });
    const pv = await m.imageProcessor!.process({ data: s.rgb, width: s.scene.size, height: s.scene.size });
    let s1 = 0;
    let s2 = 0;
    for (const v of pv.data) {
      s1 += v;
      s2 += v * v;
    }
    assert.equal(s1, c.pixel_values_sum);
    assert.equal(s2, c.pixel_values_sumsq);
    const prompt = m.chatTemplate!.render(
      [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: c.question }] }],
      { addGenerationPrompt: true },
    );
    assert.equal(prompt, c.prompt);
    const ids = m.tokenizer!.encode(prompt);
    assert.deepEqual(ids, c.input_ids);
    assert.equal(ids.length - 1 + m.config.numImageTokens, c.expanded_input_ids_length);
    assert.equal(c.logits[0].length, m.config.text.vocabSize);
    assert.equal(c.greedy_tokens.length, 6);
    m.close();
  }
});
