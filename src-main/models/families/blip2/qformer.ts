// BLIP-2's Q-Former (transformers' Blip2QFormerModel as Blip2ForConditionalGeneration runs it, query tokens only):
//   x = layernorm(query_tokens)                                       [N, Q, D] (the same learned queries per image)
//   layer l: self-attention (attention.attention.{query,key,value}, attention.output.{dense,LayerNorm}, post-LN)
//            -> cross-attention to the image (crossattention.*, keys/values from the vision states of width
//               encoder_hidden_size) when l % cross_attention_frequency == 0
//            -> the query feed-forward (intermediate_query.dense -> act -> output_query.{dense,LayerNorm}, post-LN)
//   then language_projection: [N, Q, D] -> [N, Q, text hidden].
// No attention masks: every query sees every query and every image token. The layers' text-path feed-forward
// (intermediate / output) never runs for captioning and is not in the published checkpoints (LAVIS drops it).
import type { Value } from '../../../engine/graph/builder';
import { layerNorm } from '../../../engine/ops/norm';
import type { GraphWeights } from '../../layers';
import { bertAttention, bertFeedForward, bertLayerTensors, type BertBlockConfig } from '../../text/bert';
import type { TensorSpec } from '../../weights/names';
import type { QFormerConfig } from './config';

const QUERY_FFN = { intermediate: 'intermediate_query', output: 'output_query' } as const;
/** Blip2QFormerAttention holds its projections in `.attention.` (BERT's `.self.`). */
const INNER = 'attention';

function block(q: QFormerConfig): BertBlockConfig {
  return {
    hiddenSize: q.hiddenSize,
    numAttentionHeads: q.numAttentionHeads,
    intermediateSize: q.intermediateSize,
    hiddenAct: q.hiddenAct,
    layerNormEps: q.layerNormEps,
    encoderHiddenSize: q.encoderHiddenSize,
  };
}

export function hasCrossAttention(q: QFormerConfig, layer: number): boolean {
  return layer % q.crossAttentionFrequency === 0;
}

/** query_tokens, qformer.* and language_projection.* with their shapes. */
export function qformerTensors(q: QFormerConfig, numQueryTokens: number, textHidden: number): TensorSpec[] {
  const D = q.hiddenSize;
  const out: TensorSpec[] = [
    { name: 'query_tokens', shape: [1, numQueryTokens, D] },
    { name: 'qformer.layernorm.weight', shape: [D] },
    { name: 'qformer.layernorm.bias', shape: [D] },
  ];
  for (let l = 0; l < q.numHiddenLayers; l++)
    out.push(
      ...bertLayerTensors(block(q), `qformer.encoder.layer.${l}.`, {
        crossAttention: hasCrossAttention(q, l),
        ffn: QUERY_FFN,
        inner: INNER,
      }),
    );
  out.push(
    { name: 'language_projection.weight', shape: [textHidden, D] },
    { name: 'language_projection.bias', shape: [textHidden] },
  );
  return out;
}

/** Projected query outputs [N, Q, text hidden] of the vision states [N, T, encoder_hidden_size]. */
export function qformerFeatures(w: GraphWeights, q: QFormerConfig, numQueryTokens: number, image: Value): Value {
  const g = w.g;
  const c = block(q);
  const D = q.hiddenSize;
  let x = g.scope('qformer/embeddings', () => {
    const tokens = layerNorm(
      w.tensor('query_tokens'),
      w.tensor('qformer.layernorm.weight'),
      w.tensor('qformer.layernorm.bias'),
      { epsilon: q.layerNormEps },
    );
    // one copy of the queries per image: [1, Q, D] -> [N, Q, D]
    const target = g.op1('Concat', [g.op1('Shape', [image], { end: 1 }), g.ints([numQueryTokens, D])], { axis: 0 });
    return g.op1(
      'Expand',
      [tokens, target],
      {},
      { outTypes: [{ dtype: tokens.dtype, shape: [image.shape?.[0] ?? '?', numQueryTokens, D] }] },
    );
  });
  for (let l = 0; l < q.numHiddenLayers; l++) {
    const L = `qformer.encoder.layer.${l}.`;
    x = g.scope(`qformer/layer${l}`, () => {
      let h = bertAttention(w, c, `${L}attention.`, x, { inner: INNER });
      if (hasCrossAttention(q, l)) h = bertAttention(w, c, `${L}crossattention.`, h, { kv: image, inner: INNER });
      return bertFeedForward(w, c, L, h, QUERY_FFN);
    });
  }
  return g.scope('language_projection', () => w.linear(x, 'language_projection'));
}
