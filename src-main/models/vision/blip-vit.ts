// The BLIP / BLIP-2 vision encoder as transformers' BlipVisionModel / Blip2VisionModel compute it:
//   embeddings: patch conv (kernel = stride = patch, with bias) + class_embedding [1, 1, D] prepended
//               + position_embedding [1, 1 + n^2, D] (a Parameter, not an Embedding: no ".weight")
//   layers:     pre-LN (layer_norm1 -> self_attn -> + residual; layer_norm2 -> mlp fc1/act/fc2 -> + residual)
//   self_attn:  one fused `qkv` Linear [3D, D] whose output splits as (3, heads, head_dim), and `projection`;
//               BLIP's qkv has a full bias, BLIP-2's has none and separate `q_bias` / `v_bias` (bias = [q, 0, v])
//   last_hidden_state = post_layernorm(encoder output), what BLIP's text encoder and BLIP-2's Q-Former attend to.
// No pre-norm on the embeddings. The patch conv is an unfold + MatMul as in clip-vit.ts (a gradient can flow).

import type { Value } from '../../engine/graph/builder';
import { activation } from '../../engine/ops/activations';
import { attention } from '../../engine/ops/attention';
import { layerNorm } from '../../engine/ops/norm';
// the q/k/v Split below needs its shape rule, which registers with the shape ops
import '../../engine/ops/shape';
import { mergeHeads, type GraphWeights } from '../layers';

export interface BlipVisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  layerNormEps: number;
  hiddenAct: string;
  /** 'full': qkv.bias (BLIP); 'qv': q_bias + v_bias, zero k bias (BLIP-2 qkv_bias=True); 'none' (BLIP-2 qkv_bias=False) */
  qkvBias: 'full' | 'qv' | 'none';
}

/** Tokens per image: class token + patches. */
export function blipVisionTokens(c: BlipVisionConfig): number {
  const n = Math.floor(c.imageSize / c.patchSize);
  return n * n + 1;
}

/** Canonical tensor names and shapes of the vision model under `prefix` (e.g. "vision_model."). */
export function blipVisionTensors(c: BlipVisionConfig, prefix: string): { name: string; shape: number[] }[] {
  const D = c.hiddenSize;
  const p = c.patchSize;
  const out: { name: string; shape: number[] }[] = [
    { name: `${prefix}embeddings.class_embedding`, shape: [1, 1, D] },
    { name: `${prefix}embeddings.patch_embedding.weight`, shape: [D, c.numChannels, p, p] },
    { name: `${prefix}embeddings.patch_embedding.bias`, shape: [D] },
    { name: `${prefix}embeddings.position_embedding`, shape: [1, blipVisionTokens(c), D] },
  ];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const L = `${prefix}encoder.layers.${l}.`;
    out.push({ name: `${L}self_attn.qkv.weight`, shape: [3 * D, D] });
    if (c.qkvBias === 'full') out.push({ name: `${L}self_attn.qkv.bias`, shape: [3 * D] });
    if (c.qkvBias === 'qv')
      out.push({ name: `${L}self_attn.q_bias`, shape: [D] }, { name: `${L}self_attn.v_bias`, shape: [D] });
    out.push(
      { name: `${L}self_attn.projection.weight`, shape: [D, D] },
      { name: `${L}self_attn.projection.bias`, shape: [D] },
      { name: `${L}layer_norm1.weight`, shape: [D] },
      { name: `${L}layer_norm1.bias`, shape: [D] },
      { name: `${L}mlp.fc1.weight`, shape: [c.intermediateSize, D] },
      { name: `${L}mlp.fc1.bias`, shape: [c.intermediateSize] },
      { name: `${L}mlp.fc2.weight`, shape: [D, c.intermediateSize] },
      { name: `${L}mlp.fc2.bias`, shape: [D] },
      { name: `${L}layer_norm2.weight`, shape: [D] },
      { name: `${L}layer_norm2.bias`, shape: [D] },
    );
  }
  out.push(
    { name: `${prefix}post_layernorm.weight`, shape: [D] },
    { name: `${prefix}post_layernorm.bias`, shape: [D] },
  );
  return out;
}

/** Embeddings [N, 1 + n^2, D] of pixel_values [N, C, S, S]. */
export function blipVisionEmbeddings(w: GraphWeights, c: BlipVisionConfig, prefix: string, pixelValues: Value): Value {
  const g = w.g;
  const p = c.patchSize;
  const n = Math.floor(c.imageSize / p);
  const C = c.numChannels;
  const D = c.hiddenSize;
  const ps = pixelValues.shape;
  if (
    ps &&
    (ps.length !== 4 ||
      (typeof ps[1] === 'number' && ps[1] !== C) ||
      (typeof ps[2] === 'number' && ps[2] !== c.imageSize))
  )
    throw new Error(
      `BLIP vision: pixel_values '${pixelValues.name}' must be [N, ${C}, ${c.imageSize}, ${c.imageSize}] (got [${ps}])`,
    );
  let x = pixelValues;
  if (n * p !== c.imageSize) x = g.op1('Slice', [x, g.ints([0, 0]), g.ints([n * p, n * p]), g.ints([2, 3])]);
  x = g.op1('Reshape', [x, g.ints([0, C, n, p, n, p])]);
  x = g.op1('Transpose', [x], { perm: [0, 2, 4, 1, 3, 5] });
  x = g.op1('Reshape', [x, g.ints([0, n * n, C * p * p])]);
  const E = `${prefix}embeddings.`;
  const k2 = g.op1('Reshape', [w.tensor(`${E}patch_embedding.weight`), g.ints([D, C * p * p])]);
  x = g.op1('MatMul', [x, g.op1('Transpose', [k2], { perm: [1, 0] })]);
  x = g.op1('Add', [x, w.tensor(`${E}patch_embedding.bias`)]);
  const cls = g.op1('Reshape', [w.tensor(`${E}class_embedding`), g.ints([1, 1, D])]);
  const target = g.op1('Concat', [g.op1('Shape', [x], { end: 1 }), g.ints([1, D])], { axis: 0 });
  const clsN = g.op1(
    'Expand',
    [cls, target],
    {},
    { outTypes: [{ dtype: x.dtype, shape: [x.shape?.[0] ?? '?', 1, D] }] },
  );
  x = g.op1('Concat', [clsN, x], { axis: 1 });
  const pos = g.op1('Reshape', [w.tensor(`${E}position_embedding`), g.ints([1, n * n + 1, D])]);
  return g.op1('Add', [x, pos]);
}

/** The fused qkv projection [N, T, 3D] with the configured bias. */
function qkvProjection(w: GraphWeights, c: BlipVisionConfig, A: string, x: Value): Value {
  const g = w.g;
  if (c.qkvBias === 'full') return w.linear(x, `${A}qkv`, { bias: true });
  const y = w.linear(x, `${A}qkv`, { bias: false });
  if (c.qkvBias === 'none') return y;
  const qb = w.tensor(`${A}q_bias`);
  const vb = w.tensor(`${A}v_bias`);
  const zeros = g.op1('Mul', [vb, g.scalar(0, vb)]); // torch.zeros_like(v_bias), kept in the graph so shapes follow
  return g.op1('Add', [y, g.op1('Concat', [qb, zeros, vb], { axis: 0 })]);
}

/** One BlipEncoderLayer / Blip2EncoderLayer. */
export function blipVisionLayer(w: GraphWeights, c: BlipVisionConfig, layerPrefix: string, x: Value): Value {
  const g = w.g;
  const L = layerPrefix;
  const H = c.numAttentionHeads;
  const D = c.hiddenSize;
  const d = D / H;
  const eps = c.layerNormEps;
  let y = layerNorm(x, w.tensor(`${L}layer_norm1.weight`), w.tensor(`${L}layer_norm1.bias`), { epsilon: eps });
  // [N, T, 3D] -> [N, T, 3, H, d] -> [3, N, H, T, d]
  const qkv = g.op1(
    'Transpose',
    [g.op1('Reshape', [qkvProjection(w, c, `${L}self_attn.`, y), g.ints([0, 0, 3, H, d])])],
    { perm: [2, 0, 3, 1, 4] },
  );
  const [q, k, v] = g
    .op('Split', [qkv, g.ints([1, 1, 1])], { axis: 0 }, { outputs: 3 })
    .map((t) => g.op1('Squeeze', [t, g.ints([0])]));
  const a = attention(q, k, v, { scale: 1 / Math.sqrt(d) }).out;
  x = g.op1('Add', [x, w.linear(mergeHeads(g, a, H, d), `${L}self_attn.projection`)]);
  y = layerNorm(x, w.tensor(`${L}layer_norm2.weight`), w.tensor(`${L}layer_norm2.bias`), { epsilon: eps });
  y = w.linear(activation(c.hiddenAct, w.linear(y, `${L}mlp.fc1`)), `${L}mlp.fc2`);
  return g.op1('Add', [x, y]);
}

/** last_hidden_state [N, 1 + n^2, D] = post_layernorm(encoder(embeddings)); prefix e.g. "vision_model.". */
export function blipVisionModel(w: GraphWeights, c: BlipVisionConfig, prefix: string, pixelValues: Value): Value {
  if (c.hiddenSize % c.numAttentionHeads !== 0)
    throw new Error(
      `BLIP vision: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${c.numAttentionHeads}`,
    );
  let x = w.g.scope('vision/embeddings', () => blipVisionEmbeddings(w, c, prefix, pixelValues));
  for (let l = 0; l < c.numHiddenLayers; l++)
    x = w.g.scope(`vision/layer${l}`, () => blipVisionLayer(w, c, `${prefix}encoder.layers.${l}.`, x));
  return layerNorm(x, w.tensor(`${prefix}post_layernorm.weight`), w.tensor(`${prefix}post_layernorm.bias`), {
    epsilon: c.layerNormEps,
  });
}
