#!/usr/bin/env -S npx tsx
// `npm run demo:video`: a tiny LLaVA (random weights, published layout) learns to watch on the CPU:
//   1. a script draws clips of 4 frames (64×64): a square moving left, right, up or down; the question is
//      "Which way does the square move?" (with --keep DIR the frames are written there as PNG)
//   2. each clip goes through the model as video: the 4 frames through the vision tower, 2×2-pooled per frame,
//      "Frame k/4:" markers in the prompt (models/video.ts)
//   3. evaluate the base on held-out clips (greedy answers, exact match)
//   4. train every part (--method full, default) or LoRA + projector (--method lora+projector)
//   5. evaluate again; print base vs fine-tuned exact match, the majority baseline and chance
//
// Usage: npx tsx scripts/video-demo.ts [--steps N] [--train N] [--eval N] [--batch N] [--lr X] [--method full|lora+projector]
//        [--directions 4|2] [--init-std X] [--frames N] [--seed S] [--keep DIR]
import { parseArgs } from 'node:util';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { StepExecutor } from '../src-main/engine/runtime/step-executor';
import { lrAt, type Schedule } from '../src-main/engine/optim/schedules';
import { serializeModel, Session, tensor } from '../src-main/engine';
import { writeTinyLlava } from '../src-main/models/demo/tiny-llava';
import { demoRng } from '../src-main/models/demo/rng';
import {
  buildLogitsGraph,
  buildTrainableVlm,
  loadVlm,
  renderSetupOf,
  type LoraOptions,
} from '../src-main/models/program';
import {
  expandVideoPlaceholder,
  videoPixelValues,
  videoRenderSetup,
  videoTokensPerFrame,
} from '../src-main/models/video';
import { renderConversation } from '../src-main/datasets/render';
import { IO } from '../src-main/models/llava';
import type { TensorSource } from '../src-main/models/weights/safetensors';

const { values: a } = parseArgs({
  options: {
    steps: { type: 'string', default: '300' },
    train: { type: 'string', default: '256' },
    eval: { type: 'string', default: '64' },
    batch: { type: 'string', default: '8' },
    lr: { type: 'string', default: '2e-3' },
    method: { type: 'string', default: 'full' },
    'init-std': { type: 'string', default: '0.2' },
    directions: { type: 'string', default: '4' },
    frames: { type: 'string', default: '4' },
    seed: { type: 'string', default: '0' },
    keep: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (a.help) {
  console.log(
    'npx tsx scripts/video-demo.ts [--steps 300] [--train 256] [--eval 64] [--batch 8] [--lr 2e-3] [--method full|lora+projector] [--directions 4|2] [--init-std 0.2] [--frames 4] [--seed 0] [--keep DIR]',
  );
  process.exit(0);
}
const seed = Number(a.seed);
const B = Number(a.batch);
const N = Number(a.frames);
const SIZE = 64;
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
const root = a.keep ?? mkdtempSync(join(tmpdir(), 'lenslab-video-demo-'));

const ALL_DIRECTIONS = ['left', 'right', 'up', 'down'] as const;
type Direction = (typeof ALL_DIRECTIONS)[number];
// --directions 2: left / right only
const DIRECTIONS = ALL_DIRECTIONS.slice(0, Math.max(2, Math.min(4, Number(a.directions))));
const QUESTION = 'Which way does the square move?';

interface Clip {
  frames: { data: Uint8Array; width: number; height: number }[];
  answer: Direction;
}

/** A square (side 14, a random bright colour) moving 10 px a frame in one direction over a dark background. */
function makeClip(s: number, i: number): Clip {
  const rng = demoRng(s * 100_003 + i);
  const answer = DIRECTIONS[Math.floor(rng.next() * DIRECTIONS.length)];
  const side = 14;
  const step = 10;
  const span = step * (N - 1);
  const [dx, dy] = { left: [-1, 0], right: [1, 0], up: [0, -1], down: [0, 1] }[answer];
  // a start that keeps every frame's square inside the image
  const lo = (d: number) => (d < 0 ? span : 0);
  const hi = (d: number) => SIZE - side - (d > 0 ? span : 0);
  const x0 = lo(dx) + Math.floor(rng.next() * (hi(dx) - lo(dx) + 1));
  const y0 = lo(dy) + Math.floor(rng.next() * (hi(dy) - lo(dy) + 1));
  const colour = [
    150 + Math.floor(rng.next() * 106),
    150 + Math.floor(rng.next() * 106),
    150 + Math.floor(rng.next() * 106),
  ];
  const bg = Math.floor(rng.next() * 40);
  const frames = Array.from({ length: N }, (_, k) => {
    const data = new Uint8Array(SIZE * SIZE * 3).fill(bg);
    const x = x0 + dx * step * k;
    const y = y0 + dy * step * k;
    for (let yy = y; yy < y + side; yy++) for (let xx = x; xx < x + side; xx++) data.set(colour, (yy * SIZE + xx) * 3);
    return { data, width: SIZE, height: SIZE };
  });
  return { frames, answer };
}

const modelDir = join(root, 'model');
// a wider random init than the default 0.02 keeps the square's position visible through the random tower
writeTinyLlava(modelDir, seed, { initStd: Number(a['init-std']) });
const m = loadVlm(modelDir);
const cfg = m.config;
const setup = videoRenderSetup(renderSetupOf(m), cfg);
const userText = expandVideoPlaceholder(`<video>\n${QUESTION}`, N);
console.log(
  `tiny LLaVA ${modelDir}: ${cfg.numImageTokens} tokens an image, ${videoTokensPerFrame(cfg)} a pooled video frame, ${N} frames a clip`,
);

const clips = (s: number, n: number) => Array.from({ length: n }, (_, i) => makeClip(s, i));
const train = clips(seed + 100, Number(a.train));
const val = clips(seed + 200, Number(a.eval));
if (a.keep) {
  for (const [name, set] of [
    ['train', train.slice(0, 16)],
    ['val', val.slice(0, 16)],
  ] as const)
    for (const [i, c] of set.entries()) {
      const d = join(root, 'frames', name, `${String(i).padStart(3, '0')}-${c.answer}`);
      mkdirSync(d, { recursive: true });
      for (const [k, f] of c.frames.entries())
        await sharp(f.data, { raw: { width: SIZE, height: SIZE, channels: 3 } })
          .png()
          .toFile(join(d, `frame${k + 1}.png`));
    }
}
const pixels = async (set: Clip[]) =>
  Promise.all(set.map(async (c) => (await videoPixelValues(m.images, c.frames)).data));
const trainPx = await pixels(train);
const valPx = await pixels(val);
const per = N * 3 * SIZE * SIZE;
console.log(`${train.length} training and ${val.length} held-out clips drawn and preprocessed (${secs()} s)`);

/** ids + labels (the answer and end of turn) of one clip's conversation; one rendering per answer, kept. */
const renderings = new Map<string, { ids: number[]; labels: number[]; promptLen: number }>();
function rendered(answer: string) {
  const known = renderings.get(answer);
  if (known) return known;
  const r = renderConversation(
    [
      { role: 'user', content: userText },
      { role: 'assistant', content: answer },
    ],
    setup,
  );
  const out = { ids: r.ids, labels: r.ids.map((t, k) => (r.lossMask[k] ? t : -100)), promptLen: r.lossMask.indexOf(1) };
  renderings.set(answer, out);
  return out;
}

function batch(set: Clip[], px: Float32Array[], idx: number[]) {
  const rows = idx.map((j) => rendered(set[j].answer));
  const T = Math.max(...rows.map((r) => r.ids.length));
  const pad = m.tokenizer.padTokenId ?? 0;
  const ids = new BigInt64Array(idx.length * T).fill(BigInt(pad));
  const mask = new BigInt64Array(idx.length * T);
  const labels = new BigInt64Array(idx.length * T).fill(-100n);
  rows.forEach((r, b) =>
    r.ids.forEach((id, t) => {
      ids[b * T + t] = BigInt(id);
      mask[b * T + t] = 1n;
      labels[b * T + t] = BigInt(r.labels[t]);
    }),
  );
  const pv = new Float32Array(idx.length * per);
  idx.forEach((j, k) => pv.set(px[j], k * per));
  return {
    [IO.inputIds]: tensor('int64', [idx.length, T], ids),
    [IO.attentionMask]: tensor('int64', [idx.length, T], mask),
    labels: tensor('int64', [idx.length, T], labels),
    [IO.pixelValues]: tensor('float32', [idx.length * N, 3, SIZE, SIZE], pv),
  };
}

// 'full' (default): every part trains, the tower too (random weights: it has to learn to see the square);
// 'lora+projector': LoRA on every decoder projection + the projector, as for a pretrained base
const method = a.method as 'full' | 'lora+projector';
if (method !== 'full' && method !== 'lora+projector')
  throw new Error(`--method: full or lora+projector (got ${a.method})`);
const lora: LoraOptions | null =
  method === 'full'
    ? null
    : {
        rank: 16,
        alpha: 32,
        dropout: 0,
        targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      };
const tv = buildTrainableVlm(m, method, lora, { videoPool: 2, fullParts: ['vision', 'projector', 'decoder'] });

/** The folder's tensors with some replaced (fully trained ones). */
function overlay(base: TensorSource, values: Record<string, Float32Array>): TensorSource {
  return {
    names: () => base.names(),
    has: (n) => base.has(n),
    info: (n) => (n in values ? { dtype: 'F32', shape: base.info(n).shape } : base.info(n)),
    get: (n) => values[n] ?? base.get(n),
  };
}

/** Greedy answers (every prompt has the same length: no padding), decoded up to the end of turn. */
async function evaluate(values: Record<string, Float32Array>) {
  // 'full': the trained tensors over the folder's; LoRA: merged into the weights
  const model = method === 'full' ? { config: m.config, weights: overlay(m.weights, values) } : m;
  const graph = buildLogitsGraph(model, {
    adapter: method === 'full' ? null : { method, lora, values },
    adapterMode: 'merge',
    videoPool: 2,
  });
  const sess = await Session.create(serializeModel(graph).model, { threads: 2 });
  const prompt = rendered('x');
  const head = prompt.ids.slice(0, prompt.promptLen);
  const V = cfg.text.vocabSize;
  const eos = m.tokenizer.eosTokenId;
  const answers: string[] = [];
  for (let i = 0; i < val.length; i += 16) {
    const idx = Array.from({ length: Math.min(16, val.length - i) }, (_, k) => i + k);
    const seqs = idx.map(() => head.slice());
    const done = idx.map(() => false);
    const pv = new Float32Array(idx.length * per);
    idx.forEach((j, k) => pv.set(valPx[j], k * per));
    for (let step = 0; step < 4 && done.some((d) => !d); step++) {
      const T = seqs[0].length;
      const flat = BigInt64Array.from(seqs.flat().map(BigInt));
      const out = await sess.run({
        [IO.inputIds]: tensor('int64', [idx.length, T], flat),
        [IO.attentionMask]: tensor('int64', [idx.length, T], new BigInt64Array(idx.length * T).fill(1n)),
        [IO.pixelValues]: tensor('float32', [idx.length * N, 3, SIZE, SIZE], pv),
      });
      const lg = out[IO.logits].data as Float32Array;
      seqs.forEach((s, b) => {
        let best = 0;
        const off = (b * T + T - 1) * V;
        for (let v = 1; v < V; v++) if (lg[off + v] > lg[off + best]) best = v;
        if (best === eos) done[b] = true;
        s.push(done[b] ? (m.tokenizer.padTokenId ?? 0) : best);
      });
    }
    for (const s of seqs)
      answers.push(
        m.tokenizer.decode(s.slice(head.length).filter((t) => t !== eos && t !== m.tokenizer.padTokenId)).trim(),
      );
  }
  await sess.dispose();
  const score = answers.filter((x, k) => x === val[k].answer).length / val.length;
  return { score, sample: answers.slice(0, 8) };
}

const initial = tv.initialValues(seed);
const base = await evaluate(initial);
console.log(
  `base: exact match ${(100 * base.score).toFixed(1)}%  e.g. ${JSON.stringify(base.sample.slice(0, 4))}  (${secs()} s)`,
);

const steps = Number(a.steps);
console.log(
  `training ${lora ? `LoRA r${lora.rank} on ${tv.loraModules.length} decoder projections + the projector` : `the vision tower, the projector and the decoder (${tv.params.length} tensors)`}, ${steps} steps of ${B} clips`,
);
const ex = await StepExecutor.create(
  { params: tv.params, forward: tv.forward, adamw: { weightDecay: 0 }, clipNorm: 1.0, session: { threads: 2 } },
  initial,
);
const sched: Schedule = {
  kind: 'cosine',
  baseLr: Number(a.lr),
  warmupSteps: Math.round(steps * 0.05),
  totalSteps: steps,
  minRatio: 0.1,
};
const rng = demoRng(seed + 7);
let avg = 0;
for (let s = 0; s < steps; s++) {
  const idx = Array.from({ length: B }, () => Math.floor(rng.next() * train.length));
  const r = await ex.step(batch(train, trainPx, idx) as never, lrAt(sched, s));
  avg = s === 0 ? r.loss : 0.9 * avg + 0.1 * r.loss;
  if ((s + 1) % 25 === 0 || s === steps - 1)
    console.log(`  step ${s + 1}/${steps}: loss ${avg.toFixed(3)} (${secs()} s)`);
}
const trained: Record<string, Float32Array> = {};
for (const [k, v] of Object.entries(ex.paramTensors())) trained[k] = Float32Array.from(v.data as Float32Array);
await ex.dispose?.();
const tuned = await evaluate(trained);
m.close();

const counts = new Map<string, number>();
for (const c of train) counts.set(c.answer, (counts.get(c.answer) ?? 0) + 1);
const majority = [...counts].sort((x, y) => y[1] - x[1])[0][0];
const majorityScore = val.filter((c) => c.answer === majority).length / val.length;
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
console.log('');
console.log(`held-out exact match (${val.length} clips, "${QUESTION}")`);
console.log(`  chance                ${pct(1 / DIRECTIONS.length)}`);
console.log(`  majority baseline     ${pct(majorityScore)}  (always "${majority}")`);
console.log(`  base                  ${pct(base.score)}`);
console.log(`  fine-tuned            ${pct(tuned.score)}`);
console.log(`  e.g. ${JSON.stringify(tuned.sample)} for ${JSON.stringify(val.slice(0, 8).map((c) => c.answer))}`);
console.log(`total ${secs()} s${a.keep ? `, model and frames in ${root}` : ''}`);
if (!a.keep) rmSync(root, { recursive: true, force: true });
