// The text towers of CLIP and SigLIP as transformers' CLIPTextTransformer / SiglipTextTransformer compute them:
// token + absolute position embeddings, pre-norm encoder layers (the same layer as the ViT's), final_layer_norm.
// CLIP masks attention causally; SigLIP attends over the whole (max_length-padded) text without a mask, as its
// processor and training use it.
//
// Pooling reads one row per text through `poolIndex` (int64 [B], flat index b * T + t into [B*T, D]); the caller
// computes t as transformers does (contrastive/model.ts textPoolPositions): CLIP's EOS rule, SigLIP's last position.
// With a causal mask the positions after the pooled one cannot change it, so CLIP needs no padding mask either.

import type { Value } from '../../engine/graph/builder';
import { activation } from '../../engine/ops/activations';
import { attention } from '../../engine/ops/attention';
import { layerNorm } from '../../engine/ops/norm';
import type { ContrastiveTextConfig } from '../families/contrastive/config';
import { mergeHeads, splitHeads, type GraphWeights } from '../layers';

export interface TextTowerOptions {
  causal: boolean;
}

/** last_hidden_state [B, T, D] (after final_layer_norm) of input_ids [B, T]; prefix e.g. "text_model.". */
export function textTower(
  w: GraphWeights,
  t: ContrastiveTextConfig,
  prefix: string,
  inputIds: Value,
  o: TextTowerOptions,
): Value {
  const g = w.g;
  const E = `${prefix}embeddings.`;
  let x = g.op1('Gather', [w.tensor(`${E}token_embedding.weight`), inputIds], { axis: 0 });
  // position_ids = arange(T), gathered (a Gather has a gradient rule for any index; a Slice needs constant bounds)
  const len = g.op1('Squeeze', [g.op1('Shape', [inputIds], { start: 1, end: 2 }), g.ints([0])]);
  const positions = g.op1(
    'Range',
    [g.constant(new BigInt64Array([0n]), 'int64', []), len, g.constant(new BigInt64Array([1n]), 'int64', [])],
    {},
    { outTypes: [{ dtype: 'int64', shape: [inputIds.shape?.[1] ?? 'T'] }] },
  );
  const pos = g.op1('Gather', [w.tensor(`${E}position_embedding.weight`), positions], { axis: 0 });
  x = g.op1('Add', [x, pos]);
  const H = t.numAttentionHeads;
  const d = t.headDim;
  for (let l = 0; l < t.numHiddenLayers; l++) {
    const L = `${prefix}encoder.layers.${l}.`;
    x = g.scope(`text/layer${l}`, () => {
      let y = layerNorm(x, w.tensor(`${L}layer_norm1.weight`), w.tensor(`${L}layer_norm1.bias`), {
        epsilon: t.layerNormEps,
      });
      const q = splitHeads(g, w.linear(y, `${L}self_attn.q_proj`), H, d);
      const k = splitHeads(g, w.linear(y, `${L}self_attn.k_proj`), H, d);
      const v = splitHeads(g, w.linear(y, `${L}self_attn.v_proj`), H, d);
      const a = attention(q, k, v, { scale: 1 / Math.sqrt(d), causal: o.causal }).out;
      let h = g.op1('Add', [x, w.linear(mergeHeads(g, a, H, d), `${L}self_attn.out_proj`)]);
      y = layerNorm(h, w.tensor(`${L}layer_norm2.weight`), w.tensor(`${L}layer_norm2.bias`), {
        epsilon: t.layerNormEps,
      });
      y = w.linear(activation(t.hiddenAct, w.linear(y, `${L}mlp.fc1`)), `${L}mlp.fc2`);
      h = g.op1('Add', [h, y]);
      return h;
    });
  }
  return layerNorm(x, w.tensor(`${prefix}final_layer_norm.weight`), w.tensor(`${prefix}final_layer_norm.bias`), {
    epsilon: t.layerNormEps,
  });
}

/** Rows of [B, T, D] at flat indices poolIndex [B] -> [B, D]. */
export function poolRows(w: GraphWeights, hidden: Value, poolIndex: Value, dim: number): Value {
  const g = w.g;
  const flat = g.op1('Reshape', [hidden, g.ints([-1, dim])]);
  return g.op1('Gather', [flat, poolIndex], { axis: 0 });
}
