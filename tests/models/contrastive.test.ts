// CLIP and SigLIP (CLIPModel / SiglipModel) against the float64 PyTorch reference
// (tests/fixtures/models/contrastive-reference.json): normalized embeddings, the logits matrix and the contrastive
// loss from Lenslab's float32 inference graph, and the loss's gradients from a float64 graph through our autodiff;
// PEFT adapters written by the contrastive trainer against PyTorch with the adapter merged under PEFT's rules;
// the host-side text handling (EOS pooling rules, truncation) and the bad-input errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { Graph, gradients, serializeModel, Session, tensor } from '../../src-main/engine';
import { GraphWeights } from '../../src-main/models/layers';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { parseContrastiveConfig } from '../../src-main/models/families/contrastive/config';
import {
  contrastiveLogits,
  contrastiveLoss,
  imageEmbeds,
  textEmbeds,
} from '../../src-main/models/families/contrastive/graph';
import {
  ContrastiveRunner,
  imageBatch,
  loadContrastive,
  textBatch,
  textPoolPosition,
} from '../../src-main/models/families/contrastive/model';
import {
  ADAPTER_CASES,
  CONTRASTIVE_CASES,
  adapterEvalImages,
  adapterEvalTexts,
  contrastiveImages,
} from '../fixtures/models/contrastive-cases';
import { loadContrastiveAdapter } from '../../src-main/models/families/contrastive/adapter';

const { dir, cleanup } = tempDir('contrastive-');
after(cleanup);
const ref = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/models/contrastive-reference.json'), 'utf8'),
);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const c of CONTRASTIVE_CASES) {
  const r = ref[c.kind];
  const folder = join(dir, c.kind);

  test(`${c.kind}: the tiny folder is the one the reference was computed on`, () => {
    writeTinyContrastive(folder, c.kind, c.seed, c.options);
    assert.equal(
      createHash('sha256')
        .update(readFileSync(join(folder, 'model.safetensors')))
        .digest('hex'),
      r.model_sha256,
    );
  });

  test(`${c.kind}: embeddings, logits and loss match PyTorch (1e-4)`, async () => {
    const m = loadContrastive(folder);
    const tb = textBatch(m, c.texts);
    const rows = Array.from({ length: tb.batch }, (_, b) =>
      Array.from(tb.ids.subarray(b * tb.length, (b + 1) * tb.length), Number),
    );
    assert.deepEqual(rows, r.input_ids);
    assert.equal(tb.warnings.length, 1);
    assert.match(tb.warnings[0], /^text 4: \d+ tokens, truncated to the text tower's \d+ positions$/);
    const runner = await ContrastiveRunner.create(m);
    const out = await runner.run(contrastiveImages(), c.texts);
    await runner.release();
    for (let i = 0; i < 4; i++) {
      assert.ok(maxDiff(out.imageEmbeds[i], r.image_embeds[i]) < 1e-4, `image ${i}`);
      assert.ok(maxDiff(out.textEmbeds[i], r.text_embeds[i]) < 1e-4, `text ${i}`);
      assert.ok(maxDiff(out.logitsPerText[i], r.logits_per_text[i]) < 1e-4, `logits row ${i}`);
    }
    assert.ok(Math.abs(out.loss! - r.loss) < 1e-4, `loss ${out.loss} vs ${r.loss}`);
    m.close();
  });

  test(`${c.kind}: gradients of the loss match PyTorch (float64 graph, our autodiff)`, async () => {
    const m = loadContrastive(folder);
    const g = new Graph(`${c.kind}-grad`);
    const params: Record<string, ReturnType<Graph['input']>> = {};
    for (const n of c.grad) params[n] = g.input(`param.${n}`, 'float64', m.weights.info(n).shape);
    const w = new GraphWeights(g, m.weights, { dtype: 'float64', params });
    const S = m.config.vision.imageSize;
    const pv = g.input('pixel_values', 'float64', ['N', 3, S, S]);
    const ids = g.input('input_ids', 'int64', ['B', 'T']);
    const pool = g.input('text_pool_index', 'int64', ['B']);
    const o = contrastiveLogits(w, m.config, imageEmbeds(w, m.config, pv), textEmbeds(w, m.config, ids, pool));
    const loss = contrastiveLoss(w, m.config, o);
    g.output(loss, 'loss');
    const grads = gradients(
      [loss],
      c.grad.map((n) => params[n]),
    );
    grads.forEach((gv, i) => g.output(gv, `grad.${c.grad[i]}`));
    const s = await Session.create(serializeModel(g).model, { threads: 2, optimization: 'basic' });
    const ib = await imageBatch(m, contrastiveImages());
    const tb = textBatch(m, c.texts);
    const feeds: Record<string, ReturnType<typeof tensor>> = {
      pixel_values: tensor('float64', [ib.n, 3, S, S], Float64Array.from(ib.data)),
      input_ids: tensor('int64', [tb.batch, tb.length], tb.ids),
      text_pool_index: tensor('int64', [tb.batch], tb.poolIndex),
    };
    for (const n of c.grad)
      feeds[`param.${n}`] = tensor('float64', m.weights.info(n).shape, Float64Array.from(m.weights.get(n)));
    const res = await s.run(feeds);
    assert.ok(Math.abs((res.loss.data as Float64Array)[0] - r.loss) < 1e-6);
    for (const n of c.grad) {
      const got = res[`grad.${n}`].data as Float64Array;
      const want = r.grads[n] as number[];
      const scale = Math.max(1e-3, ...want.map(Math.abs));
      assert.ok(maxDiff(got, want) / scale < 1e-5, `gradient of ${n}: max diff ${maxDiff(got, want)} (scale ${scale})`);
    }
    await s.dispose();
    m.close();
  });
}

test('CLIP pools at the first EOS, or at the largest id for configs with eos_token_id 2 (transformers < 4.31)', () => {
  const mk = (eos: number) => parseContrastiveConfig({ model_type: 'clip', text_config: { eos_token_id: eos } });
  assert.equal(textPoolPosition(mk(49407), [49406, 320, 49407, 49407]), 2);
  assert.equal(textPoolPosition(mk(2), [49406, 320, 49407, 49407]), 2);
  assert.equal(textPoolPosition(mk(2), [5, 900, 7, 2]), 1); // legacy rule: argmax, whatever the EOS is
  assert.equal(textPoolPosition(mk(49407), [49406, 320, 5]), 0); // no EOS: argmax of an all-zero row
  const sig = parseContrastiveConfig({ model_type: 'siglip' });
  assert.equal(textPoolPosition(sig, [4, 5, 1, 1, 1]), 4);
});

test('texts longer than the positions are truncated with a warning, never an index error', async () => {
  const m = loadContrastive(join(dir, 'clip'));
  const long = Array.from({ length: 200 }, () => 'red').join(' ');
  const tb = textBatch(m, [long, 'a star']);
  assert.equal(tb.length, m.config.text.maxPositionEmbeddings);
  assert.equal(Number(tb.ids[tb.length - 1]), m.tokenizer.eosTokenId);
  assert.equal(Number(tb.poolIndex[0]), tb.length - 1);
  assert.match(tb.warnings[0], /text 1: 202 tokens, truncated/);
  const runner = await ContrastiveRunner.create(m);
  const out = await runner.run(contrastiveImages().slice(0, 2), [long, 'a star']);
  assert.ok(out.logitsPerText.flat().every(Number.isFinite));
  await runner.release();
  m.close();
});

test('a SigLIP folder without logit_bias errors naming the tensor', () => {
  const d = join(dir, 'siglip-no-bias');
  writeTinyContrastive(d, 'siglip', 1, { omit: 'logit_bias' });
  assert.throws(() => loadContrastive(d), /model\.safetensors: no tensor "logit_bias" \(SiglipModel's logit bias/);
});

test('config errors name the field', () => {
  assert.throws(() => parseContrastiveConfig({ model_type: 'llava' }, 'x/config.json'), /x\/config\.json.*model_type/);
  assert.throws(
    () =>
      parseContrastiveConfig(
        { model_type: 'clip', text_config: { hidden_size: 30, num_attention_heads: 4 } },
        'c.json',
      ),
    /text_config\.num_attention_heads/,
  );
});

const adapterRef = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/models/contrastive-adapter-reference.json'), 'utf8'),
);
for (const c of ADAPTER_CASES) {
  test(`${c.kind}: an adapter from the contrastive trainer gives PyTorch's logits with it merged under PEFT's rules`, async () => {
    const folder = join(dir, `adapter-base-${c.kind}`);
    writeTinyContrastive(folder, c.kind, c.seed);
    const m = loadContrastive(folder);
    const ad = loadContrastiveAdapter(
      join(import.meta.dirname, '../fixtures/models/contrastive-adapters', c.kind),
      m.config,
    );
    const r = adapterRef[c.kind];
    for (const merge of [false, true]) {
      const runner = await ContrastiveRunner.create(m, { adapter: ad, merge });
      const out = await runner.run(adapterEvalImages(), adapterEvalTexts);
      await runner.release();
      out.logitsPerText.forEach((row, i) =>
        assert.ok(maxDiff(row, r.logits_per_text[i]) < 1e-4, `${merge ? 'merged' : 'LoRA branches'}: row ${i}`),
      );
      assert.ok(Math.abs(out.loss! - r.loss) < 1e-4);
    }
    m.close();
  });
}
