// BLIP VQA (BlipForQuestionAnswering) against the float64 PyTorch reference (tests/fixtures/models/blip-reference.json,
// written by make-blip-reference.ts + blip_reference.py from transformers' modeling_blip / modeling_blip_text): the
// BLIP vision encoder (also in BLIP-2's q_bias / v_bias form), the question encoder, the answer decoder's logits, the
// label-smoothed loss, its gradients through our autodiff (float64 graph) and greedy answers; bad folders.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { Graph, gradients, serializeModel, Session, tensor } from '../../src-main/engine';
import { GraphWeights } from '../../src-main/models/layers';
import { writeTinyBlip } from '../../src-main/models/demo/tiny-blip';
import { parseBlipConfig } from '../../src-main/models/families/blip/config';
import { blipImageEmbeds, blipQuestionEmbeds } from '../../src-main/models/families/blip/graph';
import {
  BlipRunner,
  answerBatch,
  blipPixelValues,
  buildVqaLossGraph,
  loadBlip,
  questionBatch,
  vqaForward,
} from '../../src-main/models/families/blip/model';
import { blipVisionModel } from '../../src-main/models/vision/blip-vit';
import { memorySource } from '../../src-main/models/weights/safetensors';
import { BLIP_ANSWERS, BLIP_GRAD_TENSORS, BLIP_QUESTIONS, BLIP_SEED, blipImages } from '../fixtures/models/blip-cases';

const { dir, cleanup } = tempDir('blip-');
after(cleanup);
const ref = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/models/blip-reference.json'), 'utf8'));
const folder = join(dir, 'vqa');

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const rows = (a: BigInt64Array, T: number) =>
  Array.from({ length: a.length / T }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T), Number));

test('the tiny BLIP folder and its inputs are the ones the reference was computed on', async () => {
  writeTinyBlip(folder, BLIP_SEED);
  assert.equal(
    createHash('sha256')
      .update(readFileSync(join(folder, 'model.safetensors')))
      .digest('hex'),
    ref.model_sha256,
  );
  const m = loadBlip(folder);
  const pv = await blipPixelValues(m, blipImages());
  assert.equal(createHash('sha256').update(Buffer.from(pv.data.buffer)).digest('hex'), ref.pixel_values_sha256);
  const qb = questionBatch(m, BLIP_QUESTIONS);
  assert.deepEqual(rows(qb.ids, qb.length), ref.input_ids);
  assert.deepEqual(rows(qb.mask, qb.length), ref.attention_mask);
  const ab = answerBatch(m, BLIP_ANSWERS);
  assert.deepEqual(rows(ab.ids, ab.length), ref.decoder_input_ids);
  assert.deepEqual(rows(ab.labels, ab.length), ref.labels);
  // WordPiece as BertTokenizerFast: lowercased, "?" split off, [CLS] ... [SEP]; answers start with [DEC] (bos)
  assert.equal(
    m.tokenizer.decode(ref.input_ids[0].filter((_: number, t: number) => ref.attention_mask[0][t])),
    '[CLS] how many circles are there? [SEP]',
  );
  assert.equal(ref.decoder_input_ids[0][0], m.config.text.bosTokenId);
  assert.equal(m.tokenizer.decode([ref.decoder_input_ids[0][0]]), '[DEC]');
  m.close();
});

test('BLIP vision encoder, question encoder, decoder logits and loss match PyTorch (float32 graphs, 1e-4)', async () => {
  const m = loadBlip(folder);
  const S = m.config.vision.imageSize;
  const pv = await blipPixelValues(m, blipImages());
  const qb = questionBatch(m, BLIP_QUESTIONS);
  const g = new Graph('blip-parts');
  const w = new GraphWeights(g, m.weights);
  const px = g.input('pixel_values', 'float32', ['B', 3, S, S]);
  const ids = g.input('input_ids', 'int64', ['B', 'S']);
  const mask = g.input('attention_mask', 'int64', ['B', 'S']);
  const img = blipImageEmbeds(w, m.config, px);
  g.output(img, 'image_embeds');
  g.output(blipQuestionEmbeds(w, m.config, ids, mask, img), 'question_embeds');
  const s = await Session.create(serializeModel(g).model, { threads: 2 });
  const feeds = {
    pixel_values: tensor('float32', [2, 3, S, S], pv.data),
    input_ids: tensor('int64', [2, qb.length], qb.ids),
    attention_mask: tensor('int64', [2, qb.length], qb.mask),
  };
  const r = await s.run(feeds);
  await s.dispose();
  assert.ok(maxDiff(r.image_embeds.data as Float32Array, ref.image_embeds) < 1e-4, 'image embeds');
  // padded question positions are compared too: transformers computes them the same way
  assert.ok(maxDiff(r.question_embeds.data as Float32Array, ref.question_embeds) < 1e-4, 'question embeds');

  const runner = new BlipRunner(m);
  const out = await runner.loss(blipImages(), BLIP_QUESTIONS, BLIP_ANSWERS);
  assert.ok(Math.abs(out.loss - ref.loss) < 1e-4, `loss ${out.loss} vs ${ref.loss}`);
  await runner.release();
  const ls = await Session.create(serializeModel(buildVqaLossGraph(m)).model, { threads: 2 });
  const ab = answerBatch(m, BLIP_ANSWERS);
  const lr = await ls.run({
    ...feeds,
    decoder_input_ids: tensor('int64', [2, ab.length], ab.ids),
    decoder_attention_mask: tensor('int64', [2, ab.length], ab.mask),
    labels: tensor('int64', [2, ab.length], ab.labels),
  });
  await ls.dispose();
  assert.ok(maxDiff(lr.logits.data as Float32Array, ref.logits) < 1e-4, 'decoder logits');
  m.close();
});

test("BLIP-2's q_bias / v_bias form of the vision encoder matches PyTorch (bias [q, 0, v])", async () => {
  const m = loadBlip(folder);
  const vc = { ...m.config.vision, qkvBias: 'qv' as const };
  const D = vc.hiddenSize;
  const tensors = new Map(
    m.weights
      .names()
      .filter((n) => n.startsWith('vision_model.'))
      .map((n) => [n, { dtype: 'F32' as const, shape: m.weights.info(n).shape, data: m.weights.get(n) }]),
  );
  for (let l = 0; l < vc.numHiddenLayers; l++) {
    const A = `vision_model.encoder.layers.${l}.self_attn.`;
    const b = tensors.get(`${A}qkv.bias`)!.data as Float32Array;
    tensors.delete(`${A}qkv.bias`);
    tensors.set(`${A}q_bias`, { dtype: 'F32', shape: [D], data: b.slice(0, D) });
    tensors.set(`${A}v_bias`, { dtype: 'F32', shape: [D], data: b.slice(2 * D) });
  }
  const g = new Graph('blip2-vision');
  const w = new GraphWeights(g, memorySource(tensors as never));
  const S = vc.imageSize;
  g.output(blipVisionModel(w, vc, 'vision_model.', g.input('pixel_values', 'float32', ['B', 3, S, S])), 'out');
  const s = await Session.create(serializeModel(g).model, { threads: 2 });
  const pv = await blipPixelValues(m, blipImages());
  const r = await s.run({ pixel_values: tensor('float32', [2, 3, S, S], pv.data) });
  await s.dispose();
  assert.ok(maxDiff(r.out.data as Float32Array, ref.image_embeds_qv_bias) < 1e-4);
  m.close();
});

test('gradients of the VQA loss match PyTorch (float64 graph, our autodiff, label smoothing 0.1)', async () => {
  const m = loadBlip(folder);
  assert.equal(m.config.text.labelSmoothing, 0.1); // the folder, like the published configs, does not name it
  const g = new Graph('blip-grad');
  const params: Record<string, ReturnType<Graph['input']>> = {};
  for (const n of BLIP_GRAD_TENSORS) params[n] = g.input(`param.${n}`, 'float64', m.weights.info(n).shape);
  const w = new GraphWeights(g, m.weights, { dtype: 'float64', params });
  const S = m.config.vision.imageSize;
  const x = {
    pv: g.input('pixel_values', 'float64', ['B', 3, S, S]),
    ids: g.input('input_ids', 'int64', ['B', 'S']),
    mask: g.input('attention_mask', 'int64', ['B', 'S']),
    dids: g.input('decoder_input_ids', 'int64', ['B', 'T']),
    dmask: g.input('decoder_attention_mask', 'int64', ['B', 'T']),
    labels: g.input('labels', 'int64', ['B', 'T']),
  };
  const { loss } = vqaForward(w, m.config, x);
  g.output(loss.mean, 'loss');
  const grads = gradients(
    [loss.mean],
    BLIP_GRAD_TENSORS.map((n) => params[n]),
  );
  grads.forEach((gv, i) => g.output(gv, `grad.${BLIP_GRAD_TENSORS[i]}`));
  const s = await Session.create(serializeModel(g).model, { threads: 2, optimization: 'basic' });
  const pv = await blipPixelValues(m, blipImages());
  const qb = questionBatch(m, BLIP_QUESTIONS);
  const ab = answerBatch(m, BLIP_ANSWERS);
  const feeds: Record<string, ReturnType<typeof tensor>> = {
    pixel_values: tensor('float64', [2, 3, S, S], Float64Array.from(pv.data)),
    input_ids: tensor('int64', [2, qb.length], qb.ids),
    attention_mask: tensor('int64', [2, qb.length], qb.mask),
    decoder_input_ids: tensor('int64', [2, ab.length], ab.ids),
    decoder_attention_mask: tensor('int64', [2, ab.length], ab.mask),
    labels: tensor('int64', [2, ab.length], ab.labels),
  };
  for (const n of BLIP_GRAD_TENSORS)
    feeds[`param.${n}`] = tensor('float64', m.weights.info(n).shape, Float64Array.from(m.weights.get(n)));
  const res = await s.run(feeds);
  await s.dispose();
  assert.ok(
    Math.abs((res.loss.data as Float64Array)[0] - ref.loss) < 1e-6,
    `loss ${(res.loss.data as Float64Array)[0]} vs ${ref.loss}`,
  );
  // each tensor against its own scale, with no floor: a vision-side gradient that came out small or missing would fail
  // here even where the decoder's gradients are orders of magnitude larger
  for (const n of BLIP_GRAD_TENSORS) {
    const got = res[`grad.${n}`].data as Float64Array;
    const want = ref.grads[n] as number[];
    const scale = Math.max(...want.map(Math.abs));
    const diff = maxDiff(got, want);
    // a key bias shifts every score of a query by the same amount, which softmax cancels: its gradient is zero (both
    // sides give rounding noise near 1e-17), so it is compared absolutely
    if (/\.key\.bias$/.test(n))
      assert.ok(scale < 1e-14 && diff < 1e-14, `gradient of ${n}: max diff ${diff}, reference scale ${scale}`);
    else assert.ok(scale > 1e-3 && diff / scale < 1e-6, `gradient of ${n}: max diff ${diff} (its scale ${scale})`);
  }
  m.close();
});

test('greedy answers (question encoded once, decoder from [DEC] to [SEP] or 20 tokens) equal PyTorch', async () => {
  const m = loadBlip(folder);
  const runner = new BlipRunner(m);
  const out = await runner.answer(blipImages(), BLIP_QUESTIONS);
  await runner.release();
  assert.deepEqual(
    out.map((o) => o.tokens),
    ref.greedy,
  );
  assert.equal(out[0].answer, m.tokenizer.decode(ref.greedy[0], { skipSpecialTokens: true }).trim());
  m.close();
});

test('bad BLIP folders and configs: errors name the file, tensor or field', () => {
  const d = join(dir, 'no-decoder');
  writeTinyBlip(d, 3, { omit: ['text_decoder.bert.encoder.layer.1.crossattention.self.value.weight'] });
  assert.throws(
    () => loadBlip(d),
    /model\.safetensors: no tensor "text_decoder\.bert\.encoder\.layer\.1\.crossattention\.self\.value\.weight" \(the answer decoder\)/,
  );
  assert.throws(
    () => parseBlipConfig({ model_type: 'blip', architectures: ['BlipForImageTextRetrieval'] }, 'c/config.json'),
    /c\/config\.json.*architectures.*not supported/,
  );
  assert.throws(
    () =>
      parseBlipConfig(
        {
          model_type: 'blip',
          vision_config: { hidden_size: 64, num_attention_heads: 4 },
          text_config: { encoder_hidden_size: 32 },
        },
        'c.json',
      ),
    /text_config\.encoder_hidden_size.*must equal vision_config\.hidden_size 64/,
  );
  assert.throws(
    () => parseBlipConfig({ model_type: 'blip', text_config: { label_smoothing: 1.5 } }, 'c.json'),
    /label_smoothing.*\[0, 1\)/,
  );
});

test('BlipForConditionalGeneration: caption loss, logits and greedy captions (prompt-free and "a picture of") equal PyTorch', async () => {
  const { BLIP_CAPTION_SEED, BLIP_CAPTIONS, BLIP_CAPTION_PROMPT } = await import('../fixtures/models/blip-cases');
  const { buildCaptionLossGraph } = await import('../../src-main/models/families/blip/model');
  const r = ref.caption;
  const d = join(dir, 'caption');
  writeTinyBlip(d, BLIP_CAPTION_SEED, { architecture: 'BlipForConditionalGeneration' });
  assert.equal(
    createHash('sha256')
      .update(readFileSync(join(d, 'model.safetensors')))
      .digest('hex'),
    r.model_sha256,
  );
  const m = loadBlip(d);
  assert.ok(
    !m.weights.names().some((n) => n.startsWith('text_encoder.')),
    'the captioning layout has no question encoder',
  );
  const ab = answerBatch(m, BLIP_CAPTIONS);
  assert.deepEqual(rows(ab.ids, ab.length), r.input_ids);
  assert.deepEqual(m.tokenizer.encode(BLIP_CAPTION_PROMPT), r.prompt_ids);
  const runner = new BlipRunner(m);
  const lo = await runner.captionLoss(blipImages(), BLIP_CAPTIONS);
  assert.ok(Math.abs(lo.loss - r.loss) < 1e-4, `loss ${lo.loss} vs ${r.loss}`);
  lo.items.forEach((v, i) =>
    assert.ok(Math.abs(v - r.item_losses[i]) < 1e-4, `item ${i}: ${v} vs ${r.item_losses[i]}`),
  );
  const free = await runner.caption(blipImages());
  assert.deepEqual(
    free.map((x) => x.tokens),
    r.greedy,
  );
  const prompted = await runner.caption(blipImages(), BLIP_CAPTION_PROMPT);
  assert.deepEqual(
    prompted.map((x) => x.tokens),
    r.greedy_prompt,
  );
  assert.ok(prompted[0].answer.startsWith('a picture of'), prompted[0].answer);
  await assert.rejects(
    runner.answer(blipImages(), BLIP_CAPTIONS),
    /BlipForConditionalGeneration writes captions; questions need BlipForQuestionAnswering/,
  );
  await runner.release();
  const S = m.config.vision.imageSize;
  const pv = await blipPixelValues(m, blipImages());
  const s = await Session.create(serializeModel(buildCaptionLossGraph(m)).model, { threads: 2 });
  const out = await s.run({
    pixel_values: tensor('float32', [2, 3, S, S], pv.data),
    input_ids: tensor('int64', [2, ab.length], ab.ids),
    attention_mask: tensor('int64', [2, ab.length], ab.mask),
    labels: tensor('int64', [2, ab.length], ab.labels),
  });
  await s.dispose();
  assert.ok(maxDiff(out.logits.data as Float32Array, r.logits) < 1e-4, 'caption logits');
  m.close();
});
