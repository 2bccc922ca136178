// ViT vision towers as transformers' CLIPVisionTransformer / SiglipVisionTransformer compute them, up to the hidden
// states LLaVA reads (vision_feature_layer). One implementation, driven by the normalized config's flags:
//   CLIP:   class token, pre_layrnorm on the embeddings, patch conv without bias, quick_gelu (usually)
//   SigLIP: no class token, no pre-norm, patch conv with bias, gelu_pytorch_tanh; post_layernorm (siglip.ts)
//
// hidden_states[0] is the embeddings (after CLIP's pre_layrnorm), hidden_states[i] the output of encoder layer i-1.
// Layers after the last requested state are not built (transformers computes them; they cannot change LLaVA's output).
//
// The patch convolution (kernel = stride = patch, no padding) is an unfold by Reshape/Transpose plus one MatMul, so a
// gradient can flow through it (the engine has no Conv gradient rule); pixels past floor(size / patch) * patch are
// dropped, as the strided conv does.

import type { Value } from '../../engine/graph/builder';
import { activation } from '../../engine/ops/activations';
import { attention } from '../../engine/ops/attention';
import { layerNorm } from '../../engine/ops/norm';
import type { VisionConfig } from '../config';
import { mergeHeads, splitHeads, type GraphWeights } from '../layers';

export interface VisionTowerOptions {
  /** hidden_states indices to return (0..numHiddenLayers); default [numHiddenLayers]. */
  states?: readonly number[];
}

export interface VisionTowerResult {
  /** hidden_states[i] [N, tokens, hidden] for each requested i */
  states: Map<number, Value>;
  /** the last computed hidden state */
  last: Value;
}

/** Patch embeddings [N, numPatches, hidden] (+ class token, + position embeddings, + CLIP's pre-layernorm). */
export function visionEmbeddings(w: GraphWeights, cfg: VisionConfig, prefix: string, pixelValues: Value): Value {
  const g = w.g;
  const p = cfg.patchSize;
  const n = Math.floor(cfg.imageSize / p);
  const C = cfg.numChannels;
  const h = cfg.hiddenSize;
  const ps = pixelValues.shape;
  if (ps && (ps.length !== 4 || (typeof ps[1] === 'number' && ps[1] !== C)))
    throw new Error(
      `vision tower: pixel_values '${pixelValues.name}' must be [N, ${C}, ${cfg.imageSize}, ${cfg.imageSize}] (got [${ps}])`,
    );
  let x = pixelValues;
  if (n * p !== cfg.imageSize) x = g.op1('Slice', [x, g.ints([0, 0]), g.ints([n * p, n * p]), g.ints([2, 3])]);
  // [N, C, n, p, n, p] -> [N, n, n, C, p, p] -> [N, n*n, C*p*p]
  x = g.op1('Reshape', [x, g.ints([0, C, n, p, n, p])]);
  x = g.op1('Transpose', [x], { perm: [0, 2, 4, 1, 3, 5] });
  x = g.op1('Reshape', [x, g.ints([0, n * n, C * p * p])]);
  const E = `${prefix}embeddings.`;
  // conv weight [h, C, p, p] viewed as [h, C*p*p]
  const kw = w.tensor(`${E}patch_embedding.weight`);
  const k2 = g.op1('Reshape', [kw, g.ints([h, C * p * p])]);
  x = g.op1('MatMul', [x, g.op1('Transpose', [k2], { perm: [1, 0] })]);
  if (cfg.patchBias) x = g.op1('Add', [x, w.tensor(`${E}patch_embedding.bias`)]);
  if (cfg.classToken) {
    const cls = g.op1('Reshape', [w.tensor(`${E}class_embedding`), g.ints([1, 1, h])]);
    const target = g.op1('Concat', [g.op1('Shape', [x], { end: 1 }), g.ints([1, h])], { axis: 0 });
    const clsN = g.op1(
      'Expand',
      [cls, target],
      {},
      { outTypes: [{ dtype: x.dtype, shape: [x.shape?.[0] ?? '?', 1, h] }] },
    );
    x = g.op1('Concat', [clsN, x], { axis: 1 });
  }
  x = g.op1('Add', [x, w.tensor(`${E}position_embedding.weight`)]);
  if (cfg.preLayerNorm)
    x = layerNorm(x, w.tensor(`${prefix}pre_layrnorm.weight`), w.tensor(`${prefix}pre_layrnorm.bias`), {
      epsilon: cfg.layerNormEps,
    });
  return x;
}

/** One pre-norm encoder layer (CLIPEncoderLayer / SiglipEncoderLayer). */
export function visionLayer(w: GraphWeights, cfg: VisionConfig, layerPrefix: string, x: Value): Value {
  const g = w.g;
  const L = layerPrefix;
  const H = cfg.numAttentionHeads;
  const d = cfg.headDim;
  const eps = cfg.layerNormEps;
  let y = layerNorm(x, w.tensor(`${L}layer_norm1.weight`), w.tensor(`${L}layer_norm1.bias`), { epsilon: eps });
  const q = splitHeads(g, w.linear(y, `${L}self_attn.q_proj`), H, d);
  const k = splitHeads(g, w.linear(y, `${L}self_attn.k_proj`), H, d);
  const v = splitHeads(g, w.linear(y, `${L}self_attn.v_proj`), H, d);
  const a = attention(q, k, v, { scale: 1 / Math.sqrt(d) }).out;
  x = g.op1('Add', [x, w.linear(mergeHeads(g, a, H, d), `${L}self_attn.out_proj`)]);
  y = layerNorm(x, w.tensor(`${L}layer_norm2.weight`), w.tensor(`${L}layer_norm2.bias`), { epsilon: eps });
  y = w.linear(activation(cfg.hiddenAct, w.linear(y, `${L}mlp.fc1`)), `${L}mlp.fc2`);
  return g.op1('Add', [x, y]);
}

/** The tower up to the last requested hidden state. `prefix` is e.g. "vision_tower.vision_model.". */
export function visionTower(
  w: GraphWeights,
  cfg: VisionConfig,
  prefix: string,
  pixelValues: Value,
  o: VisionTowerOptions = {},
): VisionTowerResult {
  const want = o.states ?? [cfg.numHiddenLayers];
  for (const i of want)
    if (!Number.isInteger(i) || i < 0 || i > cfg.numHiddenLayers)
      throw new Error(`vision tower: hidden state ${i} does not exist (0..${cfg.numHiddenLayers})`);
  const upTo = Math.max(...want);
  const states = new Map<number, Value>();
  let x = w.g.scope('vision/embeddings', () => visionEmbeddings(w, cfg, prefix, pixelValues));
  if (want.includes(0)) states.set(0, x);
  for (let l = 0; l < upTo; l++) {
    x = w.g.scope(`vision/layer${l}`, () => visionLayer(w, cfg, `${prefix}encoder.layers.${l}.`, x));
    if (want.includes(l + 1)) states.set(l + 1, x);
  }
  return { states, last: x };
}

/** CLIP's vision tower (CLIPVisionModel): hidden states as above. */
export const clipVisionTower = visionTower;
