// npm run bench:train [-- --steps 5 --warmup 2 --threads N --skip-torch --torch-spin --skip-large --skip-variants --skip-cache --skip-quant --skip-packing --batch-demo 16 --batch-large 2 --batch-mixed 4 --large-layers V,T --siglip-layers V,T --large-vocab N --checkpointing]
//
// LoRA training throughput (samples/s) and peak RSS of Lenslab's VLM trainer (training/vlm-trainer.ts, one training
// step = forward + our autodiff backward + clip + AdamW in one ONNX graph on onnxruntime-node), on
//   demo: the demo LLaVA (resources/demo/model: CLIP-style 2x64 tower at 48 px = 9 image tokens, 2x96 LLaMA decoder;
//         else the demo writer's 64 px default), icons, batch 16
//   0.5B: a random LLaVA of about half a billion parameters (CLIP-B/16-like 12x768 tower at 224 px = 196 image tokens,
//         Qwen2-0.5B-like 24x896 decoder with 14/2 heads and a 4864 MLP; demo tokenizer, so a 512-token vocabulary;
//         --large-vocab 151936: Qwen2-0.5B's tied 151,936-row table and head, the rest of the rows unused by the text)
//   smolvlm-256m: a random Idefics3 in SmolVLM-256M's shapes (12x768 SigLIP at 512 px, pixel shuffle x4 = 64 image
//         tokens per frame, 30x576 SmolLM2 decoder, 49,152 vocabulary, untied head), one frame per image, batch 2
//         (--skip-smolvlm, --only-smolvlm); train_torch.py models LLaVA only, so it has no PyTorch row
//   blip2-0.28b: a random BLIP-2 OPT of reduced width (ViT-B/16-like 12x768 vision model at 224 px, the published
//         Q-Former shape with 32 queries, OPT-125m-like 12x768 decoder), batch 2 (--skip-blip2, --only-blip2), against
//         train_blip2_torch.py (frozen vision model + Q-Former under no_grad each step, LoRA on the OPT decoder)
// against the same step in PyTorch (Debian torch 1.13, float32, tests/bench/train_torch.py: same shapes, same
// LoRA targets and rank, same thread count), measured in the same run. Each side runs in its own process, so peak
// RSS is that process's. Also printed: the memory estimate Lenslab shows before a run (training/memory.ts) next to
// the measured peak, where each model's step time goes (trainer.phases(): batch, images, feeds, step.prep/run/post),
// and for the demo two variants (--skip-variants): ORT's spinning threads instead of the trainer's sleeping ones, and
// whole steps through the job driver (progress events journaled as a job process does). With the image-feature cache
// (--skip-cache to leave out): 2 epochs over batch x min(steps, 5) samples, the median step of epoch 1 (features
// computed) vs epoch 2 (read back); the other rows run the whole step, vision tower included, as PyTorch does.
// With an int4 frozen base (--skip-quant to leave out): the same step, its peak RSS and step time against the float32
// base's row (hparams.quantizeBase: MatMulNBits forward, the blocks unpacked for dX; LoRA in float32). With
// --checkpointing, the step with each layer recomputed in the backward (hparams.gradientCheckpointing), float32 and int4.
// Sequence packing (--skip-packing to leave out): a mixed-length copy of the data (every fourth answer about two
// samples longer), the same steps padded vs packed (hparams.packing). --large-layers V,T replaces the 0.5B by its
// shapes with V vision and T decoder layers (bench:profile's slice), for runs that must stay short; --siglip-layers V,T
// adds a LLaVA with a tower in SigLIP-so400m's shapes at 384 px (729 image tokens) and the 0.5B's decoder, V + T
// layers. For a slice the feature cache's epoch 1 / epoch 2 ratio is also scaled to the full layer counts.
// Models and data are generated once into <os tmp>/lenslab-bench-train.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTinyLlava, type TinyLlavaOptions } from '../../src-main/models/demo/tiny-llava';
import { SMOLVLM_256M, writeTinyIdefics3 } from '../../src-main/models/demo/tiny-idefics3';
import { BLIP2_BENCH, writeTinyBlip2 } from '../../src-main/models/demo/tiny-blip2';
import { expectedTensors } from '../../src-main/models/weights/names';
import { parseHfConfig } from '../../src-main/models/config';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { readSnapshot, writeSnapshot } from '../../src-main/training/data';
import { formatBytes } from '../../src-main/training/memory';
import { formatPhases, PhaseTimer, type PhaseTotals } from '../../src-main/util/phase-timer';
import { writeIconSnapshot } from '../helpers/icon-snapshot';
import { torchBlasWarning } from './torch-blas';

const args = process.argv.slice(2);
const arg = (name: string, d: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const has = (name: string) => args.includes(`--${name}`);
const here = fileURLToPath(new URL('.', import.meta.url));

export interface WorkerInput {
  model: string;
  data: string;
  batchSize: number;
  steps: number;
  warmup: number;
  threads: number;
  /** ORT threads spin-wait (LENSLAB_ORT_SPIN=1) instead of the trainer's default (sleep). */
  spin?: boolean;
  /** Time whole steps through the job driver (jobs/driver.ts: progress events journaled as a job does). */
  driver?: boolean;
  /**
   * Image-feature cache: 2 epochs over the first batchSize x steps samples with the cache on (a fresh folder), the
   * step times of each epoch (epoch 1 runs the vision program, epoch 2 reads cached features).
   */
  cacheEpochs?: boolean;
  /** Frozen base held as int8 / int4 blocks (hparams.quantizeBase). */
  quantizeBase?: 'int8' | 'int4';
  /** hparams.gradientCheckpointing: each layer recomputed in the backward. */
  gradientCheckpointing?: boolean;
  /** hparams.packing: a micro-batch's samples packed end to end instead of padded. */
  packing?: boolean;
  /** hparams.maxSeqLen: longer samples are refused (default the trainer's). */
  maxSeqLen?: number;
}
export interface WorkerOutput {
  initMs: number;
  /** peak RSS when init was done (0 through the job driver) */
  initPeakRss: number;
  ms: number[];
  samples: number;
  tokens: number;
  losses: number[];
  peakRss: number;
  estimate: number;
  imageTokens: number;
  params: { total: number; trainable: number };
  /** Summed phase times of the timed steps (trainer.phases()), and their count. */
  phases?: PhaseTotals;
  /** cacheEpochs: each step's epoch (0-based) and the images the vision program computed. */
  epochs?: number[];
  visionImages?: number;
  /** The trainer's log lines (device, init time, the quantized base). */
  logs: string[];
}

// ------------------------------------------------------------------------------------------------ worker (child)

/** This process's peak resident set (VmHWM; getrusage's maxrss would include the parent's image before exec). */
function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

async function worker(input: WorkerInput): Promise<void> {
  process.env.OMP_NUM_THREADS = String(input.threads);
  if (input.spin) process.env.LENSLAB_ORT_SPIN = '1';
  const { vlmTrainerModule } = await import('../../src-main/training/vlm-trainer');
  const config = {
    model: input.model,
    data: { file: input.data },
    hparams: {
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0,
      ...(input.cacheEpochs ? { epochs: 2 } : { maxSteps: input.warmup + input.steps }),
      batchSize: input.batchSize,
      saveEvery: 0,
      evalEvery: 0,
      lr: 1e-4,
      ...(input.quantizeBase ? { quantizeBase: input.quantizeBase } : {}),
      ...(input.gradientCheckpointing ? { gradientCheckpointing: true } : {}),
      ...(input.packing ? { packing: true } : {}),
      ...(input.maxSeqLen ? { maxSeqLen: input.maxSeqLen } : {}),
    },
    eval: { maxItems: 1 },
    // the whole step, vision tower included (as PyTorch's), unless the cache is what is measured
    featureCache: !!input.cacheEpochs,
  };
  const epochs: number[] = [];
  if (input.cacheEpochs) {
    const snap = readSnapshot(input.data);
    snap.items = snap.items.slice(0, input.batchSize * input.steps);
    config.data.file = join(mkdtempSync(join(tmpdir(), 'lenslab-bench-data-')), 'data.json');
    writeSnapshot(config.data.file, snap);
    process.env.LENSLAB_FEATURE_CACHE = mkdtempSync(join(tmpdir(), 'lenslab-bench-features-'));
  }
  const check = vlmTrainerModule.validateConfig(config);
  const out = mkdtempSync(join(tmpdir(), 'lenslab-bench-run-'));
  const logs: string[] = [];
  const ms: number[] = [];
  const losses: number[] = [];
  let samples = 0;
  let tokens = 0;
  let initMs = 0;
  // VmHWM when init is done (graphs built, sessions open): whether a run's peak is the steps' or the loading's
  let initPeak = 0;
  let phases: PhaseTotals | undefined;
  let visionImages: number | undefined;
  if (input.driver) {
    // the job process's loop: progress events journaled to events.jsonl (jobs/entry.ts), the final evaluation and
    // checkpoint after the timed steps; a step is the time between two progress events
    const { runJob } = await import('../../src-main/jobs/driver');
    const { appendJournal } = await import('../../src-main/jobs/journal');
    const t0 = performance.now();
    let last = 0;
    let i = 0;
    await runJob({ trainer: 'vlm', outDir: out, config }, false, { pause: false, cancel: false }, (e) => {
      appendJournal(out, e);
      const now = performance.now();
      if (e.type === 'started') initMs = now - t0;
      if (e.type === 'progress') {
        losses.push(e.loss);
        if (i >= input.warmup) {
          ms.push(now - last);
          samples += input.batchSize;
        }
        i++;
      }
      if (e.type === 'started' || e.type === 'progress') last = performance.now();
    });
  } else {
    const trainer = vlmTrainerModule.createTrainer(config, { outDir: out, log: (l: string) => logs.push(l) });
    const t0 = performance.now();
    await trainer.init(null);
    initMs = performance.now() - t0;
    initPeak = peakRss();
    let base: PhaseTotals | undefined;
    const warm = input.cacheEpochs ? 0 : input.warmup;
    const total = input.cacheEpochs ? trainer.plan.totalSteps : input.warmup + input.steps;
    for (let i = 0; i < total; i++) {
      if (i === warm) base = trainer.phases?.();
      const t = performance.now();
      const r = await trainer.trainStep();
      const dt = performance.now() - t;
      losses.push(r.loss);
      if (i >= warm) {
        ms.push(dt);
        epochs.push(r.epoch ?? 0);
        samples += r.samples;
        tokens += r.tokens;
      }
    }
    visionImages = (trainer as unknown as { visionCalls?: { images: number } }).visionCalls?.images;
    const after = trainer.phases?.();
    if (after && base) {
      const p = new PhaseTimer();
      p.merge(after);
      p.merge({
        ms: Object.fromEntries(Object.entries(base.ms).map(([k, v]) => [k, -v])),
        count: Object.fromEntries(Object.entries(base.count).map(([k, v]) => [k, -v])),
      });
      phases = p.totals();
    }
    await trainer.dispose?.();
  }
  rmSync(out, { recursive: true, force: true });
  const cfg = JSON.parse(readFileSync(join(input.model, 'config.json'), 'utf8'));
  const m = check.memory!;
  const res: WorkerOutput = {
    initMs,
    ms,
    samples,
    tokens,
    losses,
    peakRss: peakRss(),
    initPeakRss: initPeak,
    estimate: m.breakdown.total,
    imageTokens: (cfg.vision_config.image_size / cfg.vision_config.patch_size) ** 2,
    params: { total: m.params.vision + m.params.projector + m.params.decoder, trainable: m.params.trainable },
    phases,
    epochs,
    visionImages,
    logs,
  };
  if (input.cacheEpochs) rmSync(process.env.LENSLAB_FEATURE_CACHE!, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(res)}\n`);
}

// ------------------------------------------------------------------------------------------------ parent

const root = join(tmpdir(), 'lenslab-bench-train');
const threads = arg('threads', cpus().length);
const steps = arg('steps', 5);
const warmup = arg('warmup', 2);

const LARGE: TinyLlavaOptions = {
  imageSize: 224,
  patchSize: 16,
  visionHidden: 768,
  visionLayers: 12,
  visionHeads: 12,
  visionIntermediate: 3072,
  textHidden: 896,
  textLayers: 24,
  textHeads: 14,
  textKvHeads: 2,
  textIntermediate: 4864,
};

/**
 * A tower in SigLIP-so400m's shapes at 384 px (1152 wide, 27 layers, 16 heads, 4304 MLP, 14 px patches: 27 x 27 =
 * 729 image tokens, here from a 378 px input, which the 384 px conv's floor also covers) in the CLIP layout the tiny
 * writer produces (one class token more, dropped by the 'default' feature strategy), in front of the 0.5B's decoder:
 * the FLOPs of a SigLIP-so400m LLaVA, not its exact layers.
 */
const SIGLIP_SO400M_384: TinyLlavaOptions = {
  ...LARGE,
  imageSize: 378,
  patchSize: 14,
  visionHidden: 1152,
  visionLayers: 27,
  visionHeads: 16,
  visionIntermediate: 4304,
  maxPositionEmbeddings: 2048,
};

interface BenchModel {
  name: string;
  dir: string;
  opts: TinyLlavaOptions;
  batch: number;
  family?: 'idefics3' | 'blip2';
  /** A reduced-layer slice of a larger model: its layer counts and the full model's, to scale the cache ratio. */
  slice?: { v: number; t: number; fullV: number; fullT: number };
}

export async function setup(): Promise<{
  data: string;
  models: BenchModel[];
}> {
  mkdirSync(root, { recursive: true });
  const icons = join(root, 'icons');
  if (!existsSync(join(icons, 'vqa.jsonl')))
    await writeDemoDataset(icons, { seed: 3, count: 64, size: 64, families: ['colors'] });
  const data = writeIconSnapshot(icons, join(root, 'data.json'), { name: 'bench icons' });
  // the bundled demo base (resources/demo/model) when present, else the demo writer's default tiny LLaVA
  const bundled = join(here, '..', '..', 'resources', 'demo', 'model');
  const demoDir = existsSync(join(bundled, 'config.json')) ? bundled : join(root, 'demo');
  const models: BenchModel[] = [
    { name: 'demo', dir: demoDir, opts: {} as TinyLlavaOptions, batch: arg('batch-demo', 16) },
  ];
  const slice = args.indexOf('--large-layers');
  if (slice >= 0) {
    // the 0.5B's shapes with fewer layers (bench:profile's slice): each layer's work is the full model's
    const [v, t] = args[slice + 1].split(',').map(Number);
    models.push({
      name: `0.5B slice ${v}+${t} layers`,
      dir: join(root, `llava-slice-v${v}-t${t}`),
      opts: { ...LARGE, visionLayers: v, textLayers: t },
      batch: arg('batch-large', 2),
      slice: { v, t, fullV: LARGE.visionLayers!, fullT: LARGE.textLayers! },
    });
  }
  const sig = args.indexOf('--siglip-layers');
  if (sig >= 0) {
    const [v, t] = args[sig + 1].split(',').map(Number);
    models.push({
      name: `SigLIP-so400m 384 px + 0.5B decoder, slice ${v}+${t} layers`,
      dir: join(root, `llava-siglip384-v${v}-t${t}`),
      opts: { ...SIGLIP_SO400M_384, visionLayers: v, textLayers: t },
      batch: arg('batch-large', 2),
      slice: { v, t, fullV: SIGLIP_SO400M_384.visionLayers!, fullT: LARGE.textLayers! },
    });
  }
  if (slice >= 0 || sig >= 0) {
    /* a slice stands in for the 0.5B */
  } else if (!has('skip-large')) {
    const vocab = arg('large-vocab', 0);
    models.push(
      vocab
        ? {
            name: `0.5B vocab ${vocab}`,
            dir: join(root, `llava-0.5b-vocab${vocab}`),
            opts: { ...LARGE, configVocabSize: vocab, tieWordEmbeddings: true },
            batch: arg('batch-large', 2),
          }
        : { name: '0.5B', dir: join(root, 'llava-0.5b'), opts: LARGE, batch: arg('batch-large', 2) },
    );
  }
  if (has('only-smolvlm') || has('only-blip2')) models.length = 0;
  if (!has('skip-smolvlm') && !has('only-blip2'))
    models.push({
      name: 'smolvlm-256m',
      dir: join(root, 'smolvlm-256m'),
      opts: {},
      batch: arg('batch-smolvlm', 2),
      family: 'idefics3',
    });
  if (!has('skip-blip2') && !has('only-smolvlm'))
    models.push({
      name: 'blip2-0.28b',
      dir: join(root, 'blip2-0.28b'),
      opts: {},
      batch: arg('batch-blip2', 2),
      family: 'blip2',
    });
  for (const m of models)
    if (!existsSync(join(m.dir, 'model.safetensors'))) {
      process.stderr.write(`writing the ${m.name} model to ${m.dir} ...\n`);
      if (m.family === 'idefics3') writeTinyIdefics3(m.dir, 0, SMOLVLM_256M);
      else if (m.family === 'blip2') writeTinyBlip2(m.dir, 0, BLIP2_BENCH);
      else writeTinyLlava(m.dir, 0, m.opts);
    }
  return { data, models };
}

/** The bench data with every fourth answer `phrases` × 47 tokens longer (a mixed-length data set), written once. */
function mixedData(data: string, phrases: number): string {
  const file = join(root, `data-mixed-${phrases}.json`);
  const snap = readSnapshot(data);
  snap.items = snap.items.map((it, i) =>
    i % 4 !== 3
      ? it
      : {
          ...it,
          annotations: it.annotations.map((a) =>
            a.kind === 'qa'
              ? {
                  ...a,
                  data: {
                    ...a.data,
                    answer: `${(a.data as { answer: string }).answer}, ${'the background is plain white and the shape sits in the middle of it; '.repeat(phrases)}`,
                  },
                }
              : a,
          ),
        },
  );
  writeSnapshot(file, snap);
  return file;
}

export function runWorker(input: WorkerInput): WorkerOutput {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--worker', JSON.stringify(input)],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
      // the CPU step, as PyTorch's: the trainer's device probe ('auto') would time each new model and batch shape on
      // every other provider first, on a software WebGPU device here for many minutes (LENSLAB_PROVIDER=auto: probe)
      env: {
        ...process.env,
        LENSLAB_GRAPH_CACHE: process.env.LENSLAB_GRAPH_CACHE ?? join(root, 'graph-cache'),
        LENSLAB_PROVIDER: process.env.LENSLAB_PROVIDER ?? 'cpu',
      },
    },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{'))
    throw new Error(`lenslab worker failed (${r.status}): ${r.stderr.slice(-3000)}`);
  return JSON.parse(line) as WorkerOutput;
}

function runTorch(
  cfg: Record<string, unknown>,
  script = 'train_torch.py',
): { ms: number[]; peak_rss: number; torch: string; threads: number } | { error: string } {
  // Debian's OpenBLAS picks a slow kernel on AVX-512 machines unless told the core type (as bench:engine does)
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
  if (/\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))) env.OPENBLAS_CORETYPE ??= 'SkylakeX';
  // idle OpenMP threads sleep, as Lenslab's training sessions' do (session.ts spin), unless told otherwise: spinning
  // GOMP threads on cores other processes share made PyTorch's demo step 100x slower, which says nothing about it
  if (!has('torch-spin')) env.OMP_WAIT_POLICY ??= 'PASSIVE';
  const r = spawnSync('/usr/bin/python3', [join(here, script), JSON.stringify(cfg)], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    env,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{'))
    return { error: (r.stderr || r.error?.message || `exit ${r.status}`).slice(-500) };
  return JSON.parse(line);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const { data, models } = await setup();
  console.log(
    `bench:train — LoRA (rank 16, q/k/v/o) training steps, ${threads} threads, ${steps} timed steps after ${warmup} warm-up; median step time`,
  );
  const blasWarning = has('skip-torch') ? null : torchBlasWarning();
  if (blasWarning) console.log(blasWarning);
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const m of models) {
    process.stderr.write(`[${m.name}] lenslab ...\n`);
    const ours = runWorker({ model: m.dir, data, batchSize: m.batch, steps, warmup, threads });
    const cfg = JSON.parse(readFileSync(join(m.dir, 'config.json'), 'utf8'));
    const seq = Math.round(ours.tokens / ours.samples);
    const oursStep = median(ours.ms);
    const oursSps = (m.batch / oursStep) * 1000;
    rows.push([
      m.name,
      'lenslab (onnxruntime)',
      `${(ours.params.total / 1e6).toFixed(1)}M / ${(ours.params.trainable / 1e6).toFixed(2)}M`,
      `B${m.batch} T${seq}`,
      `${oursStep.toFixed(0)} ms`,
      oursSps.toFixed(2),
      formatBytes(ours.peakRss),
      `${formatBytes(ours.estimate)} est.; init ${(ours.initMs / 1000).toFixed(1)} s, peak after it ${formatBytes(ours.initPeakRss)}; loss ${ours.losses[0].toFixed(3)} -> ${ours.losses.at(-1)!.toFixed(3)}`,
    ]);
    if (ours.phases) notes.push(`${m.name} step phases (lenslab): ${formatPhases(ours.phases, ours.ms.length)}`);
    // each row as soon as it is measured (a long PyTorch run cut short still leaves ours)
    process.stderr.write(`[${m.name}] ${rows.at(-1)!.join(' | ')}\n`);
    // the same step on an int4 frozen base (QLoRA-style: MatMulNBits forward, blocks unpacked for dX), and with
    // --checkpointing each layer recomputed in the backward, on the float32 and the int4 base
    const variants: [string, Partial<WorkerInput>][] = [];
    if (!has('skip-quant')) variants.push(['lenslab, int4 base', { quantizeBase: 'int4' }]);
    if (has('checkpointing')) {
      variants.push(['lenslab, recompute', { gradientCheckpointing: true }]);
      if (!has('skip-quant'))
        variants.push(['lenslab, int4 + recompute', { quantizeBase: 'int4', gradientCheckpointing: true }]);
    }
    for (const [label, extra] of variants) {
      process.stderr.write(`[${m.name}] ${label} ...\n`);
      const q = runWorker({ model: m.dir, data, batchSize: m.batch, steps, warmup, threads, ...extra });
      const st = median(q.ms);
      rows.push([
        m.name,
        label,
        '',
        `B${m.batch} T${seq}`,
        `${st.toFixed(0)} ms`,
        ((m.batch / st) * 1000).toFixed(2),
        formatBytes(q.peakRss),
        `${formatBytes(q.estimate)} est.; vs float32 base: peak RSS ${(q.peakRss / ours.peakRss).toFixed(2)}x, step time ${(st / oursStep).toFixed(2)}x; peak after init ${formatBytes(q.initPeakRss)}; loss ${q.losses[0].toFixed(3)} -> ${q.losses.at(-1)!.toFixed(3)}`,
      ]);
      process.stderr.write(`[${m.name}] ${rows.at(-1)!.join(' | ')}\n`);
    }
    if (m.name === 'demo' && !has('skip-variants')) {
      // the same step with ORT's spinning threads (its default), and whole steps through the job driver
      for (const [label, extra] of [
        ['lenslab, spinning threads', { spin: true }],
        ['lenslab via job driver', { driver: true }],
      ] as const) {
        process.stderr.write(`[${m.name}] ${label} ...\n`);
        const v = runWorker({ model: m.dir, data, batchSize: m.batch, steps, warmup, threads, ...extra });
        const st = median(v.ms);
        rows.push([
          m.name,
          label,
          '',
          `B${m.batch} T${seq}`,
          `${st.toFixed(0)} ms`,
          ((m.batch / st) * 1000).toFixed(2),
          formatBytes(v.peakRss),
          `${(st / oursStep).toFixed(2)}x the default step`,
        ]);
      }
    }
    if (!has('skip-packing') && !m.family) {
      // a mixed-length batch: every fourth answer carries a long tail (about the length of two other samples), the
      // same samples padded to the longest vs packed end to end (hparams.packing), in the same run
      const long = m.name === 'demo' ? 1 : 5;
      const mixed = mixedData(data, long);
      const mb = m.name === 'demo' ? m.batch : arg('batch-mixed', 4);
      const pr: Record<string, WorkerOutput> = {};
      for (const packing of [false, true]) {
        process.stderr.write(`[${m.name}] lenslab, mixed lengths, ${packing ? 'packed' : 'padded'} ...\n`);
        pr[String(packing)] = runWorker({ model: m.dir, data: mixed, batchSize: mb, steps, warmup, threads, packing });
      }
      const [pad, pk] = [pr.false, pr.true];
      const sp = median(pad.ms);
      const sk = median(pk.ms);
      const seqMixed = Math.round(pad.tokens / pad.samples);
      rows.push([
        m.name,
        'lenslab, mixed lengths, padded',
        '',
        `B${mb} ~T${seqMixed}`,
        `${sp.toFixed(0)} ms`,
        ((mb / sp) * 1000).toFixed(2),
        formatBytes(pad.peakRss),
        `every 4th answer ${long * 47} tokens longer; loss ${pad.losses[0].toFixed(3)} -> ${pad.losses.at(-1)!.toFixed(3)}`,
      ]);
      rows.push([
        m.name,
        'lenslab, mixed lengths, packed',
        '',
        `B${mb} ~T${seqMixed}`,
        `${sk.toFixed(0)} ms`,
        ((mb / sk) * 1000).toFixed(2),
        formatBytes(pk.peakRss),
        `padded / packed step time ${(sp / sk).toFixed(2)}x; loss ${pk.losses[0].toFixed(3)} -> ${pk.losses.at(-1)!.toFixed(3)}`,
      ]);
      for (const [label, r] of [
        ['padded', pad],
        ['packed', pk],
      ] as const)
        if (r.phases)
          notes.push(`${m.name} step phases, mixed lengths ${label}: ${formatPhases(r.phases, r.ms.length)}`);
    }
    if (!has('skip-cache') && m.family !== 'idefics3') {
      // epoch 1 computes each image's features once (vision program + step without the tower); epoch 2 reads them
      process.stderr.write(`[${m.name}] lenslab, feature cache over 2 epochs ...\n`);
      const k = Math.max(3, Math.min(steps, 5));
      const c = runWorker({ model: m.dir, data, batchSize: m.batch, steps: k, warmup: 0, threads, cacheEpochs: true });
      const e1 = median(c.ms.filter((_, i) => c.epochs![i] === 0));
      const e2 = median(c.ms.filter((_, i) => c.epochs![i] === 1));
      rows.push([
        m.name,
        'lenslab, feature cache: epoch 1',
        '',
        `B${m.batch} T${seq}`,
        `${e1.toFixed(0)} ms`,
        ((m.batch / e1) * 1000).toFixed(2),
        formatBytes(c.peakRss),
        `${k} steps an epoch; vision program computed ${c.visionImages} images, all in epoch 1`,
      ]);
      rows.push([
        m.name,
        'lenslab, feature cache: epoch 2',
        '',
        `B${m.batch} T${seq}`,
        `${e2.toFixed(0)} ms`,
        ((m.batch / e2) * 1000).toFixed(2),
        '',
        `epoch 1 / epoch 2 step time ${(e1 / e2).toFixed(2)}x; whole step without the cache ${(oursStep / e2).toFixed(2)}x epoch 2's`,
      ]);
      if (m.slice && c.phases) {
        // at full depth: epoch 2 is the decoder's layers (this slice's epoch 2 scaled to the full count; embedding,
        // head and AdamW scale with it, so this leans high), and the tower costs its vision program's time in epoch 1
        // scaled likewise; what the cache saves a step is that tower time (image decoding, a fixed cost, left out)
        const { v, t, fullV, fullT } = m.slice;
        const tower = (c.phases.ms.vision ?? 0) / c.ms.filter((_, i) => c.epochs![i] === 0).length;
        const e2Full = (e2 * fullT) / t;
        const towerFull = (tower * fullV) / v;
        notes.push(
          `${m.name}: the tower ${tower.toFixed(0)} ms a step in epoch 1, the step without it (epoch 2) ${e2.toFixed(0)} ms; scaled to ${fullV}+${fullT} layers: tower ~${(towerFull / 1000).toFixed(1)} s, step without it ~${(e2Full / 1000).toFixed(1)} s, so epoch 2 ~${((e2Full + towerFull) / e2Full).toFixed(2)}x faster than a step with the tower`,
        );
      }
      if (c.phases)
        notes.push(`${m.name} step phases with the feature cache, both epochs: ${formatPhases(c.phases, c.ms.length)}`);
    }
    if (has('skip-torch') || m.family === 'idefics3') continue;
    process.stderr.write(`[${m.name}] pytorch ...\n`);
    const v = cfg.vision_config;
    const t = cfg.text_config;
    let torchCfg: Record<string, unknown>;
    let script = 'train_torch.py';
    if (m.family === 'blip2') {
      // the same tensors (names and shapes) with random values, as the PyTorch side builds them
      const specs = join(root, 'blip2-specs.json');
      writeFileSync(specs, JSON.stringify(expectedTensors(parseHfConfig(cfg)).map((s) => [s.name, s.shape])));
      script = 'train_blip2_torch.py';
      torchCfg = {
        specs,
        config: join(m.dir, 'config.json'),
        B: m.batch,
        T: seq,
        answer_tokens: 3,
        rank: 16,
        alpha: 32,
        targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
        steps,
        warmup,
        threads,
      };
    } else
      torchCfg = {
        vision: {
          hidden: v.hidden_size,
          layers: v.num_hidden_layers,
          heads: v.num_attention_heads,
          inter: v.intermediate_size,
          image: v.image_size,
          patch: v.patch_size,
        },
        text: {
          hidden: t.hidden_size,
          layers: t.num_hidden_layers,
          heads: t.num_attention_heads,
          kv: t.num_key_value_heads,
          inter: t.intermediate_size,
          vocab: t.vocab_size,
        },
        B: m.batch,
        T: seq,
        image_tokens: ours.imageTokens,
        answer_tokens: 3,
        rank: 16,
        alpha: 32,
        targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
        steps,
        warmup,
        threads,
      };
    const torch = runTorch(torchCfg, script);
    if ('error' in torch) {
      rows.push([m.name, 'pytorch 1.13', '', '', 'failed', '', '', torch.error.split('\n').pop() ?? '']);
      continue;
    }
    const tStep = median(torch.ms);
    process.stderr.write(
      `[${m.name}] pytorch: ${tStep.toFixed(0)} ms a step, peak RSS ${formatBytes(torch.peak_rss)}\n`,
    );
    rows.push([
      m.name,
      `pytorch ${torch.torch}`,
      '',
      `B${m.batch} T${seq}`,
      `${tStep.toFixed(0)} ms`,
      ((m.batch / tStep) * 1000).toFixed(2),
      formatBytes(torch.peak_rss),
      `lenslab/pytorch step time ${(oursStep / tStep).toFixed(2)}x, peak RSS ${(ours.peakRss / torch.peak_rss).toFixed(2)}x`,
    ]);
  }
  const head = ['model', 'runtime', 'params / LoRA', 'batch', 'step', 'samples/s', 'peak RSS', 'notes'];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  for (const r of all) console.log(r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(w[i]))).join('  '));
  for (const n of notes) console.log(n);
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} (1/5/15 min) on ${cpus().length} cores`,
  );
}

// run only as the entry script (bench:compile imports setup from here)
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const wi = args.indexOf('--worker');
  if (wi >= 0) await worker(JSON.parse(args[wi + 1]) as WorkerInput);
  else await main();
}
