#!/usr/bin/env -S npx tsx
// `npm run demo:audio`: a tiny audio LLM composed from a tiny Whisper encoder and a tiny LLaMA (both random, in
// published layouts) learns a synthetic listening task on the CPU:
//   1. generate tone clips (1 s, 16 kHz): "Which tone is higher?" (first / second) and "How many beeps?" (one..four)
//   2. compose Whisper + LLaMA + a new frame-stacking projector (Ultravox layout, "<audio>" placeholder)
//   3. evaluate the composed base on held-out clips (greedy answers, exact match)
//   4. stage 1: train the projector alone on captions ("a low tone then a high tone", "three short beeps")
//   5. stage 2: LoRA on every decoder projection + the projector, on the questions
//   6. evaluate again; print base vs fine-tuned exact match, the majority baseline and chance per question
//      (with --keep DIR the parts, the composed model and the trained adapter stay in DIR)
//
// Usage: npx tsx scripts/audio-demo.ts [--steps1 N] [--steps2 N] [--train N] [--eval N] [--seed S] [--keep DIR]
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StepExecutor } from '../src-main/engine/runtime/step-executor';
import { lrAt, type Schedule } from '../src-main/engine/optim/schedules';
import { writeTinyAudioLlm } from '../src-main/models/demo/tiny-audio-llm';
import { CAPTION_QUESTION, toneSample, type ToneSample } from '../src-main/models/demo/tones';
import { clipFeatures, loadAudioLlm, type LoadedAudioLlm } from '../src-main/models/audio/ultravox';
import {
  AudioLlmGenerator,
  buildTrainableAudioLlm,
  trainBatch,
  type AudioExample,
  type TrainableAudioLlm,
} from '../src-main/models/audio/train';
import { demoRng } from '../src-main/models/demo/rng';
import { saveAudioAdapter } from '../src-main/models/audio/adapter';

const { values: a } = parseArgs({
  options: {
    steps1: { type: 'string', default: '150' },
    steps2: { type: 'string', default: '300' },
    train: { type: 'string', default: '512' },
    eval: { type: 'string', default: '128' },
    batch: { type: 'string', default: '16' },
    lr1: { type: 'string', default: '1e-2' },
    lr2: { type: 'string', default: '1e-2' },
    seed: { type: 'string', default: '0' },
    keep: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (a.help) {
  console.log(
    'npx tsx scripts/audio-demo.ts [--steps1 150] [--steps2 300] [--train 512] [--eval 128] [--batch 16] [--seed 0] [--keep DIR]',
  );
  process.exit(0);
}
const seed = Number(a.seed);
const B = Number(a.batch);
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
const root = a.keep ?? mkdtempSync(join(tmpdir(), 'lenslab-audio-demo-'));

const composed = writeTinyAudioLlm(root, seed);
const m = loadAudioLlm(composed.dir);
console.log(
  `composed ${composed.dir}: whisper ${m.config.audio.numLayers}x${m.config.audio.dModel} + llama ${m.config.text.numHiddenLayers}x${m.config.text.hiddenSize}, stack ${m.config.projector.stackFactor} -> ${m.tokensPerClip} audio tokens per ${m.features.config.chunkLength} s clip, "${m.audioToken}" = id ${m.config.audioTokenIndex}`,
);

const clips = (s: number, n: number) => Array.from({ length: n }, (_, i) => toneSample(s, i));
const train = clips(seed + 100, Number(a.train));
const val = clips(seed + 200, Number(a.eval));
const feats = (xs: ToneSample[]) =>
  clipFeatures(
    m.features,
    xs.map((x, i) => ({ samples: x.samples, sampleRate: x.sampleRate, name: `clip ${i}` })),
  );
const trainF = feats(train);
const valF = feats(val);
console.log(`${train.length} training and ${val.length} held-out clips, log-mel features in ${secs()} s`);
const per = trainF.dims[1] * trainF.dims[2];
const slice = (f: typeof trainF, idx: number[]) => {
  const data = new Float32Array(idx.length * per);
  idx.forEach((j, k) => data.set(f.data.subarray(j * per, (j + 1) * per), k * per));
  return { data, dims: [idx.length, f.dims[1], f.dims[2]] as [number, number, number] };
};

async function trainStage(
  t: TrainableAudioLlm,
  init: Record<string, Float32Array>,
  steps: number,
  lr: number,
  example: (s: ToneSample) => AudioExample,
  label: string,
) {
  const ex = await StepExecutor.create(
    { params: t.params, forward: t.forward, adamw: { weightDecay: 0 }, clipNorm: 1.0, session: { threads: 2 } },
    init,
  );
  const sched: Schedule = {
    kind: 'cosine',
    baseLr: lr,
    warmupSteps: Math.round(steps * 0.05),
    totalSteps: steps,
    minRatio: 0.1,
  };
  const rng = demoRng(seed + 7);
  let avg = 0;
  for (let s = 0; s < steps; s++) {
    const idx = Array.from({ length: B }, () => Math.floor(rng.next() * train.length));
    const r = await ex.step(
      trainBatch(
        m,
        idx.map((j) => example(train[j])),
        slice(trainF, idx),
      ) as never,
      lrAt(sched, s),
    );
    avg = s === 0 ? r.loss : 0.9 * avg + 0.1 * r.loss;
    if ((s + 1) % 50 === 0 || s === steps - 1)
      console.log(`  ${label} step ${s + 1}/${steps}: loss ${avg.toFixed(3)} (${secs()} s)`);
  }
  const out: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(ex.paramTensors())) out[k] = Float32Array.from(v.data as Float32Array);
  await ex.dispose?.();
  return out;
}

async function evaluate(gen: AudioLlmGenerator, t: TrainableAudioLlm, values: Record<string, Float32Array>) {
  const answers: string[] = [];
  for (let i = 0; i < val.length; i += 32) {
    const idx = Array.from({ length: Math.min(32, val.length - i) }, (_, k) => i + k);
    answers.push(
      ...(await gen.answer(
        idx.map((j) => val[j].question),
        slice(valF, idx),
        values,
        t.params,
        6,
      )),
    );
  }
  const score = (task?: string) => {
    const items = val.map((v, i) => ({ v, a: answers[i] })).filter((x) => !task || x.v.task === task);
    return items.filter((x) => x.a === x.v.answer).length / items.length;
  };
  return { all: score(), higher: score('higher'), beeps: score('beeps'), sample: answers.slice(0, 6) };
}

// majority baseline: the most frequent training answer of each question, applied to the held-out clips
const majority = new Map<string, string>();
for (const task of ['higher', 'beeps']) {
  const counts = new Map<string, number>();
  for (const s of train) if (s.task === task) counts.set(s.answer, (counts.get(s.answer) ?? 0) + 1);
  majority.set(task, [...counts].sort((x, y) => y[1] - x[1])[0][0]);
}
const majorityScore = val.filter((v) => majority.get(v.task) === v.answer).length / val.length;

const lora = {
  rank: 16,
  alpha: 32,
  targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};
const frames = m.features.config.nbMaxFrames;
const stage1 = buildTrainableAudioLlm(m, 'projector', null, frames);
const stage2 = buildTrainableAudioLlm(m, 'lora+projector', lora, frames);
const gen = await AudioLlmGenerator.create(m, stage2);
const baseValues = stage2.initialValues(seed);
const base = await evaluate(gen, stage2, baseValues);
console.log(
  `base (composed, untrained): exact match ${(100 * base.all).toFixed(1)}%  e.g. ${JSON.stringify(base.sample.slice(0, 3))}  (${secs()} s)`,
);

console.log(`stage 1: projector only on captions, ${a.steps1} steps of ${B}`);
const p1 = await trainStage(
  stage1,
  stage1.initialValues(seed),
  Number(a.steps1),
  Number(a.lr1),
  (s) => ({ question: CAPTION_QUESTION, answer: s.caption }),
  'projector',
);
console.log(
  `stage 2: LoRA r${lora.rank} on ${stage2.modules.length} decoder projections + projector, ${a.steps2} steps of ${B}`,
);
const init2 = { ...baseValues, ...p1 };
const p2 = await trainStage(
  stage2,
  init2,
  Number(a.steps2),
  Number(a.lr2),
  (s) => ({ question: s.question, answer: s.answer }),
  'lora+projector',
);
const tuned = await evaluate(gen, stage2, p2);
if (a.keep) saveAudioAdapter(join(root, 'adapter'), m, 'lora+projector', lora, p2, composed.dir);
await gen.dispose();
m.close();

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
console.log('');
console.log(`held-out exact match (${val.length} clips)   all      which higher   how many beeps`);
console.log(
  `  chance                              ${pct((0.5 + 0.25) / 2).padEnd(8)} ${pct(0.5).padEnd(14)} ${pct(0.25)}`,
);
console.log(`  majority baseline                   ${pct(majorityScore)}`);
console.log(
  `  base (composed)                     ${pct(base.all).padEnd(8)} ${pct(base.higher).padEnd(14)} ${pct(base.beeps)}`,
);
console.log(
  `  fine-tuned                          ${pct(tuned.all).padEnd(8)} ${pct(tuned.higher).padEnd(14)} ${pct(tuned.beeps)}`,
);
console.log(`  e.g. ${JSON.stringify(tuned.sample)} for ${JSON.stringify(val.slice(0, 6).map((v) => v.answer))}`);
console.log(
  `total ${secs()} s${a.keep ? `, model in ${composed.dir}, adapter (PEFT) in ${join(root, 'adapter')}` : ''}`,
);
if (!a.keep) rmSync(root, { recursive: true, force: true });
