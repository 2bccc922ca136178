// SigLIP tower + linear projector + Qwen2 decoder (q/k/v biases, linear RoPE scaling, tied embeddings, feature layers
// [-2, -1] with the 'full' strategy) against the float64 PyTorch reference (tests/fixtures/models/siglip-qwen2-reference.json).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { makeSample } from '../../src-main/models/demo/shapes';
import { buildForwardGraph, IO } from '../../src-main/models/llava';
import { runnableKind } from '../../src-main/models/registry';
import { serializeModel, Session, tensor } from '../../src-main/engine';
import { writeSiglipQwen2Llava } from '../fixtures/models/siglip-qwen2';

const { dir, cleanup } = tempDir('siglip-qwen2-');
after(cleanup);
const ref = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/models/siglip-qwen2-reference.json'), 'utf8'),
) as {
  seed: number;
  image: { seed: number; index: number; size: number };
  model_sha256: string;
  input_ids: number[];
  logits_positions: number[];
  logits: number[][];
};

test('SigLIP + Qwen2 LLaVA logits match the PyTorch reference within 1e-4', async () => {
  writeSiglipQwen2Llava(dir, ref.seed);
  assert.equal(
    createHash('sha256')
      .update(readFileSync(join(dir, 'model.safetensors')))
      .digest('hex'),
    ref.model_sha256,
    'the fixture weights are reproduced',
  );
  const m = loadHfFolder(dir);
  if (m.config.kind !== 'llava') throw new Error('llava expected');
  const cfg = m.config;
  assert.equal(runnableKind(cfg), 'vlm');
  assert.equal(cfg.vision.modelType, 'siglip_vision_model');
  assert.equal(cfg.text.modelType, 'qwen2');
  const s = makeSample(ref.image.seed, ref.image.index, { size: ref.image.size });
  const pv = await m.imageProcessor!.process({ data: s.rgb, width: ref.image.size, height: ref.image.size });
  const sess = await Session.create(serializeModel(buildForwardGraph(m)).model, { threads: 1 });
  const T = ref.input_ids.length;
  const S = cfg.vision.imageSize;
  const r = await sess.run({
    [IO.inputIds]: tensor('int64', [1, T], BigInt64Array.from(ref.input_ids.map(BigInt))),
    [IO.attentionMask]: tensor('int64', [1, T], new BigInt64Array(T).fill(1n)),
    [IO.pixelValues]: tensor('float32', [1, 3, S, S], pv.data),
  });
  await sess.dispose();
  const V = cfg.text.vocabSize;
  const lg = r[IO.logits].data as Float32Array;
  let d = 0;
  ref.logits_positions.forEach((p, k) => {
    for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(lg[p * V + j] - ref.logits[k][j]));
  });
  assert.ok(d < 1e-4, `max |logit - reference| = ${d}`);
  m.close();
});
