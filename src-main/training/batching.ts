// From rendered samples to padded training batches, and the order they are visited in.
//
// A rendered sample is one dataset item after the chat template (src-main/datasets/render.ts): token ids with every
// `<image>` already expanded to the model's image tokens, and a loss mask that is 1 only on assistant tokens.
// Batches follow the Hugging Face causal-LM convention: `labels` are NOT shifted (label[t] = ids[t] where the mask is
// 1, else IGNORE_INDEX); the loss compares logits[t] with labels[t + 1].
//
// Iteration: one optimizer step = `gradAccum` micro-batches of `batchSize` samples. Each epoch visits the samples in
// a permutation seeded by (seed, epoch), so the position {seed, epoch, index, step} alone says where to resume —
// no generator state needs saving. A step never spans two epochs (the last step of an epoch may have fewer
// micro-batches, the last micro-batch fewer samples unless `dropLast`).
import { deriveSeed, permutation } from './rng';

export const IGNORE_INDEX = -100;

export interface RenderedSample {
  /** Token ids, image tokens expanded. */
  ids: readonly number[];
  /** 1 where the token is a training target (assistant tokens), 0 elsewhere; same length as ids. */
  lossMask: readonly number[];
  /** Number of images the sample carries (their pixel values go with the batch). */
  imageCount: number;
  /** How to name the item in messages (item id, file name…); defaults to its index. */
  key?: string | number;
}

export interface Batch {
  batchSize: number;
  seqLen: number;
  /** [batchSize × seqLen] row-major, right-padded with padId. */
  inputIds: Int32Array;
  /** [batchSize × seqLen] 1 for real tokens, 0 for padding (packed: the token's sample ordinal in its row, see pack). */
  attentionMask: Int32Array;
  /** [batchSize × seqLen] ids where lossMask is 1, IGNORE_INDEX elsewhere (padding included). Unshifted. */
  labels: Int32Array;
  /** Indices of the samples in the order of the rows (packed: row by row, left to right). */
  sampleIndices: number[];
  /** Images per row. */
  imageCounts: number[];
  /** Non-padding tokens in the batch. */
  tokens: number;
  /** Labels that enter the loss after the causal shift (label positions ≥ 1 that are not ignored). */
  lossTokens: number;
}

export interface CollateOptions {
  padId: number;
  /** 'longest' pads to the longest row (default); 'max' pads every batch to maxSeqLen. */
  padTo?: 'longest' | 'max';
  maxSeqLen?: number;
  /** Round the padded length up to a multiple of this (default 1). */
  padMultiple?: number;
}

export interface SampleProblem {
  index: number;
  key: string | number;
  message: string;
}

/** Thrown when samples cannot be trained on as they are; `problems` lists each offending item. */
export class SampleError extends Error {
  constructor(readonly problems: SampleProblem[]) {
    const shown = problems.slice(0, 5).map((p) => `item ${JSON.stringify(p.key)}: ${p.message}`);
    const more = problems.length > 5 ? `; and ${problems.length - 5} more` : '';
    super(`${problems.length} sample${problems.length === 1 ? '' : 's'} cannot be used: ${shown.join('; ')}${more}`);
    this.name = 'SampleError';
  }
}

function keyOf(s: RenderedSample, i: number): string | number {
  return s.key ?? i;
}

/**
 * Every problem that would stop training, per item: longer than maxSeqLen (reported, never cut), ids/lossMask of
 * different lengths, no token in the loss, token ids outside [0, vocabSize), more images than allowed.
 */
export function checkSamples(
  samples: readonly RenderedSample[],
  limits: { maxSeqLen: number; vocabSize?: number; maxImagesPerSample?: number },
): SampleProblem[] {
  const problems: SampleProblem[] = [];
  samples.forEach((s, i) => {
    const key = keyOf(s, i);
    const add = (message: string) => problems.push({ index: i, key, message });
    if (s.ids.length === 0) add('has no tokens');
    if (s.ids.length !== s.lossMask.length)
      add(`has ${s.ids.length} token ids but a loss mask of ${s.lossMask.length}`);
    if (s.ids.length > limits.maxSeqLen)
      add(
        `has ${s.ids.length} tokens (image tokens included), more than max_seq_len ${limits.maxSeqLen}; raise max_seq_len, shorten the text or use fewer image tokens`,
      );
    let inLoss = 0;
    for (let t = 1; t < s.lossMask.length; t++) if (s.lossMask[t]) inLoss++;
    if (s.ids.length > 0 && inLoss === 0) add('has no assistant tokens to learn from');
    if (limits.vocabSize !== undefined) {
      const bad = s.ids.find((id) => !Number.isInteger(id) || id < 0 || id >= limits.vocabSize!);
      if (bad !== undefined) add(`has token id ${bad} outside the vocabulary [0, ${limits.vocabSize})`);
    }
    if (limits.maxImagesPerSample !== undefined && s.imageCount > limits.maxImagesPerSample)
      add(`has ${s.imageCount} images; the model takes at most ${limits.maxImagesPerSample} per sample`);
  });
  return problems;
}

/** `checkSamples`, throwing a SampleError naming the items when anything is wrong. */
export function assertSamplesFit(samples: readonly RenderedSample[], limits: Parameters<typeof checkSamples>[1]): void {
  const problems = checkSamples(samples, limits);
  if (problems.length > 0) throw new SampleError(problems);
}

/** Pad the given samples into one batch. Samples longer than maxSeqLen are an error (never truncated). */
export function collate(samples: readonly RenderedSample[], indices: readonly number[], opts: CollateOptions): Batch {
  if (indices.length === 0) throw new Error('collate: empty batch');
  const rows = indices.map((i) => {
    const s = samples[i];
    if (!s) throw new Error(`collate: no sample at index ${i}`);
    return s;
  });
  const problems = checkSamples(rows, { maxSeqLen: opts.maxSeqLen ?? Number.POSITIVE_INFINITY }).map((p) => ({
    ...p,
    index: indices[p.index],
    key: rows[p.index].key ?? indices[p.index],
  }));
  if (problems.length > 0) throw new SampleError(problems);
  const longest = Math.max(...rows.map((r) => r.ids.length));
  let T = opts.padTo === 'max' ? (opts.maxSeqLen ?? longest) : longest;
  if (opts.padTo === 'max' && opts.maxSeqLen === undefined) throw new Error("collate: padTo 'max' needs maxSeqLen");
  const mult = opts.padMultiple ?? 1;
  if (mult > 1) T = Math.ceil(T / mult) * mult;
  const B = rows.length;
  const inputIds = new Int32Array(B * T).fill(opts.padId);
  const attentionMask = new Int32Array(B * T);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  let tokens = 0;
  let lossTokens = 0;
  rows.forEach((r, b) => {
    const off = b * T;
    for (let t = 0; t < r.ids.length; t++) {
      inputIds[off + t] = r.ids[t];
      attentionMask[off + t] = 1;
      if (r.lossMask[t]) {
        labels[off + t] = r.ids[t];
        if (t > 0) lossTokens++;
      }
    }
    tokens += r.ids.length;
  });
  return {
    batchSize: B,
    seqLen: T,
    inputIds,
    attentionMask,
    labels,
    sampleIndices: [...indices],
    imageCounts: rows.map((r) => r.imageCount),
    tokens,
    lossTokens,
  };
}

export interface PackOptions {
  padId: number;
  /** Longest packed row; default the longest sample of the batch, so a packed batch is never longer than a padded one. */
  capacity?: number;
  maxSeqLen?: number;
}

/**
 * Lay the given samples end to end in as few rows as first-fit decreasing finds (longest first, each into the first
 * row with room; no sample is split), instead of one padded row each. attentionMask then holds each token's sample
 * ordinal within its row (1, 2, …; 0 for the padding at the row's end), which the packed training graph turns into
 * per-sample attention and positions (models/llava.ts packedMask). The label of each sample's first token is ignored,
 * so no token is trained to predict the next sample: the loss terms, their count (lossTokens) and thus the loss and
 * its gradients are those of the padded batch. sampleIndices lists the samples row by row, left to right (the order
 * their images go in); imageCounts is per row.
 */
export function pack(samples: readonly RenderedSample[], indices: readonly number[], opts: PackOptions): Batch {
  if (indices.length === 0) throw new Error('pack: empty batch');
  const rows = indices.map((i) => {
    const s = samples[i];
    if (!s) throw new Error(`pack: no sample at index ${i}`);
    return s;
  });
  const problems = checkSamples(rows, { maxSeqLen: opts.maxSeqLen ?? Number.POSITIVE_INFINITY }).map((p) => ({
    ...p,
    index: indices[p.index],
    key: rows[p.index].key ?? indices[p.index],
  }));
  if (problems.length > 0) throw new SampleError(problems);
  const longest = Math.max(...rows.map((r) => r.ids.length));
  const cap = Math.max(longest, opts.capacity ?? longest);
  const order = rows.map((_, k) => k).sort((a, b) => rows[b].ids.length - rows[a].ids.length || a - b);
  const bins: { used: number; items: number[] }[] = [];
  for (const k of order) {
    const n = rows[k].ids.length;
    const bin = bins.find((b) => b.used + n <= cap);
    if (bin) {
      bin.used += n;
      bin.items.push(k);
    } else bins.push({ used: n, items: [k] });
  }
  const B = bins.length;
  const T = Math.max(...bins.map((b) => b.used));
  const inputIds = new Int32Array(B * T).fill(opts.padId);
  const attentionMask = new Int32Array(B * T);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  const sampleIndices: number[] = [];
  const imageCounts: number[] = [];
  let tokens = 0;
  let lossTokens = 0;
  bins.forEach((bin, b) => {
    let at = b * T;
    let images = 0;
    bin.items.forEach((k, ordinal) => {
      const r = rows[k];
      for (let t = 0; t < r.ids.length; t++) {
        inputIds[at + t] = r.ids[t];
        attentionMask[at + t] = ordinal + 1;
        if (r.lossMask[t] && t > 0) {
          labels[at + t] = r.ids[t];
          lossTokens++;
        }
      }
      at += r.ids.length;
      tokens += r.ids.length;
      images += r.imageCount;
      sampleIndices.push(indices[k]);
    });
    imageCounts.push(images);
  });
  return { batchSize: B, seqLen: T, inputIds, attentionMask, labels, sampleIndices, imageCounts, tokens, lossTokens };
}

// ---------------------------------------------------------------------------------------------- iteration order

/** Where iteration stands: the next step reads epoch `epoch` from offset `index` of that epoch's order. */
export interface DataPosition {
  seed: number;
  epoch: number;
  index: number;
  /** Optimizer steps completed. */
  step: number;
}

export interface ScheduleOptions {
  numSamples: number;
  batchSize: number;
  gradAccum?: number;
  seed: number;
  /** Exactly one of epochs / maxSteps. */
  epochs?: number;
  maxSteps?: number;
  /** Shuffle each epoch (default true); false visits 0..n-1 in order. */
  shuffle?: boolean;
  /** Drop a last partial micro-batch of each epoch (default false). */
  dropLast?: boolean;
}

export interface PlannedStep {
  /** 1-based number of this optimizer step. */
  step: number;
  epoch: number;
  /** Sample indices of each micro-batch of the step. */
  microBatches: number[][];
}

export class BatchSchedule {
  readonly numSamples: number;
  readonly batchSize: number;
  readonly gradAccum: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  /** Samples each epoch visits (numSamples, less a dropped partial batch). */
  readonly samplesPerEpoch: number;
  readonly microBatchesPerEpoch: number;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  private pos: DataPosition;
  private orderCache: { epoch: number; order: number[] } | null = null;

  constructor(opts: ScheduleOptions, position?: DataPosition) {
    const { numSamples, batchSize } = opts;
    const gradAccum = opts.gradAccum ?? 1;
    if (!Number.isInteger(numSamples) || numSamples < 1)
      throw new Error(`the training split has ${numSamples} samples; it needs at least 1`);
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`batch_size must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(gradAccum) || gradAccum < 1)
      throw new Error(`grad_accum must be a positive integer, got ${gradAccum}`);
    if ((opts.epochs === undefined) === (opts.maxSteps === undefined))
      throw new Error('give exactly one of epochs or max_steps');
    if (opts.epochs !== undefined && (!Number.isInteger(opts.epochs) || opts.epochs < 1))
      throw new Error(`epochs must be a positive integer, got ${opts.epochs}`);
    if (opts.maxSteps !== undefined && (!Number.isInteger(opts.maxSteps) || opts.maxSteps < 1))
      throw new Error(`max_steps must be a positive integer, got ${opts.maxSteps}`);
    this.dropLast = opts.dropLast ?? false;
    if (this.dropLast && numSamples < batchSize)
      throw new Error(
        `the training split has ${numSamples} samples, fewer than batch_size ${batchSize} (with drop_last nothing would be trained)`,
      );
    this.numSamples = numSamples;
    this.batchSize = batchSize;
    this.gradAccum = gradAccum;
    this.seed = opts.seed;
    this.shuffle = opts.shuffle ?? true;
    this.microBatchesPerEpoch = this.dropLast ? Math.floor(numSamples / batchSize) : Math.ceil(numSamples / batchSize);
    this.samplesPerEpoch = this.dropLast ? this.microBatchesPerEpoch * batchSize : numSamples;
    this.stepsPerEpoch = Math.ceil(this.microBatchesPerEpoch / gradAccum);
    this.totalSteps = opts.epochs !== undefined ? opts.epochs * this.stepsPerEpoch : opts.maxSteps!;
    this.pos = { seed: opts.seed, epoch: 0, index: 0, step: 0 };
    if (position) this.restore(position);
  }

  /** A copy of the current position (save it with a checkpoint). */
  position(): DataPosition {
    return { ...this.pos };
  }

  /** Continue from a saved position; it must come from a schedule with the same seed. */
  restore(p: DataPosition): void {
    const bad = (what: string) => new Error(`data position ${JSON.stringify(p)}: ${what}`);
    if (!p || typeof p !== 'object') throw bad('not an object');
    if (p.seed !== this.seed) throw bad(`was made with seed ${p.seed}, this run uses seed ${this.seed}`);
    for (const k of ['epoch', 'index', 'step'] as const)
      if (!Number.isInteger(p[k]) || p[k] < 0) throw bad(`${k} must be a non-negative integer`);
    if (p.index >= this.samplesPerEpoch)
      throw bad(`index is past the end of an epoch of ${this.samplesPerEpoch} samples`);
    if (p.step > this.totalSteps) throw bad(`step is past the total of ${this.totalSteps} steps`);
    this.pos = { ...p };
  }

  done(): boolean {
    return this.pos.step >= this.totalSteps;
  }

  /** The visiting order of an epoch (a permutation of 0..n-1 seeded by (seed, epoch) when shuffling). */
  epochOrder(epoch: number): number[] {
    if (this.orderCache?.epoch === epoch) return this.orderCache.order;
    const order = this.shuffle
      ? permutation(this.numSamples, deriveSeed(this.seed, epoch))
      : Array.from({ length: this.numSamples }, (_, i) => i);
    this.orderCache = { epoch, order };
    return order;
  }

  /** The micro-batches of the next optimizer step; advances the position. Throws when the schedule is done. */
  nextStep(): PlannedStep {
    if (this.done()) throw new Error(`the schedule is done (${this.totalSteps} steps)`);
    const { epoch } = this.pos;
    const order = this.epochOrder(epoch);
    let index = this.pos.index;
    const microBatches: number[][] = [];
    while (microBatches.length < this.gradAccum && index < this.samplesPerEpoch) {
      const end = Math.min(index + this.batchSize, this.samplesPerEpoch);
      microBatches.push(order.slice(index, end));
      index = end;
    }
    const step = this.pos.step + 1;
    this.pos =
      index >= this.samplesPerEpoch
        ? { seed: this.seed, epoch: epoch + 1, index: 0, step }
        : { seed: this.seed, epoch, index, step };
    return { step, epoch, microBatches };
  }
}
