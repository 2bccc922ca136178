// The tiny LLaVA's forward graph against the float64 PyTorch reference (tests/fixtures/models/tiny-llava-reference.json):
// logits of the last positions within 1e-4 and the 6 greedy tokens by full recomputation, for both fixture variants
// (CLIP 'default' strategy + untied + GQA 4/2; 'full' strategy + layer -2 + tied + MQA 4/1 + 3 layers). Then the KV-cache
// graphs: prefill + decode steps give the full forward's logits, and left padding with mask positions changes nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { loadHfFolder, type HfModel } from '../../src-main/models/hf-folder';
import { makeSample } from '../../src-main/models/demo/shapes';
import { buildForwardGraph, IO } from '../../src-main/models/llava';
import { serializeModel, Session, tensor, type ort } from '../../src-main/engine';
import type { LlavaModelConfig } from '../../src-main/models/config';
import { tinyLlavaReference, type TinyLlavaRefCase } from '../fixtures/models/tiny-llava-reference';

const { dir, cleanup } = tempDir('logits-');
after(cleanup);

const ref = tinyLlavaReference;
type RefCase = TinyLlavaRefCase;

async function setup(c: RefCase): Promise<{ m: HfModel; cfg: LlavaModelConfig; pv: Float32Array; ids: number[] }> {
  const d = join(dir, c.name);
  writeTinyLlava(d, c.seed, c.options);
  const m = loadHfFolder(d);
  if (m.config.kind !== 'llava') throw new Error('llava expected');
  const cfg = m.config;
  const s = makeSample(c.image.seed, c.image.index, { size: cfg.vision.imageSize });
  const pv = await m.imageProcessor!.process({ data: s.rgb, width: s.scene.size, height: s.scene.size });
  const ids = c.input_ids.flatMap((id) =>
    id === cfg.imageTokenIndex ? new Array<number>(cfg.numImageTokens).fill(id) : [id],
  );
  return { m, cfg, pv: pv.data, ids };
}

const i64 = (xs: number[], dims: number[]) => tensor('int64', dims, BigInt64Array.from(xs.map(BigInt)));
const ones = (n: number) => new Array<number>(n).fill(1);

function argmax(a: ArrayLike<number>, off: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (a[off + j] > a[off + best]) best = j;
  return best;
}

for (const c of ref.cases) {
  test(`tiny LLaVA '${c.name}': logits match the PyTorch reference within 1e-4; greedy tokens pinned`, async () => {
    const { m, cfg, pv, ids } = await setup(c);
    const sess = await Session.create(serializeModel(buildForwardGraph(m)).model, { threads: 1 });
    const S = cfg.vision.imageSize;
    const V = cfg.text.vocabSize;
    const run = async (seq: number[]) => {
      const T = seq.length;
      const r = await sess.run({
        [IO.inputIds]: i64(seq, [1, T]),
        [IO.attentionMask]: i64(ones(T), [1, T]),
        [IO.pixelValues]: tensor('float32', [1, 3, S, S], pv),
      });
      assert.deepEqual(r[IO.logits].dims, [1, T, V]);
      return r[IO.logits].data as Float32Array;
    };
    const lg = await run(ids);
    let maxDiff = 0;
    c.logits_positions.forEach((p, k) => {
      for (let j = 0; j < V; j++) maxDiff = Math.max(maxDiff, Math.abs(lg[p * V + j] - c.logits[k][j]));
    });
    assert.ok(maxDiff < 1e-4, `max |logit - reference| = ${maxDiff}`);
    const seq = ids.slice();
    const greedy: number[] = [];
    for (let i = 0; i < c.greedy_tokens.length; i++) {
      const out = await run(seq);
      const t = argmax(out, (seq.length - 1) * V, V);
      greedy.push(t);
      seq.push(t);
    }
    assert.deepEqual(greedy, c.greedy_tokens);
    await sess.dispose();
    m.close();
  });
}

test('KV cache: prefill + decode steps reproduce the full forward; left padding with mask positions too', async () => {
  const c = ref.cases[0];
  const { m, cfg, pv, ids } = await setup(c);
  const t = cfg.text;
  const V = t.vocabSize;
  const S = cfg.vision.imageSize;
  const full = await Session.create(serializeModel(buildForwardGraph(m)).model, { threads: 1 });
  const prefill = await Session.create(serializeModel(buildForwardGraph(m, { mode: 'prefill' })).model, { threads: 1 });
  const decode = await Session.create(serializeModel(buildForwardGraph(m, { mode: 'decode' })).model, { threads: 1 });
  const pix = tensor('float32', [1, 3, S, S], pv);
  const extra = c.greedy_tokens.slice(0, 3);
  const all = [...ids, ...extra];
  const ref1 = (
    await full.run({
      [IO.inputIds]: i64(all, [1, all.length]),
      [IO.attentionMask]: i64(ones(all.length), [1, all.length]),
      [IO.pixelValues]: pix,
    })
  )[IO.logits].data as Float32Array;

  const L0 = ids.length;
  const leftIds = [3, 3, ...ids];
  const leftMask = [0, 0, ...ones(L0)];
  const feeds2 = (idsArr: number[], maskArr: number[]) => ({
    [IO.inputIds]: i64(idsArr, [1, idsArr.length]),
    [IO.attentionMask]: i64(maskArr, [1, maskArr.length]),
    [IO.pixelValues]: pix,
  });

  for (const [name, pIds, pMask] of [
    ['unpadded', ids, ones(L0)],
    ['left-padded', leftIds, leftMask],
  ] as const) {
    const pr = await prefill.run(feeds2([...pIds], [...pMask]));
    assert.deepEqual(pr[IO.logits].dims, [1, 1, V]);
    const check = (got: Float32Array, pos: number, what: string) => {
      let d = 0;
      for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(got[j] - ref1[pos * V + j]));
      assert.ok(d < 1e-4, `${name} ${what}: max diff ${d}`);
    };
    check(pr[IO.logits].data as Float32Array, L0 - 1, 'prefill');
    let past: Record<string, ort.Tensor> = {};
    for (let i = 0; i < t.numHiddenLayers; i++) {
      past[IO.pastKey(i)] = pr[IO.presentKey(i)];
      past[IO.pastValue(i)] = pr[IO.presentValue(i)];
    }
    let mask = [...pMask];
    for (let k = 0; k < extra.length; k++) {
      mask = [...mask, 1];
      const dr = await decode.run({
        [IO.inputIds]: i64([extra[k]], [1, 1]),
        [IO.attentionMask]: i64(mask, [1, mask.length]),
        ...past,
      });
      assert.deepEqual(dr[IO.presentKey(0)].dims, [1, t.numKeyValueHeads, mask.length, t.headDim]);
      check(dr[IO.logits].data as Float32Array, L0 + k, `decode step ${k}`);
      past = {};
      for (let i = 0; i < t.numHiddenLayers; i++) {
        past[IO.pastKey(i)] = dr[IO.presentKey(i)];
        past[IO.pastValue(i)] = dr[IO.presentValue(i)];
      }
    }
  }
  for (const s of [full, prefill, decode]) await s.dispose();
  m.close();
});

test('batch of 2 with padding on both sides: each row equals its own single-row forward (image features in row order)', async () => {
  const c = ref.cases[0];
  const { m, cfg, pv, ids } = await setup(c);
  const V = cfg.text.vocabSize;
  const S = cfg.vision.imageSize;
  const other = makeSample(c.image.seed, c.image.index + 1, { size: S });
  const pv2 = (await m.imageProcessor!.process({ data: other.rgb, width: S, height: S })).data;
  const sess = await Session.create(serializeModel(buildForwardGraph(m)).model, { threads: 1 });
  const L0 = ids.length;
  const single = async (pix: Float32Array) =>
    (
      await sess.run({
        [IO.inputIds]: i64(ids, [1, L0]),
        [IO.attentionMask]: i64(ones(L0), [1, L0]),
        [IO.pixelValues]: tensor('float32', [1, 3, S, S], pix),
      })
    )[IO.logits].data as Float32Array;
  const a = await single(pv);
  const b = await single(pv2);
  const T = L0 + 2;
  const both = new Float32Array(2 * pv.length);
  both.set(pv, 0);
  both.set(pv2, pv.length);
  const r = await sess.run({
    [IO.inputIds]: i64([...ids, 3, 3, 3, 3, ...ids], [2, T]),
    [IO.attentionMask]: i64([...ones(L0), 0, 0, 0, 0, ...ones(L0)], [2, T]),
    [IO.pixelValues]: tensor('float32', [2, 3, S, S], both),
  });
  const lg = r[IO.logits].data as Float32Array;
  let d = 0;
  let differ = 0;
  for (let p = 0; p < L0; p++)
    for (let j = 0; j < V; j++) {
      d = Math.max(d, Math.abs(lg[p * V + j] - a[p * V + j]), Math.abs(lg[(T + 2 + p) * V + j] - b[p * V + j]));
      differ = Math.max(differ, Math.abs(a[p * V + j] - b[p * V + j]));
    }
  assert.ok(d < 1e-4, `max diff ${d}`);
  assert.ok(differ > 1e-2, 'the two images give different logits');
  await sess.dispose();
  m.close();
});
