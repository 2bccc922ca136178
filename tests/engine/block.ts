// The pre-norm LLaMA-style transformer block with LoRA on q/k/v/o used by the block fixture test and by
// `npm run bench:engine`; the same maths as block_loss in tests/fixtures/engine/make_fixtures.py.

import type { Graph, Value } from '../../src-main/engine/graph/builder';
import { add, mul } from '../../src-main/engine/ops/elementwise';
import { matmul } from '../../src-main/engine/ops/matmul';
import { rmsNorm } from '../../src-main/engine/ops/norm';
import { attention } from '../../src-main/engine/ops/attention';
import { applyRotary, rangePositions, ropeCache } from '../../src-main/engine/ops/rotary';
import { silu } from '../../src-main/engine/ops/activations';
import { softmaxCrossEntropy } from '../../src-main/engine/ops/loss';
import { reshape, transpose } from '../../src-main/engine/ops/shape';
import type { ForwardResult, ParamSpec } from '../../src-main/engine/programs/train-step';
import { tensor, type ort } from '../../src-main/engine/runtime/tensor';
import { rng } from './gradcheck';

export interface BlockConfig {
  B: number;
  T: number;
  D: number;
  heads: number;
  kv_heads: number;
  ffn: number;
  vocab: number;
  rank: number;
  lora_alpha: number;
  rms_eps: number;
  rope_theta: number;
}

const MODULES = ['q', 'k', 'v', 'o'] as const;

function dims(c: BlockConfig) {
  const hd = c.D / c.heads;
  return { hd, qd: c.heads * hd, kvd: c.kv_heads * hd };
}

/** Shapes of the frozen weights (x @ W layout, W is [in, out]). */
export function frozenShapes(c: BlockConfig): Record<string, number[]> {
  const { qd, kvd } = dims(c);
  return {
    embed: [c.vocab, c.D],
    norm1: [c.D],
    wq: [c.D, qd],
    wk: [c.D, kvd],
    wv: [c.D, kvd],
    wo: [qd, c.D],
    norm2: [c.D],
    w_gate: [c.D, c.ffn],
    w_up: [c.D, c.ffn],
    w_down: [c.ffn, c.D],
    head: [c.D, c.vocab],
  };
}

/** Trainable LoRA parameters: lora_<m>_A [in, rank], lora_<m>_B [rank, out] for m in q, k, v, o. */
export function blockParams(c: BlockConfig): ParamSpec[] {
  const { qd, kvd } = dims(c);
  const io: Record<string, [number, number]> = { q: [c.D, qd], k: [c.D, kvd], v: [c.D, kvd], o: [qd, c.D] };
  return MODULES.flatMap((m) => [
    { name: `lora_${m}_A`, shape: [io[m][0], c.rank] },
    { name: `lora_${m}_B`, shape: [c.rank, io[m][1]] },
  ]);
}

export interface BlockTensors {
  frozen: Record<string, Float32Array>;
  init: Record<string, Float32Array>;
  ids: number[];
  mask: number[];
  labels: number[];
}

/** Random block weights and data (for the benchmark); weights scaled by `scale`, padding in the last sample. */
export function blockTensors(c: BlockConfig, seed: number, scale: number): BlockTensors {
  const r = rng(seed + 1);
  const randn = (n: number, s: number, mean = 0) =>
    Float32Array.from({ length: n }, () => mean + s * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
  const frozen: Record<string, Float32Array> = {};
  for (const [k, shape] of Object.entries(frozenShapes(c))) {
    const n = shape.reduce((a, b) => a * b, 1);
    frozen[k] = k.startsWith('norm') ? randn(n, 0.1, 1) : randn(n, k === 'embed' ? 0.5 : scale);
  }
  const init: Record<string, Float32Array> = {};
  for (const p of blockParams(c)) init[p.name] = randn(p.shape[0] * p.shape[1], p.name.endsWith('_A') ? 0.3 : 0.1);
  const N = c.B * c.T;
  const ids = Array.from({ length: N }, () => Math.floor(r() * c.vocab));
  const mask = Array.from({ length: N }, (_, i) =>
    Math.floor(i / c.T) === c.B - 1 && i % c.T >= c.T - Math.floor(c.T / 3) ? 0 : 1,
  );
  const labels = Array.from({ length: N }, (_, i) => (mask[i] === 0 || i === 0 ? -100 : Math.floor(r() * c.vocab)));
  return { frozen, init, ids, mask, labels };
}

export function blockFeeds(
  c: BlockConfig,
  t: Pick<BlockTensors, 'ids' | 'mask' | 'labels'>,
): Record<string, ort.Tensor> {
  return {
    input_ids: tensor('int64', [c.B, c.T], t.ids),
    attention_mask: tensor('int64', [c.B, c.T], t.mask),
    labels: tensor('int64', [c.B, c.T], t.labels),
  };
}

/** The block's forward pass and mean cross-entropy loss. Weights not among the trainable params `p` (by the names of
 *  frozenShapes) become initializers from `frozen`. */
export function blockForward(
  g: Graph,
  c: BlockConfig,
  p: Readonly<Record<string, Value>>,
  frozen: Record<string, Float32Array | ArrayLike<number>>,
): ForwardResult {
  const { hd } = dims(c);
  const { B, T, D, heads: H, kv_heads: KV, vocab: V } = c;
  const W: Record<string, Value> = {};
  for (const [k, shape] of Object.entries(frozenShapes(c)))
    W[k] = p[k] ?? g.initializer(`frozen.${k}`, 'float32', shape, Float32Array.from(frozen[k]));
  const ids = g.input('input_ids', 'int64', [B, T]);
  const attnMask = g.input('attention_mask', 'int64', [B, T]);
  const labels = g.input('labels', 'int64', [B, T]);
  const lora = (x: Value, w: Value, m: string) =>
    add(matmul(x, w), mul(matmul(matmul(x, p[`lora_${m}_A`]), p[`lora_${m}_B`]), c.lora_alpha / c.rank));
  const heads = (x: Value, n: number) => transpose(reshape(x, [B, T, n, hd]), [0, 2, 1, 3]); // [B, n, T, hd]

  let x = g.op1('Gather', [W.embed, ids], { axis: 0 }); // [B, T, D]
  const h = rmsNorm(x, W.norm1, { epsilon: c.rms_eps });
  const rope = ropeCache(g, rangePositions(ids), hd, c.rope_theta);
  const q = applyRotary(heads(lora(h, W.wq, 'q'), H), rope);
  const k = applyRotary(heads(lora(h, W.wk, 'k'), KV), rope);
  const v = heads(lora(h, W.wv, 'v'), KV);
  const a = attention(q, k, v, { causal: true, mask: attnMask }).out; // [B, H, T, hd]
  x = add(x, lora(reshape(transpose(a, [0, 2, 1, 3]), [B, T, H * hd]), W.wo, 'o'));
  const h2 = rmsNorm(x, W.norm2, { epsilon: c.rms_eps });
  x = add(x, matmul(mul(silu(matmul(h2, W.w_gate)), matmul(h2, W.w_up)), W.w_down));
  const logits = matmul(x, W.head); // [B, T, V]
  const { loss } = softmaxCrossEntropy(reshape(logits, [B * T, V]), reshape(labels, [B * T]), { ignoreIndex: -100 });
  void D;
  return { loss };
}
