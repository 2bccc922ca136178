// Memory needed by a training run, estimated before it starts, compared with what the machine has.
//
// Input is a small shape description (`ModelShape`), independent of the models' config types;
// `shapeFromLlavaConfig` fills it from a parsed LLaVA config. All sizes are bytes.
//
// The estimate (documented so the UI can show it term by term):
//   weights      = (vision + projector + decoder params) × weightBytes × weightCopies; with a quantized base
//                  (quantizeBase int8 / int4) each frozen matrix whose input size divides by 32 takes
//                  1 + 4/32 (int8) or 0.5 + 4/32 (int4) bytes per parameter (blocks of 32 with a float32 scale), the
//                  token table int8 rows (1 byte + a scale per row), a tied table a second copy as the head's blocks;
//                  norms, biases, patch and position embeddings, a trained projector and odd-sized matrices stay
//                  weightBytes (the decoder's own matrices when the shape lists them, e.g. OPT's two MLP matrices,
//                  else a LLaMA layer's seven; a connector given by its parameter count, BLIP-2's Q-Former, as blocks)
//   adapter      = LoRA params × 4                     (fp32; the projector's own weights are already in `weights`)
//   gradients    = trainable × 4
//   optimizer    = trainable × 2 × 4                   (AdamW first and second moments, fp32)
//   activations  = B · T · L · a · 4, the decoder tensors kept for the backward pass, with per token and layer
//                  a = 6h + 3·q + 3·kv + m·I + 2·H·T + Σ_targets (r + dropout·in)
//                  (h hidden, q = H·d query width, kv = H_kv·d, I MLP width, H heads, T sequence length incl. image
//                  tokens; the 2·H·T term is the attention scores and probabilities; m = 4 for a gated MLP, LLaMA's
//                  gate, up, activation and product, m = 2 for a two-matrix one, OPT's fc1 output and activation, told
//                  apart by the decoder's listed matrices a layer). Backward always runs through
//                  the whole decoder: LoRA sits in every layer, and projector gradients flow back through all of it.
//   logits       = B · T · V · 4 × 3                   (logits, log-softmax, their gradient)
//   vision       = images · (P·(6h_v + 2·I_v) + 2·H_v·P²) · 4   (frozen tower: forward only, one layer live at a time)
//                  + images · P · h_v · 4 when the projector trains (its input is kept)
//   workspace    = 2 × one decoder layer's activations (gradients in flight during backward); with a quantized
//                  base + 2 × (4 + 2) bytes × min(largest frozen matrix, 4M) elements: the backward unpacks each
//                  matrix (or 4M-element row chunk of it) into uint8 values and one float32 copy right before its dX
//                  matmul, and about two such buffers are live in ORT's arena
//   runtime      = 256 MiB + 10 % of everything above (onnxruntime arenas, Node heap, fragmentation)
// No term for compiling the graphs on a run's first start (graph-cache miss): the frozen weights are read, converted
// and transposed one tensor at a time while the graph is written (engine LazyRef, models/layers.ts), so the compile
// peaks at the graph plus about one weight tensor and leaves nothing resident, before any of the terms above is
// allocated (npm run bench:compile: 0.45B LLaVA, compile peak 0.17 × its weights; first run 0.95 × this estimate,
// same as a run that finds its graphs cached).
// These are approximations for planning; measured peak RSS (npm run bench:train) is the ground truth.
import { freemem, totalmem } from 'node:os';
import type { VlmModelConfig } from '../models/config';
import type { FamilyImageProcessor } from '../models/families/types';
import { vlmFamilyOf } from '../models/registry';
import { decoderTensors, weightLayout } from '../models/weights/names';
import type { LoraTarget, Method } from './hparams';

/** The shape numbers the estimate needs. `params` fields override the computed parameter counts. */
export interface ModelShape {
  vision?: {
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    /** Tokens per image inside the tower (patches + class token). */
    tokensPerImage: number;
    patchSize: number;
    numChannels: number;
    params?: number;
  };
  projector: { inFeatures: number; outFeatures: number; type: 'mlp' | 'linear'; params?: number };
  decoder: {
    vocabSize: number;
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    tieEmbeddings: boolean;
    /** q/k/v projections carry biases (Qwen2). */
    qkvBias?: boolean;
    params?: number;
    /**
     * [out, in] of every linear weight of the decoder layers (not the token table or LM head), when known: a
     * quantized base prices exactly these as blocks (else a LLaMA layer is assumed: q, k, v, o, gate, up, down).
     */
    linears?: Array<[number, number]>;
  };
  /** Image tokens each image adds to the decoder sequence. */
  imageTokens: number;
  /** Bytes per stored weight as held in memory (4 = float32, 2 = float16/bfloat16). */
  weightBytes: number;
}

export interface TrainSetup {
  method: Method;
  rank: number;
  targetModules: readonly LoraTarget[];
  dropout?: number;
  batchSize: number;
  /** Longest sequence in tokens, image tokens included. */
  maxSeqLen: number;
  /**
   * Most tokens one sample learns (its loss mask's ones): the training graph computes logits for those positions
   * only (models/program.ts labelPositions). Default maxSeqLen.
   */
  labelTokens?: number;
  imagesPerSample?: number;
  /** How many copies of the base weights the runtime holds (e.g. 2 if train and eval sessions do not share them). */
  weightCopies?: number;
  /** Frozen base held as int8 / int4 blocks (training/hparams quantizeBase); default none. */
  quantizeBase?: 'none' | 'int8' | 'int4';
  /** Each decoder layer recomputed in the backward (hparams gradientCheckpointing): layer inputs are kept. */
  gradientCheckpointing?: boolean;
}

export interface MemoryBreakdown {
  weights: number;
  adapter: number;
  gradients: number;
  optimizer: number;
  activations: number;
  logits: number;
  vision: number;
  workspace: number;
  runtime: number;
  total: number;
}

export interface MemoryEstimate {
  fits: boolean;
  breakdown: MemoryBreakdown;
  params: { vision: number; projector: number; decoder: number; lora: number; trainable: number };
  /** Bytes the run may use: the available memory passed in or measured now. */
  availableBytes: number;
  totalBytes: number;
  /** Human-readable changes that would make it fit (empty when it fits). */
  suggestions: string[];
  /** One line: "needs 3.1 GiB of 7.8 GiB available". */
  summary: string;
}

const MIB = 1024 * 1024;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function visionParams(v: NonNullable<ModelShape['vision']>): number {
  if (v.params !== undefined) return v.params;
  const h = v.hiddenSize;
  const embed = v.numChannels * v.patchSize * v.patchSize * h + v.tokensPerImage * h + h; // patch conv, positions, class/bias
  const layer = 4 * (h * h + h) + (h * v.intermediateSize + v.intermediateSize) + (v.intermediateSize * h + h) + 4 * h;
  return embed + v.numLayers * layer + 4 * h; // pre/post layer norms
}

export function projectorParams(p: ModelShape['projector']): number {
  if (p.params !== undefined) return p.params;
  const first = p.inFeatures * p.outFeatures + p.outFeatures;
  return p.type === 'mlp' ? first + p.outFeatures * p.outFeatures + p.outFeatures : first;
}

function linearDims(d: ModelShape['decoder'], target: LoraTarget): [number, number] {
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  switch (target) {
    case 'q_proj':
      return [d.hiddenSize, q];
    case 'k_proj':
    case 'v_proj':
      return [d.hiddenSize, kv];
    case 'o_proj':
      return [q, d.hiddenSize];
    case 'gate_proj':
    case 'up_proj':
      return [d.hiddenSize, d.intermediateSize];
    case 'down_proj':
      return [d.intermediateSize, d.hiddenSize];
  }
}

export function decoderParams(d: ModelShape['decoder']): number {
  if (d.params !== undefined) return d.params;
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  const h = d.hiddenSize;
  const layer = h * q + 2 * h * kv + q * h + 3 * h * d.intermediateSize + 2 * h + (d.qkvBias ? q + 2 * kv : 0);
  return d.vocabSize * h * (d.tieEmbeddings ? 1 : 2) + d.numLayers * layer + h;
}

/** LoRA parameters: rank × (in + out) per targeted linear per layer. */
export function loraParams(d: ModelShape['decoder'], rank: number, targets: readonly LoraTarget[]): number {
  let perLayer = 0;
  for (const t of targets) {
    const [i, o] = linearDims(d, t);
    perLayer += rank * (i + o);
  }
  return perLayer * d.numLayers;
}

/** Available memory now: process.availableMemory() where Node has it (cgroup-aware), else os.freemem(). */
export function availableMemory(): number {
  const pa = (process as unknown as { availableMemory?: () => number }).availableMemory;
  const v = typeof pa === 'function' ? pa.call(process) : 0;
  return v > 0 ? v : freemem();
}

/** Bytes per parameter of a quantized frozen matrix (blocks of 32 values with one float32 scale). */
export function quantizedBytesPerParam(scheme: 'int8' | 'int4'): number {
  return (scheme === 'int4' ? 0.5 : 1) + 4 / 32;
}

/**
 * Bytes of the base's weights with frozen matrices held as `scheme` blocks (see the header): the same layers as
 * visionParams / projectorParams / decoderParams, each matrix priced by whether its input size divides by 32.
 */
export function quantizedWeightBytes(shape: ModelShape, scheme: 'int8' | 'int4', projectorTrains: boolean): number {
  const fb = shape.weightBytes;
  const qb = quantizedBytesPerParam(scheme);
  const mat = (inn: number, out: number) => inn * out * (inn % 32 === 0 ? qb : fb);
  let bytes = 0;
  const v = shape.vision;
  if (v) {
    const h = v.hiddenSize;
    const I = v.intermediateSize;
    const embed = v.numChannels * v.patchSize * v.patchSize * h + v.tokensPerImage * h + h;
    const layer = 4 * mat(h, h) + mat(h, I) + mat(I, h) + (4 * h + I + h + 4 * h) * fb;
    bytes += embed * fb + v.numLayers * layer + 4 * h * fb;
  }
  const p = shape.projector;
  if (projectorTrains) bytes += projectorParams(p) * fb;
  // a connector known by its parameter count (BLIP-2's Q-Former): nearly all of it is matrices of 768-wide inputs
  else if (p.params !== undefined) bytes += p.params * qb;
  else
    bytes +=
      mat(p.inFeatures, p.outFeatures) +
      (p.type === 'mlp' ? mat(p.outFeatures, p.outFeatures) + p.outFeatures * fb : 0) +
      p.outFeatures * fb;
  const d = shape.decoder;
  const h = d.hiddenSize;
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  const I = d.intermediateSize;
  const table = d.vocabSize * (h + 4); // int8 rows + a float32 scale per row
  bytes += table + mat(h, d.vocabSize);
  if (d.linears && d.params !== undefined) {
    // the listed matrices as blocks; everything else but the table and head (norms, biases, positions) as floats
    const inLinears = d.linears.reduce((n, [o, i]) => n + o * i, 0);
    bytes +=
      d.linears.reduce((n, [o, i]) => n + mat(i, o), 0) +
      (d.params - inLinears - d.vocabSize * h * (d.tieEmbeddings ? 1 : 2)) * fb;
    return bytes;
  }
  const layer =
    mat(h, q) +
    2 * mat(h, kv) +
    mat(q, h) +
    2 * mat(h, I) +
    mat(I, h) +
    2 * h * fb +
    (d.qkvBias ? (q + 2 * kv) * fb : 0);
  bytes += d.numLayers * layer + h * fb;
  return bytes;
}

/** Elements of the largest frozen matrix of the vision tower, projector and decoder (the LM head included). */
function largestFrozenMatrix(shape: ModelShape): number {
  const d = shape.decoder;
  const q = d.numHeads * d.headDim;
  let m = Math.max(
    d.hiddenSize * q,
    d.hiddenSize * d.intermediateSize,
    d.hiddenSize * d.vocabSize,
    shape.projector.inFeatures * shape.projector.outFeatures,
  );
  if (shape.vision) m = Math.max(m, shape.vision.hiddenSize * shape.vision.intermediateSize);
  return m;
}

/**
 * Intermediate-width tensors a decoder layer's MLP keeps per token: 2 when the layers list two matrices besides
 * q, k, v and o (OPT's fc1 and fc2: fc1's output and its activation), else 4 (a gated MLP: gate, up, activation,
 * product). bench:blip2-large measured OPT-2.7B's layers at half the gated price or less.
 */
function mlpActivations(d: ModelShape['decoder']): number {
  if (!d.linears || d.numLayers === 0) return 4;
  return d.linears.length / d.numLayers - 4 === 2 ? 2 : 4;
}

/**
 * How many copies of the frozen base a training process holds (TrainSetup.weightCopies): 2 for a float32 base (the
 * session's initializers, and a second copy while the graph is built and loaded: bench:train's 0.45B peaks at 3.3 GiB
 * after init for 1.7 GiB of weights), and for int8, whose blocks were not measured at a size where they show. An int4
 * base's graph is compiled one tensor at a time, and a process that loaded its training session held 1.36x its blocks
 * (bench:blip2-large, BLIP-2 OPT-2.7B shapes: 3.2 GiB resident for 2.35 GiB of blocks, 1.9 GiB of it anonymous, the
 * rest pages of the memory-mapped data file), so 1.4 copies are priced.
 */
export function baseWeightCopies(quantizeBase: 'none' | 'int8' | 'int4'): number {
  return quantizeBase === 'int4' ? 1.4 : 2;
}

/** What a training process holds besides the priced parts (see breakdownFor). */
const RUNTIME_BASE = 192 * MIB;

/** Share of the activations' memory a checkpointed run was measured to keep (see breakdownFor). */
const CHECKPOINT_KEPT = 0.3;

function breakdownFor(shape: ModelShape, s: TrainSetup) {
  const d = shape.decoder;
  const pv = shape.vision ? visionParams(shape.vision) : 0;
  const pp = projectorParams(shape.projector);
  const pd = decoderParams(d);
  const usesLora = s.method !== 'projector';
  const usesProj = s.method !== 'lora';
  const qz = s.quantizeBase ?? 'none';
  const pl = usesLora ? loraParams(d, s.rank, s.targetModules) : 0;
  const trainable = pl + (usesProj ? pp : 0);
  const B = s.batchSize;
  const T = s.maxSeqLen;
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  let loraExtra = 0;
  if (usesLora) for (const t of s.targetModules) loraExtra += s.rank + ((s.dropout ?? 0) > 0 ? linearDims(d, t)[0] : 0);
  const perTokenLayer =
    6 * d.hiddenSize + 3 * q + 3 * kv + mlpActivations(d) * d.intermediateSize + 2 * d.numHeads * T + loraExtra;
  const layerAct = B * T * perTokenLayer * 4;
  const images = B * (s.imagesPerSample ?? 1);
  let vision = 0;
  if (shape.vision) {
    const v = shape.vision;
    const P = v.tokensPerImage;
    vision = images * (P * (6 * v.hiddenSize + 2 * v.intermediateSize) + 2 * v.numHeads * P * P) * 4;
    if (usesProj) vision += images * P * v.hiddenSize * 4;
  }
  const parts = {
    weights:
      (qz === 'none' ? (pv + pp + pd) * shape.weightBytes : quantizedWeightBytes(shape, qz, usesProj)) *
      (s.weightCopies ?? 1),
    adapter: pl * 4,
    gradients: trainable * 4,
    optimizer: trainable * 2 * 4,
    // checkpointed: each layer's input is kept and one layer's activations exist at a time (in the workspace); the
    // peaks measured with bench:train --checkpointing (0.45B and 0.58B LLaVAs, float32 and int4 bases, while training
    // sessions still used ORT's memory pattern) kept about a quarter of the activations' memory, so that share is
    // priced (CHECKPOINT_KEPT) where it is more; without the pattern it reads high (int4 0.45B: 1.4 vs 1.3 GiB)
    activations: s.gradientCheckpointing
      ? Math.max(B * T * d.hiddenSize * 4, CHECKPOINT_KEPT * layerAct) * d.numLayers
      : layerAct * d.numLayers,
    logits: (B * Math.min(T, s.labelTokens ?? T) + 1) * d.vocabSize * 4 * 3,
    vision,
    workspace:
      (s.gradientCheckpointing ? 3 : 2) * layerAct +
      (qz === 'none' ? 0 : 2 * 6 * Math.min(largestFrozenMatrix(shape), 1 << 22)),
  };
  const sub = Object.values(parts).reduce((a, b) => a + b, 0);
  // Node, ORT and the trainer's own buffers: 192 MiB measured with training sessions that plan no memory pattern (was
  // 256 MiB while ORT's pattern reserved a second planned copy of the step's buffers)
  const runtime = RUNTIME_BASE + 0.1 * sub;
  const breakdown: MemoryBreakdown = { ...parts, runtime, total: sub + runtime };
  return { breakdown, params: { vision: pv, projector: pp, decoder: pd, lora: pl, trainable } };
}

/**
 * Estimate the memory of training with `setup` and compare it with `availableBytes` (default: available now).
 * When it does not fit, suggestions name concrete smaller settings that would, computed with the same formula.
 */
export function estimateTrainingMemory(
  shape: ModelShape,
  setup: TrainSetup,
  opts: { availableBytes?: number; totalBytes?: number } = {},
): MemoryEstimate {
  const availableBytes = opts.availableBytes ?? availableMemory();
  const totalBytes = opts.totalBytes ?? totalmem();
  const { breakdown, params } = breakdownFor(shape, setup);
  const fits = breakdown.total <= availableBytes;
  const suggestions: string[] = [];
  if (!fits) {
    const fitsWith = (patch: Partial<TrainSetup>) =>
      breakdownFor(shape, { ...setup, ...patch }).breakdown.total <= availableBytes;
    // smaller micro-batch, same effective batch through gradient accumulation
    for (let b = setup.batchSize >> 1; b >= 1; b >>= 1) {
      if (fitsWith({ batchSize: b })) {
        const accum = Math.ceil(setup.batchSize / b);
        suggestions.push(
          `use batch size ${b} with gradient accumulation ×${accum} (keeps the effective batch of ${setup.batchSize})`,
        );
        break;
      }
    }
    // shorter sequences (keep room for the image tokens)
    const minLen = Math.max(16, shape.imageTokens * (setup.imagesPerSample ?? 1) + 16);
    for (let t = setup.maxSeqLen >> 1; t >= minLen; t >>= 1) {
      if (fitsWith({ maxSeqLen: t })) {
        suggestions.push(`limit sequences to ${t} tokens (max_seq_len; image tokens count)`);
        break;
      }
    }
    if (
      setup.batchSize > 1 &&
      !suggestions.length &&
      fitsWith({ batchSize: 1, maxSeqLen: Math.max(minLen, setup.maxSeqLen >> 1) })
    )
      suggestions.push(`use batch size 1 and sequences of at most ${Math.max(minLen, setup.maxSeqLen >> 1)} tokens`);
    if (shape.imageTokens > 64)
      suggestions.push(
        `use fewer image tokens per image (now ${shape.imageTokens}; a lower image resolution or a model with fewer patches)`,
      );
    if (setup.method !== 'projector' && setup.targetModules.length > 2 && !fitsWith({}))
      suggestions.push('target fewer modules with LoRA (e.g. only q_proj and v_proj) or use a lower rank');
    if ((setup.quantizeBase ?? 'none') !== 'int4' && fitsWith({ quantizeBase: 'int4' }))
      suggestions.push(
        'hold the frozen base as int4 (quantizeBase int4, --quantize-base int4; the adapter stays float32)',
      );
    if (breakdown.weights + RUNTIME_BASE > availableBytes)
      suggestions.push(`the model's weights alone take ${formatBytes(breakdown.weights)}: choose a smaller model`);
    if (breakdown.total <= 0.9 * totalBytes)
      suggestions.push(`close other applications: the machine has ${formatBytes(totalBytes)} in all`);
  }
  const summary = `needs about ${formatBytes(breakdown.total)} of ${formatBytes(availableBytes)} available`;
  return { fits, breakdown, params, availableBytes, totalBytes, suggestions, summary };
}

/** A refusal message (with the suggestions) when the estimate does not fit, else null. */
export function memoryRefusal(e: MemoryEstimate): string | null {
  if (e.fits) return null;
  const parts = Object.entries(e.breakdown)
    .filter(([k, v]) => k !== 'total' && v > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([k, v]) => `${k} ${formatBytes(v)}`);
  return `not enough memory: training ${e.summary} (largest: ${parts.join(', ')}).${e.suggestions.length ? ` Try: ${e.suggestions.join('; ')}.` : ''}`;
}

function decoderTensorParams(c: VlmModelConfig): number {
  const lay = weightLayout(c);
  return decoderTensors(c.text, lay.decoder!, lay.lmHead!).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

/** [out, in] of the decoder layers' linear weights (2-D tensors other than the token table, positions and LM head). */
function decoderLinears(c: VlmModelConfig): Array<[number, number]> {
  const lay = weightLayout(c);
  return decoderTensors(c.text, lay.decoder!, lay.lmHead!)
    .filter((s) => s.shape.length === 2 && s.name !== lay.lmHead && !/embed_(tokens|positions)\.weight$/.test(s.name))
    .map((s) => [s.shape[0], s.shape[1]]);
}

/**
 * The shape numbers of a vision-language config, as its family (models/families) describes them; `imageTokens` is
 * per frame and `framesPerImage` the frames of the largest image (pass it as TrainSetup.imagesPerSample).
 * `weightBytes` defaults to 4 (weights held as float32).
 */
export function shapeOfVlm(
  c: VlmModelConfig,
  weightBytes = 4,
  images?: FamilyImageProcessor | null,
): ModelShape & { framesPerImage: number } {
  const s = vlmFamilyOf(c).shape(c, images);
  return {
    vision: { ...s.vision },
    projector: { ...s.connector },
    decoder: {
      vocabSize: c.text.vocabSize,
      hiddenSize: c.text.hiddenSize,
      intermediateSize: c.text.intermediateSize,
      numLayers: c.text.numHiddenLayers,
      numHeads: c.text.numAttentionHeads,
      numKvHeads: c.text.numKeyValueHeads,
      headDim: c.text.headDim,
      tieEmbeddings: c.text.tieWordEmbeddings,
      qkvBias: c.text.qkvBias,
      // counted from the decoder's tensor list: exact for every decoder (OPT: two MLP matrices, biases, positions)
      params: decoderTensorParams(c),
      linears: decoderLinears(c),
    },
    imageTokens: s.tokensPerFrame,
    framesPerImage: s.maxFramesPerImage,
    weightBytes,
  };
}
