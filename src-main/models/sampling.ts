// Next-token choice for generation: logits processors with Hugging Face semantics, seeded sampling, and stopping.
//
// Order per step, as transformers' generate() applies them: repetition penalty (a logits processor, on every
// token id already in the sequence, prompt included), then the warpers temperature → top-k → top-p, then either
// argmax (greedy) or a draw from the softmax of what is left. Greedy is used when temperature is 0 / absent
// (transformers' do_sample=False); top-k / top-p only matter when sampling.
//   RepetitionPenaltyLogitsProcessor: score < 0 ? score * penalty : score / penalty
//   TemperatureLogitsWarper: scores / temperature
//   TopKLogitsWarper: remove scores < the k-th largest score (ties with it are kept)
//   TopPLogitsWarper: sort ascending, remove tokens whose cumulative probability <= 1 - top_p (at least one kept)
// Work is in float64 on a copy; removed tokens are -Infinity. Draws come from training/rng.ts (xoshiro128**), so a
// seed gives the same tokens on every platform.
import { Rng } from '../training/rng';

export class SamplingError extends Error {}

export interface SamplingOptions {
  /** 0 or absent: greedy (argmax). > 0: sample from softmax(logits / temperature). */
  temperature?: number;
  /** Keep the k most likely tokens (0 or absent: all). Sampling only. */
  topK?: number;
  /** Nucleus: keep the most likely tokens whose probability mass reaches topP (1 or absent: all). Sampling only. */
  topP?: number;
  /** > 1 discourages tokens already in the sequence (HF semantics); 1 or absent: off. */
  repetitionPenalty?: number;
  /** Seed of the sampler's RNG (default 0). */
  seed?: number;
}

/** Check options, naming the bad field. */
export function validateSamplingOptions(o: SamplingOptions): void {
  const num = (v: unknown, name: string) => {
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v)))
      throw new SamplingError(`${name} must be a finite number, got ${String(v)}`);
  };
  num(o.temperature, 'temperature');
  num(o.topP, 'topP');
  num(o.repetitionPenalty, 'repetitionPenalty');
  num(o.seed, 'seed');
  if (o.temperature !== undefined && o.temperature < 0)
    throw new SamplingError(`temperature must be >= 0, got ${o.temperature}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0))
    throw new SamplingError(`topK must be a non-negative integer, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1))
    throw new SamplingError(`topP must be in (0, 1], got ${o.topP}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0))
    throw new SamplingError(`repetitionPenalty must be > 0, got ${o.repetitionPenalty}`);
}

/** Index of the largest value; the first one on ties (torch.argmax). NaN is never chosen unless all are NaN. */
export function argmax(x: ArrayLike<number>): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v > bv || (best === -1 && v === -Infinity)) {
      bv = v;
      best = i;
    }
  }
  return best === -1 ? 0 : best;
}

/** HF RepetitionPenaltyLogitsProcessor, in place: each distinct id in `seen` once. */
export function applyRepetitionPenalty(
  scores: Float64Array | Float32Array,
  seen: Iterable<number>,
  penalty: number,
): void {
  if (penalty === 1) return;
  const done = new Set<number>();
  for (const id of seen) {
    if (done.has(id) || id < 0 || id >= scores.length) continue;
    done.add(id);
    const s = scores[id];
    scores[id] = s < 0 ? s * penalty : s / penalty;
  }
}

/** HF TopKLogitsWarper, in place: scores below the k-th largest become -Infinity. */
export function applyTopK(scores: Float64Array, k: number): void {
  if (k <= 0 || k >= scores.length) return;
  const sorted = Float64Array.from(scores).sort(); // ascending
  const kth = sorted[sorted.length - k];
  for (let i = 0; i < scores.length; i++) if (scores[i] < kth) scores[i] = -Infinity;
}

/** Softmax in float64 (-Infinity → 0). */
export function softmax(scores: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i] > max) max = scores[i];
  const p = new Float64Array(scores.length);
  if (max === -Infinity) return p;
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    const e = Math.exp(scores[i] - max);
    p[i] = e;
    sum += e;
  }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/** log-softmax in float64. */
export function logSoftmax(scores: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i] > max) max = scores[i];
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += Math.exp(scores[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(scores.length);
  for (let i = 0; i < scores.length; i++) out[i] = scores[i] - lse;
  return out;
}

/** HF TopPLogitsWarper, in place (min_tokens_to_keep = 1). */
export function applyTopP(scores: Float64Array, topP: number): void {
  if (topP >= 1) return;
  const order = Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b] || a - b); // ascending
  const p = softmax(scores);
  let cum = 0;
  for (let r = 0; r < order.length - 1; r++) {
    // the last (most likely) token is always kept
    cum += p[order[r]];
    if (cum <= 1 - topP) scores[order[r]] = -Infinity;
    else break;
  }
}

/**
 * The processed scores whose softmax is the sampling distribution: repetition penalty, temperature, top-k, top-p.
 * Returns a float64 copy; `logits` is not changed.
 */
export function processLogits(logits: ArrayLike<number>, seen: Iterable<number>, o: SamplingOptions): Float64Array {
  const s = Float64Array.from(logits as ArrayLike<number>);
  if (o.repetitionPenalty !== undefined) applyRepetitionPenalty(s, seen, o.repetitionPenalty);
  const t = o.temperature ?? 0;
  if (t > 0) {
    if (t !== 1) for (let i = 0; i < s.length; i++) s[i] /= t;
    if (o.topK) applyTopK(s, o.topK);
    if (o.topP !== undefined) applyTopP(s, o.topP);
  }
  return s;
}

/** The distribution a sampler draws from (all zeros but the argmax when greedy). */
export function nextTokenDistribution(
  logits: ArrayLike<number>,
  seen: Iterable<number>,
  o: SamplingOptions,
): Float64Array {
  const s = processLogits(logits, seen, o);
  if (!((o.temperature ?? 0) > 0)) {
    const p = new Float64Array(s.length);
    p[argmax(s)] = 1;
    return p;
  }
  return softmax(s);
}

/** Draw an index from probabilities `p` (summing to ~1) with one uniform number u in [0, 1). */
export function drawIndex(p: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i];
  const target = u * total;
  let cum = 0;
  let last = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i] <= 0) continue;
    cum += p[i];
    last = i;
    if (target < cum) return i;
  }
  return last === -1 ? 0 : last; // rounding: the last token with mass
}

/** Picks next tokens: greedy or seeded sampling, with the processors above. */
export class Sampler {
  readonly options: SamplingOptions;
  private rng: Rng;
  constructor(options: SamplingOptions = {}) {
    validateSamplingOptions(options);
    this.options = { ...options };
    this.rng = new Rng(options.seed ?? 0);
  }
  get greedy(): boolean {
    return !((this.options.temperature ?? 0) > 0);
  }
  /** The next token given the last position's logits and every id of the sequence so far (prompt + generated). */
  next(logits: ArrayLike<number>, seen: Iterable<number>): number {
    const s = processLogits(logits, seen, this.options);
    if (this.greedy) return argmax(s);
    return drawIndex(softmax(s), this.rng.float());
  }
}

// ---------------------------------------------------------------- stopping

export type FinishReason = 'eos' | 'stop' | 'length' | 'cancelled';

/**
 * Stop strings over streamed text. feed(text so far) says whether a stop string occurred (and where the answer
 * ends), and how much text is safe to show: text that could still be the beginning of a stop string is held back,
 * so the streamed text never contains any part of a stop string.
 */
export class StopStrings {
  readonly stops: string[];
  constructor(stops: readonly string[] = []) {
    this.stops = stops.filter((s) => {
      if (typeof s !== 'string') throw new SamplingError(`stop strings must be strings, got ${String(s)}`);
      return s.length > 0;
    });
  }
  /** Where the earliest stop string starts in `text`, or -1. */
  find(text: string): number {
    let at = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s);
      if (i !== -1 && (at === -1 || i < at)) at = i;
    }
    return at;
  }
  /** Length of the prefix of `text` that cannot become part of a stop string whatever text follows. */
  safeLength(text: string): number {
    let keep = text.length;
    for (const s of this.stops) {
      const max = Math.min(s.length - 1, text.length);
      for (let n = max; n > 0; n--) {
        if (text.endsWith(s.slice(0, n))) {
          keep = Math.min(keep, text.length - n);
          break;
        }
      }
    }
    return keep;
  }
  /** {stopped, end}: the answer is text.slice(0, end); when not stopped, text.slice(0, end) is safe to show. */
  check(text: string): { stopped: boolean; end: number } {
    const at = this.find(text);
    if (at !== -1) return { stopped: true, end: at };
    return { stopped: false, end: this.safeLength(text) };
  }
}
