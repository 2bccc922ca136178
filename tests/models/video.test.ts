// Video through the image families: N frames through the vision tower, 2×2 pooling per frame, frame markers in the
// prompt. On the tiny LLaVA (8×8 patch grid → 4×4 = 16 tokens a frame): token counts and prompt layout of a rendered
// video conversation, pooled features equal to the image features averaged in JS, frames reaching the decoder's
// embeddings in time order behind their markers, and a forward + training step graph that runs. On the tiny
// Idefics3 the same code pools its pixel-shuffled grid (the family interface, no family branch).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { writeTinyIdefics3 } from '../../src-main/models/demo/tiny-idefics3';
import { makeSample } from '../../src-main/models/demo/shapes';
import { loadVlm, renderSetupOf, type LoadedVlm } from '../../src-main/models/program';
import { buildForwardGraph, imageFeatures, IO, llavaEmbeddings } from '../../src-main/models/llava';
import {
  expandVideoPlaceholder,
  poolMatrix,
  videoFeatures,
  videoPixelValues,
  videoRenderSetup,
  videoTokensPerFrame,
  pooledGrid,
} from '../../src-main/models/video';
import { GraphWeights } from '../../src-main/models/layers';
import { renderConversation } from '../../src-main/datasets/render';
import { Graph, serializeModel, Session, tensor } from '../../src-main/engine';
import { tinyLlavaReference } from '../fixtures/models/tiny-llava-reference';

const { dir, cleanup } = tempDir('video-model-');
after(cleanup);

const c0 = tinyLlavaReference.cases[0]; // 'default' feature strategy: an 8×8 patch grid
writeTinyLlava(join(dir, 'llava'), c0.seed, c0.options);
const llava = loadVlm(join(dir, 'llava'));
after(() => llava.close());

const i64 = (xs: number[], dims: number[]) => tensor('int64', dims, BigInt64Array.from(xs.map(BigInt)));

/** N distinct frames (demo scenes) as the family's pixel_values. */
async function frames(m: LoadedVlm, n: number, first = 0) {
  const size = 64;
  const inputs = Array.from({ length: n }, (_, k) => {
    const s = makeSample(11, first + k, { size });
    return { data: s.rgb, width: size, height: size };
  });
  return videoPixelValues(m.images, inputs);
}

function question(n: number): string {
  return expandVideoPlaceholder('<video>\nWhich way does the square move?', n);
}

test('a video conversation: N frame markers, each followed by one pooled frame of 16 image tokens, in order', () => {
  const cfg = llava.config;
  assert.equal(cfg.numImageTokens, 64);
  assert.deepEqual(pooledGrid(cfg), { rows: 4, cols: 4 });
  assert.equal(videoTokensPerFrame(cfg), 16);
  const text = question(4);
  assert.equal(
    text,
    'Frame 1/4: <image>\nFrame 2/4: <image>\nFrame 3/4: <image>\nFrame 4/4: <image>\nWhich way does the square move?',
  );
  const base = renderSetupOf(llava);
  const setup = videoRenderSetup(base, cfg);
  const r = renderConversation(
    [
      { role: 'user', content: text },
      { role: 'assistant', content: 'right' },
    ],
    setup,
  );
  assert.equal(r.imageCount, 4);
  const img = cfg.imageTokenIndex;
  assert.equal(r.ids.filter((t) => t === img).length, 4 * 16);
  assert.equal(r.ids.length, r.compactIds.length - 4 + 4 * 16);
  // runs of exactly 16 image tokens, and before run k the text says "Frame k/4:"
  const placeholders = r.compactIds.flatMap((t, i) => (t === img ? [i] : []));
  assert.equal(placeholders.length, 4);
  const tok = llava.tokenizer;
  placeholders.forEach((p, k) => {
    const before = tok.decode(r.compactIds.slice(k === 0 ? 0 : placeholders[k - 1] + 1, p));
    assert.match(before, new RegExp(`Frame ${k + 1}/4:\\s*$`), `text before frame ${k + 1}: ${JSON.stringify(before)}`);
  });
  let run = 0;
  const runs: number[] = [];
  for (const t of r.ids) {
    if (t === img) run++;
    else if (run) {
      runs.push(run);
      run = 0;
    }
  }
  assert.deepEqual(runs, [16, 16, 16, 16]);
  // no image token is in the loss; the answer is
  r.ids.forEach((t, i) => t === img && assert.equal(r.lossMask[i], 0));
  assert.ok(r.lossMask.some((m) => m === 1));
  // more frames, more tokens: the count is frames × 16 for any N
  const r8 = renderConversation([{ role: 'user', content: question(8) }], setup);
  assert.equal(r8.ids.filter((t) => t === img).length, 8 * 16);
});

test('pooled frame features are the image features averaged 2×2, frame by frame, in frame order', async () => {
  const cfg = llava.config;
  const N = 3;
  const pv = await frames(llava, N);
  const g = new Graph('video_feats');
  const w = new GraphWeights(g, llava.weights);
  const x = g.input(IO.pixelValues, 'float32', ['N', 3, 64, 64]);
  g.output(videoFeatures(w, cfg, x), 'video');
  g.output(imageFeatures(w, cfg, x), 'image');
  const sess = await Session.create(serializeModel(g).model, { threads: 1 });
  const run = async (data: Float32Array) => {
    const r = await sess.run({ [IO.pixelValues]: tensor('float32', [N, 3, 64, 64], data) });
    return { video: r.video, image: r.image };
  };
  const out = await run(pv.data);
  const D = cfg.text.hiddenSize;
  assert.deepEqual(out.image.dims, [N, 64, D]);
  assert.deepEqual(out.video.dims, [N, 16, D]);
  const im = out.image.data as Float32Array;
  const vid = out.video.data as Float32Array;
  let maxDiff = 0;
  for (let n = 0; n < N; n++)
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 4; j++)
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (const [r, c] of [
            [2 * i, 2 * j],
            [2 * i, 2 * j + 1],
            [2 * i + 1, 2 * j],
            [2 * i + 1, 2 * j + 1],
          ])
            s += im[(n * 64 + r * 8 + c) * D + d];
          maxDiff = Math.max(maxDiff, Math.abs(vid[(n * 16 + i * 4 + j) * D + d] - s / 4));
        }
  assert.ok(maxDiff < 1e-5, `pooled vs JS 2×2 mean: ${maxDiff}`);
  // reversing the frames reverses the pooled features (each frame is pooled on its own)
  const per = 3 * 64 * 64;
  const rev = new Float32Array(pv.data.length);
  for (let n = 0; n < N; n++) rev.set(pv.data.subarray(n * per, (n + 1) * per), (N - 1 - n) * per);
  const vr = (await run(rev)).video.data as Float32Array;
  const F = 16 * D;
  for (let n = 0; n < N; n++) {
    let d = 0;
    for (let k = 0; k < F; k++) d = Math.max(d, Math.abs(vr[(N - 1 - n) * F + k] - vid[n * F + k]));
    assert.ok(d < 1e-5, `frame ${n}`);
  }
  await sess.dispose();
});

test('pool matrix: ceil-mode windows average only what they cover (odd grids pool too)', () => {
  const m = poolMatrix({ rows: 3, cols: 3 });
  const T = 9;
  const row = (p: number) => Array.from(m.subarray(p * T, (p + 1) * T)).map((v) => Math.round(v * 100) / 100);
  assert.deepEqual(row(0), [0.25, 0.25, 0, 0.25, 0.25, 0, 0, 0, 0]);
  assert.deepEqual(row(1), [0, 0, 0.5, 0, 0, 0.5, 0, 0, 0]);
  assert.deepEqual(row(3), [0, 0, 0, 0, 0, 0, 0, 0, 1]);
});

test('frames reach the decoder embeddings in order behind their markers; the forward graph runs with video frames', async () => {
  const cfg = llava.config;
  const N = 4;
  const pv = await frames(llava, N, 5);
  const r = renderConversation([{ role: 'user', content: question(N) }], videoRenderSetup(renderSetupOf(llava), cfg));
  const ids = r.ids;
  const T = ids.length;
  const g = new Graph('video_embeds');
  const w = new GraphWeights(g, llava.weights);
  const x = g.input(IO.pixelValues, 'float32', ['N', 3, 64, 64]);
  const idsIn = g.input(IO.inputIds, 'int64', [1, 'T']);
  const feats = videoFeatures(w, cfg, x);
  g.output(feats, 'feats');
  g.output(llavaEmbeddings(w, cfg, idsIn, feats), 'embeds');
  const sess = await Session.create(serializeModel(g).model, { threads: 1 });
  const out = await sess.run({
    [IO.pixelValues]: tensor('float32', [N, 3, 64, 64], pv.data),
    [IO.inputIds]: i64(ids, [1, T]),
  });
  const D = cfg.text.hiddenSize;
  const fe = out.feats.data as Float32Array;
  const em = out.embeds.data as Float32Array;
  const imgPos = ids.flatMap((t, i) => (t === cfg.imageTokenIndex ? [i] : []));
  assert.equal(imgPos.length, N * 16);
  imgPos.forEach((p, k) => {
    const frame = Math.floor(k / 16);
    const row = k % 16;
    for (let d = 0; d < D; d++) assert.equal(em[p * D + d], fe[(frame * 16 + row) * D + d]);
  });
  await sess.dispose();

  // the inference forward with videoPool: logits for the sequence, and the frame order matters to them
  const fwd = await Session.create(serializeModel(buildForwardGraph(llava, { videoPool: 2 })).model, { threads: 1 });
  const V = cfg.text.vocabSize;
  const logits = async (data: Float32Array) => {
    const o = await fwd.run({
      [IO.inputIds]: i64(ids, [1, T]),
      [IO.attentionMask]: i64(new Array(T).fill(1), [1, T]),
      [IO.pixelValues]: tensor('float32', [N, 3, 64, 64], data),
    });
    assert.deepEqual(o[IO.logits].dims, [1, T, V]);
    return (o[IO.logits].data as Float32Array).slice((T - 1) * V);
  };
  const a = await logits(pv.data);
  const per = 3 * 64 * 64;
  const rev = new Float32Array(pv.data.length);
  for (let n = 0; n < N; n++) rev.set(pv.data.subarray(n * per, (n + 1) * per), (N - 1 - n) * per);
  const b = await logits(rev);
  let diff = 0;
  for (let j = 0; j < V; j++) diff = Math.max(diff, Math.abs(a[j] - b[j]));
  assert.ok(diff > 1e-4, `reversed frames change the last logits (${diff})`);
  await fwd.dispose();
});

test('Idefics3: the same video path pools its pixel-shuffled grid and takes each frame whole', async () => {
  writeTinyIdefics3(join(dir, 'idefics3'), 5, { initStd: 0.2 });
  const m = loadVlm(join(dir, 'idefics3'));
  try {
    const cfg = m.config;
    const grid = pooledGrid(cfg)!;
    const side = cfg.vision.imageSize / cfg.vision.patchSize / (cfg as unknown as { scaleFactor: number }).scaleFactor;
    assert.deepEqual(grid, { rows: Math.ceil(side / 2), cols: Math.ceil(side / 2) });
    assert.equal(videoTokensPerFrame(cfg), grid.rows * grid.cols);
    // a wide frame would be tiled as an image; as a video frame it is one whole-image frame
    const s = makeSample(3, 1, { size: 64 });
    const wide = new Uint8Array(128 * 64 * 3);
    for (let y = 0; y < 64; y++)
      for (const half of [0, 1]) wide.set(s.rgb.subarray(y * 64 * 3, (y + 1) * 64 * 3), (y * 128 + half * 64) * 3);
    const frame = { data: wide, width: 128, height: 64 };
    const asImage = await m.images.process(frame);
    assert.ok(asImage.frames > 1, 'as an image it is tiled');
    const pv = await videoPixelValues(m.images, [frame, frame]);
    assert.deepEqual(
      pv.data.subarray(0, pv.data.length / 2),
      asImage.data.subarray((asImage.frames - 1) * (pv.data.length / 2)),
    );
    assert.equal(pv.frames, 2);
    assert.equal(pv.data.length, 2 * 3 * pv.height * pv.width);
    const g = new Graph('idefics3_video');
    const w = new GraphWeights(g, m.weights);
    const x = g.input(IO.pixelValues, 'float32', ['N', 3, pv.height, pv.width]);
    g.output(videoFeatures(w, cfg, x), 'video');
    const sess = await Session.create(serializeModel(g).model, { threads: 1 });
    const o = await sess.run({ [IO.pixelValues]: tensor('float32', [2, 3, pv.height, pv.width], pv.data) });
    assert.deepEqual(o.video.dims, [2, grid.rows * grid.cols, cfg.text.hiddenSize]);
    await sess.dispose();
  } finally {
    m.close();
  }
});
