// CLIPModel and SiglipModel as graphs: both towers, pooling, projections, normalized embeddings, the logits matrix
// and the contrastive loss, following transformers' modeling_clip.py / modeling_siglip.py.
//
//   CLIP:   image = visual_projection(post_layernorm(vision last_hidden_state[:, 0]))
//           text  = text_projection(final_layer_norm(text)[eos position])          (causal text attention)
//           logits_per_text = exp(logit_scale) * text_n @ image_n^T
//           loss = (CE(logits_per_text, arange) + CE(logits_per_image, arange)) / 2 (symmetric InfoNCE)
//   SigLIP: image = MAP head(post_layernorm(vision last_hidden_state))             (probe attention + LN + MLP)
//           text  = head(final_layer_norm(text)[:, -1])
//           logits_per_text = exp(logit_scale) * text_n @ image_n^T + logit_bias
//           loss = mean over texts of -sum_j log sigmoid(z_ij * logits_ij), z = +1 on the diagonal, -1 elsewhere
//
// Text i pairs with image i; every other image of the batch is a negative, so the loss depends on the batch size and
// a batch of one has no negatives (refused by the trainer). Accumulating micro-batches averages per-micro-batch
// losses: it does not add negatives across micro-batches.

import type { Value } from '../../../engine/graph/builder';
import { activation } from '../../../engine/ops/activations';
import { attention } from '../../../engine/ops/attention';
import { softmaxCrossEntropy } from '../../../engine/ops/loss';
import { layerNorm } from '../../../engine/ops/norm';
import type { GraphWeights } from '../../layers';
import { mergeHeads, splitHeads } from '../../layers';
import type { TensorSpec } from '../../weights/names';
import { visionTower } from '../../vision/clip-vit';
import { poolRows, textTower } from '../../text/clip-text';
import type { ContrastiveConfig } from './config';

export const VISION_PREFIX = 'vision_model.';
export const TEXT_PREFIX = 'text_model.';

function layerSpecs(prefix: string, n: number, h: number, inter: number): TensorSpec[] {
  const out: TensorSpec[] = [];
  for (let l = 0; l < n; l++) {
    const L = `${prefix}encoder.layers.${l}.`;
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj'])
      out.push({ name: `${L}self_attn.${p}.weight`, shape: [h, h] }, { name: `${L}self_attn.${p}.bias`, shape: [h] });
    out.push({ name: `${L}layer_norm1.weight`, shape: [h] }, { name: `${L}layer_norm1.bias`, shape: [h] });
    out.push({ name: `${L}mlp.fc1.weight`, shape: [inter, h] }, { name: `${L}mlp.fc1.bias`, shape: [inter] });
    out.push({ name: `${L}mlp.fc2.weight`, shape: [h, inter] }, { name: `${L}mlp.fc2.bias`, shape: [h] });
    out.push({ name: `${L}layer_norm2.weight`, shape: [h] }, { name: `${L}layer_norm2.bias`, shape: [h] });
  }
  return out;
}

/** Every tensor of a CLIPModel / SiglipModel checkpoint (the published names are the canonical ones). */
export function contrastiveTensors(c: ContrastiveConfig): TensorSpec[] {
  const v = c.vision;
  const t = c.text;
  const V = VISION_PREFIX;
  const T = TEXT_PREFIX;
  const clip = c.kind === 'clip';
  const out: TensorSpec[] = [
    { name: `${T}embeddings.token_embedding.weight`, shape: [t.vocabSize, t.hiddenSize] },
    { name: `${T}embeddings.position_embedding.weight`, shape: [t.maxPositionEmbeddings, t.hiddenSize] },
    ...layerSpecs(T, t.numHiddenLayers, t.hiddenSize, t.intermediateSize),
    { name: `${T}final_layer_norm.weight`, shape: [t.hiddenSize] },
    { name: `${T}final_layer_norm.bias`, shape: [t.hiddenSize] },
  ];
  if (clip) out.push({ name: `${V}embeddings.class_embedding`, shape: [v.hiddenSize] });
  out.push({
    name: `${V}embeddings.patch_embedding.weight`,
    shape: [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize],
  });
  if (!clip) out.push({ name: `${V}embeddings.patch_embedding.bias`, shape: [v.hiddenSize] });
  out.push({ name: `${V}embeddings.position_embedding.weight`, shape: [v.numPositions, v.hiddenSize] });
  if (clip)
    out.push(
      { name: `${V}pre_layrnorm.weight`, shape: [v.hiddenSize] },
      { name: `${V}pre_layrnorm.bias`, shape: [v.hiddenSize] },
    );
  out.push(...layerSpecs(V, v.numHiddenLayers, v.hiddenSize, v.intermediateSize));
  out.push(
    { name: `${V}post_layernorm.weight`, shape: [v.hiddenSize] },
    { name: `${V}post_layernorm.bias`, shape: [v.hiddenSize] },
  );
  if (clip) {
    out.push({ name: 'visual_projection.weight', shape: [c.projectionDim, v.hiddenSize] });
    out.push({ name: 'text_projection.weight', shape: [c.projectionDim, t.hiddenSize] });
    out.push({ name: 'logit_scale', shape: [] });
  } else {
    const h = v.hiddenSize;
    out.push(
      { name: `${V}head.probe`, shape: [1, 1, h] },
      { name: `${V}head.attention.in_proj_weight`, shape: [3 * h, h] },
      { name: `${V}head.attention.in_proj_bias`, shape: [3 * h] },
      { name: `${V}head.attention.out_proj.weight`, shape: [h, h] },
      { name: `${V}head.attention.out_proj.bias`, shape: [h] },
      { name: `${V}head.layernorm.weight`, shape: [h] },
      { name: `${V}head.layernorm.bias`, shape: [h] },
      { name: `${V}head.mlp.fc1.weight`, shape: [v.intermediateSize, h] },
      { name: `${V}head.mlp.fc1.bias`, shape: [v.intermediateSize] },
      { name: `${V}head.mlp.fc2.weight`, shape: [h, v.intermediateSize] },
      { name: `${V}head.mlp.fc2.bias`, shape: [h] },
      { name: `${T}head.weight`, shape: [t.projectionSize, t.hiddenSize] },
      { name: `${T}head.bias`, shape: [t.projectionSize] },
      { name: 'logit_scale', shape: [1] },
      { name: 'logit_bias', shape: [1] },
    );
  }
  return out;
}

/** Stored name -> canonical name; null for buffers transformers keeps in old checkpoints (position_ids). */
export function contrastiveCanonicalName(stored: string): string | null {
  if (/^(text_model|vision_model)\.embeddings\.position_ids$/.test(stored)) return null;
  return stored;
}

/** LoRA target regex (PEFT target_modules) of the towers' attention projections. */
export function contrastiveLoraModules(
  c: ContrastiveConfig,
  towers: 'text' | 'vision' | 'both',
  projections: readonly string[] = ['q_proj', 'k_proj', 'v_proj', 'out_proj'],
): string[] {
  const out: string[] = [];
  const add = (prefix: string, n: number) => {
    for (let l = 0; l < n; l++) for (const p of projections) out.push(`${prefix}encoder.layers.${l}.self_attn.${p}`);
  };
  if (towers !== 'vision') add(TEXT_PREFIX, c.text.numHiddenLayers);
  if (towers !== 'text') add(VISION_PREFIX, c.vision.numHiddenLayers);
  return out;
}

/** The modules the 'projections' method trains (PEFT modules_to_save; logit_scale / logit_bias are bare parameters
 *  PEFT cannot save, so they stay frozen). */
export function contrastiveProjectionModules(c: ContrastiveConfig): string[] {
  return c.kind === 'clip' ? ['visual_projection', 'text_projection'] : [`${TEXT_PREFIX}head`, `${VISION_PREFIX}head`];
}

/** Every tensor of those modules. */
export function contrastiveProjectionTensors(c: ContrastiveConfig): TensorSpec[] {
  const mods = contrastiveProjectionModules(c);
  return contrastiveTensors(c).filter((s) => mods.some((m) => s.name.startsWith(`${m}.`)));
}

function l2normalize(w: GraphWeights, x: Value): Value {
  const g = w.g;
  const n = g.op1('Sqrt', [g.op1('ReduceSum', [g.op1('Mul', [x, x]), g.ints([-1])], { keepdims: 1 })]);
  return g.op1('Div', [x, n]);
}

/** SigLIP's multi-head attention pooling head (SiglipMultiheadAttentionPoolingHead) of [N, P, D] -> [N, D]. */
function mapHead(w: GraphWeights, c: ContrastiveConfig, x: Value): Value {
  const g = w.g;
  const v = c.vision;
  const h = v.hiddenSize;
  const H = v.numAttentionHeads;
  const d = h / H;
  const P = `${VISION_PREFIX}head.`;
  const target = g.op1('Concat', [g.op1('Shape', [x], { end: 1 }), g.ints([1, h])], { axis: 0 });
  const probe = g.op1(
    'Expand',
    [w.tensor(`${P}probe`), target],
    {},
    { outTypes: [{ dtype: w.dtype, shape: [x.shape?.[0] ?? 'N', 1, h] }] },
  );
  const W = w.tensor(`${P}attention.in_proj_weight`);
  const b = w.tensor(`${P}attention.in_proj_bias`);
  const proj = (inp: Value, i: number) => {
    const wi = g.op1(
      'Slice',
      [W, g.ints([i * h]), g.ints([(i + 1) * h]), g.ints([0])],
      {},
      { outTypes: [{ dtype: w.dtype, shape: [h, h] }] },
    );
    const bi = g.op1(
      'Slice',
      [b, g.ints([i * h]), g.ints([(i + 1) * h]), g.ints([0])],
      {},
      { outTypes: [{ dtype: w.dtype, shape: [h] }] },
    );
    return g.op1('Add', [g.op1('MatMul', [inp, g.op1('Transpose', [wi], { perm: [1, 0] })]), bi]);
  };
  const q = splitHeads(g, proj(probe, 0), H, d);
  const k = splitHeads(g, proj(x, 1), H, d);
  const vv = splitHeads(g, proj(x, 2), H, d);
  const a = attention(q, k, vv, { scale: 1 / Math.sqrt(d) }).out;
  let y = w.linear(mergeHeads(g, a, H, d), `${P}attention.out_proj`);
  const r = y;
  y = layerNorm(y, w.tensor(`${P}layernorm.weight`), w.tensor(`${P}layernorm.bias`), { epsilon: v.layerNormEps });
  y = g.op1('Add', [r, w.linear(activation(v.hiddenAct, w.linear(y, `${P}mlp.fc1`)), `${P}mlp.fc2`)]);
  return g.op1('Reshape', [y, g.ints([-1, h])]);
}

/** Image embeddings before normalization [N, projectionDim] of pixel_values [N, 3, S, S]. */
export function imageEmbeds(w: GraphWeights, c: ContrastiveConfig, pixelValues: Value): Value {
  const g = w.g;
  const v = c.vision;
  const last = visionTower(w, v, VISION_PREFIX, pixelValues).last;
  const ln = (x: Value) =>
    layerNorm(x, w.tensor(`${VISION_PREFIX}post_layernorm.weight`), w.tensor(`${VISION_PREFIX}post_layernorm.bias`), {
      epsilon: v.layerNormEps,
    });
  if (c.kind === 'clip') {
    const cls = g.op1('Reshape', [
      g.op1('Slice', [last, g.ints([0]), g.ints([1]), g.ints([1])]),
      g.ints([-1, v.hiddenSize]),
    ]);
    return w.linear(ln(cls), 'visual_projection');
  }
  return g.scope('vision/head', () => mapHead(w, c, ln(last)));
}

/** Text embeddings before normalization [B, projectionDim] of input_ids [B, T] pooled at poolIndex [B] (flat). */
export function textEmbeds(w: GraphWeights, c: ContrastiveConfig, inputIds: Value, poolIndex: Value): Value {
  const hidden = textTower(w, c.text, TEXT_PREFIX, inputIds, { causal: c.kind === 'clip' });
  const pooled = poolRows(w, hidden, poolIndex, c.text.hiddenSize);
  return c.kind === 'clip' ? w.linear(pooled, 'text_projection') : w.linear(pooled, `${TEXT_PREFIX}head`);
}

export interface ContrastiveOutputs {
  /** normalized [N, E] */
  imageEmbeds: Value;
  /** normalized [B, E] */
  textEmbeds: Value;
  /** [B, N] */
  logitsPerText: Value;
  /** [N, B] */
  logitsPerImage: Value;
}

/** logits of normalized embeddings as CLIPModel / SiglipModel compute them. */
export function contrastiveLogits(
  w: GraphWeights,
  c: ContrastiveConfig,
  image: Value,
  text: Value,
): ContrastiveOutputs {
  const g = w.g;
  const img = l2normalize(w, image);
  const txt = l2normalize(w, text);
  let logits = g.op1('Mul', [
    g.op1('MatMul', [txt, g.op1('Transpose', [img], { perm: [1, 0] })]),
    g.op1('Exp', [w.tensor('logit_scale')]),
  ]);
  if (c.kind === 'siglip') logits = g.op1('Add', [logits, w.tensor('logit_bias')]);
  return {
    imageEmbeds: img,
    textEmbeds: txt,
    logitsPerText: logits,
    logitsPerImage: g.op1('Transpose', [logits], { perm: [1, 0] }),
  };
}

/** The contrastive loss of a paired batch (text i <-> image i): CLIP's symmetric InfoNCE or SigLIP's sigmoid loss. */
export function contrastiveLoss(w: GraphWeights, c: ContrastiveConfig, o: ContrastiveOutputs): Value {
  const g = w.g;
  const lt = o.logitsPerText;
  const n = g.op1('Shape', [lt], { start: 0, end: 1 });
  const idx = g.op1(
    'Range',
    [
      g.constant(new BigInt64Array([0n]), 'int64', []),
      g.op1('Squeeze', [n, g.ints([0])]),
      g.constant(new BigInt64Array([1n]), 'int64', []),
    ],
    {},
    { outTypes: [{ dtype: 'int64', shape: [lt.shape?.[0] ?? 'B'] }] },
  );
  if (c.kind === 'clip') {
    const a = softmaxCrossEntropy(lt, idx).loss;
    const b = softmaxCrossEntropy(o.logitsPerImage, idx).loss;
    return g.op1('Mul', [g.op1('Add', [a, b]), g.scalar(0.5, w.dtype)]);
  }
  // labels = 2 * eye - 1; loss = -sum_j logsigmoid(labels * logits) per text, mean over texts
  const eq = g.op1('Equal', [g.op1('Unsqueeze', [idx, g.ints([1])]), g.op1('Unsqueeze', [idx, g.ints([0])])]);
  const eye = g.op1('Cast', [eq], { to: w.dtype === 'float64' ? 11 : 1 });
  const z = g.op1('Mul', [lt, g.op1('Sub', [g.op1('Mul', [eye, g.scalar(2, w.dtype)]), g.scalar(1, w.dtype)])]);
  // logsigmoid(z) = min(z, 0) - log(1 + exp(-|z|)), finite for any z
  const neg = g.op1('Less', [z, g.scalar(0, w.dtype)]);
  const minz = g.op1('Where', [neg, z, g.scalar(0, w.dtype)]);
  const negAbs = g.op1('Where', [neg, z, g.op1('Neg', [z])]);
  const ls = g.op1('Sub', [minz, g.op1('Log', [g.op1('Add', [g.scalar(1, w.dtype), g.op1('Exp', [negAbs])])])]);
  const nll = g.op1('Neg', [g.op1('ReduceSum', [ls, g.ints([-1])], { keepdims: 0 })]);
  return g.op1('ReduceMean', [nll, g.ints([0])], { keepdims: 0 });
}
