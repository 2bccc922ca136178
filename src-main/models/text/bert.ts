// Post-LN BERT blocks as transformers' BERT-style modules compute them (BlipTextLayer in modeling_blip_text.py, and
// Blip2QFormerLayer, which adds a second feed-forward for the query tokens):
//   attention:    o = LayerNorm(output.dense(softmax(q k^T / sqrt(d) + mask) v) + x), with q from x and k/v from x
//                 (self) or from encoder_hidden_states (cross-attention; key/value take encoder_hidden_size inputs)
//   feed-forward: LayerNorm(output.dense(act(intermediate.dense(x))) + x)
//   layer:        self-attention -> [cross-attention] -> feed-forward
// Module names are transformers': `<layer>attention.self.{query,key,value}`, `<layer>attention.output.{dense,LayerNorm}`,
// `<layer>crossattention.*`, `<layer>intermediate.dense`, `<layer>output.{dense,LayerNorm}`, so PEFT targets such as
// "query" / "key" / "value" match them by suffix. Masks are 0/1 attention masks [B, L] (padding; an all-ones mask can
// be left out) turned into additive ones by the Attention op helper; transformers adds (1 - m) * -10000, which gives
// the same probabilities wherever a row keeps one key. Dropout is off (these models train with p = 0 here).
// The embeddings (word + absolute position [+ token type], LayerNorm) and the MLM head (`cls.predictions`:
// transform dense -> act -> LayerNorm, decoder + bias) are here too.

import type { Value } from '../../engine/graph/builder';
import { activation } from '../../engine/ops/activations';
import { attention } from '../../engine/ops/attention';
import { layerNorm } from '../../engine/ops/norm';
import { mergeHeads, splitHeads, type GraphWeights } from '../layers';

export interface BertBlockConfig {
  hiddenSize: number;
  numAttentionHeads: number;
  intermediateSize: number;
  hiddenAct: string;
  layerNormEps: number;
  /** width of encoder_hidden_states for cross-attention (default hiddenSize) */
  encoderHiddenSize?: number;
}

export interface BertAttentionOptions {
  /** cross-attention: keys/values from these states [B, L, encoderHiddenSize] */
  kv?: Value | null;
  /** 0/1 mask over the keys [B, L] */
  mask?: Value | null;
  /** causal self-attention (decoders) */
  causal?: boolean;
  /** the submodule holding query/key/value: "self" (BERT, BLIP), "attention" (BLIP-2's Q-Former) */
  inner?: string;
}

/** BertAttention (self + output) under `prefix` (e.g. "encoder.layer.0.attention." or "...crossattention."). */
export function bertAttention(
  w: GraphWeights,
  c: BertBlockConfig,
  prefix: string,
  x: Value,
  o: BertAttentionOptions = {},
): Value {
  const g = w.g;
  const H = c.numAttentionHeads;
  if (c.hiddenSize % H !== 0)
    throw new Error(`BERT block: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${H}`);
  const d = c.hiddenSize / H;
  const src = o.kv ?? x;
  const S = `${prefix}${o.inner ?? 'self'}.`;
  const q = splitHeads(g, w.linear(x, `${S}query`), H, d);
  const k = splitHeads(g, w.linear(src, `${S}key`), H, d);
  const v = splitHeads(g, w.linear(src, `${S}value`), H, d);
  const a = attention(q, k, v, { scale: 1 / Math.sqrt(d), mask: o.mask ?? null, causal: !!o.causal }).out;
  const y = w.linear(mergeHeads(g, a, H, d), `${prefix}output.dense`);
  return layerNorm(
    g.op1('Add', [y, x]),
    w.tensor(`${prefix}output.LayerNorm.weight`),
    w.tensor(`${prefix}output.LayerNorm.bias`),
    { epsilon: c.layerNormEps },
  );
}

export interface BertFeedForwardNames {
  /** default "intermediate" (Q-Former query tokens: "intermediate_query") */
  intermediate?: string;
  /** default "output" (Q-Former query tokens: "output_query") */
  output?: string;
}

/** BertIntermediate + BertOutput under the layer prefix. */
export function bertFeedForward(
  w: GraphWeights,
  c: BertBlockConfig,
  layerPrefix: string,
  x: Value,
  n: BertFeedForwardNames = {},
): Value {
  const g = w.g;
  const I = `${layerPrefix}${n.intermediate ?? 'intermediate'}.`;
  const O = `${layerPrefix}${n.output ?? 'output'}.`;
  const h = activation(c.hiddenAct, w.linear(x, `${I}dense`));
  const y = w.linear(h, `${O}dense`);
  return layerNorm(g.op1('Add', [y, x]), w.tensor(`${O}LayerNorm.weight`), w.tensor(`${O}LayerNorm.bias`), {
    epsilon: c.layerNormEps,
  });
}

export interface BertLayerOptions {
  /** self-attention 0/1 key mask [B, S] */
  mask?: Value | null;
  causal?: boolean;
  /** when given, the layer cross-attends to these states ("crossattention.") */
  encoderHidden?: Value | null;
  encoderMask?: Value | null;
  ffn?: BertFeedForwardNames;
}

/** One post-LN layer: self-attention, optional cross-attention, feed-forward. */
export function bertLayer(
  w: GraphWeights,
  c: BertBlockConfig,
  layerPrefix: string,
  x: Value,
  o: BertLayerOptions = {},
): Value {
  let h = bertAttention(w, c, `${layerPrefix}attention.`, x, { mask: o.mask, causal: o.causal });
  if (o.encoderHidden)
    h = bertAttention(w, c, `${layerPrefix}crossattention.`, h, { kv: o.encoderHidden, mask: o.encoderMask });
  return bertFeedForward(w, c, layerPrefix, h, o.ffn);
}

export interface BertLayerTensorOptions {
  crossAttention?: boolean;
  /** see BertAttentionOptions.inner */
  inner?: string;
  ffn?: BertFeedForwardNames;
}

/** Tensors of one layer (names and shapes), for a family's tensor list. */
export function bertLayerTensors(
  c: BertBlockConfig,
  layerPrefix: string,
  o: BertLayerTensorOptions = {},
): { name: string; shape: number[] }[] {
  const D = c.hiddenSize;
  const E = c.encoderHiddenSize ?? D;
  const out: { name: string; shape: number[] }[] = [];
  const S = o.inner ?? 'self';
  const attn = (p: string, kvIn: number) => {
    out.push(
      { name: `${p}${S}.query.weight`, shape: [D, D] },
      { name: `${p}${S}.query.bias`, shape: [D] },
      { name: `${p}${S}.key.weight`, shape: [D, kvIn] },
      { name: `${p}${S}.key.bias`, shape: [D] },
      { name: `${p}${S}.value.weight`, shape: [D, kvIn] },
      { name: `${p}${S}.value.bias`, shape: [D] },
      { name: `${p}output.dense.weight`, shape: [D, D] },
      { name: `${p}output.dense.bias`, shape: [D] },
      { name: `${p}output.LayerNorm.weight`, shape: [D] },
      { name: `${p}output.LayerNorm.bias`, shape: [D] },
    );
  };
  attn(`${layerPrefix}attention.`, D);
  if (o.crossAttention) attn(`${layerPrefix}crossattention.`, E);
  const I = `${layerPrefix}${o.ffn?.intermediate ?? 'intermediate'}.`;
  const O = `${layerPrefix}${o.ffn?.output ?? 'output'}.`;
  out.push(
    { name: `${I}dense.weight`, shape: [c.intermediateSize, D] },
    { name: `${I}dense.bias`, shape: [c.intermediateSize] },
    { name: `${O}dense.weight`, shape: [D, c.intermediateSize] },
    { name: `${O}dense.bias`, shape: [D] },
    { name: `${O}LayerNorm.weight`, shape: [D] },
    { name: `${O}LayerNorm.bias`, shape: [D] },
  );
  return out;
}

export interface BertEmbeddingOptions {
  /** int64 positions [B, S] or [S]; default arange(S) (+ `pastLength`) */
  positionIds?: Value | null;
  /** token_type_embeddings row 0 added (BERT proper; BLIP's text model has none) */
  tokenType?: boolean;
}

/** LayerNorm(word_embeddings[ids] + position_embeddings[positions] [+ token_type_embeddings[0]]); prefix "...embeddings.". */
export function bertEmbeddings(
  w: GraphWeights,
  c: BertBlockConfig,
  prefix: string,
  inputIds: Value,
  o: BertEmbeddingOptions = {},
): Value {
  const g = w.g;
  let x = w.embedding(`${prefix}word_embeddings.weight`, inputIds);
  let pos = o.positionIds ?? null;
  if (!pos) {
    const len = g.op1('Squeeze', [g.op1('Shape', [inputIds], { start: 1, end: 2 }), g.ints([0])]);
    pos = g.op1(
      'Range',
      [g.constant(0, 'int64', []), len, g.constant(1, 'int64', [])],
      {},
      { outTypes: [{ dtype: 'int64', shape: [inputIds.shape?.[1] ?? 'S'] }] },
    );
  }
  x = g.op1('Add', [x, g.op1('Gather', [w.tensor(`${prefix}position_embeddings.weight`), pos], { axis: 0 })]);
  if (o.tokenType) {
    const row = g.op1('Gather', [w.tensor(`${prefix}token_type_embeddings.weight`), g.constant(0, 'int64', [])], {
      axis: 0,
    });
    x = g.op1('Add', [x, row]);
  }
  return layerNorm(x, w.tensor(`${prefix}LayerNorm.weight`), w.tensor(`${prefix}LayerNorm.bias`), {
    epsilon: c.layerNormEps,
  });
}

/**
 * BertOnlyMLMHead / BlipTextOnlyMLMHead: logits [N, V] of hidden [N, D] under `prefix` ("cls.predictions."):
 * decoder(LayerNorm(act(transform.dense(h)))) + bias. `decoderWeight` names the [V, D] table (the stored
 * `cls.predictions.decoder.weight`, or the word embeddings when tied).
 */
export function bertLmHead(
  w: GraphWeights,
  c: BertBlockConfig,
  prefix: string,
  h: Value,
  vocab: number,
  decoderWeight = `${prefix}decoder.weight`,
): Value {
  const g = w.g;
  let t = activation(c.hiddenAct, w.linear(h, `${prefix}transform.dense`));
  t = layerNorm(t, w.tensor(`${prefix}transform.LayerNorm.weight`), w.tensor(`${prefix}transform.LayerNorm.bias`), {
    epsilon: c.layerNormEps,
  });
  return g.op1('Add', [w.head(t, decoderWeight, vocab), w.tensor(`${prefix}bias`)]);
}
