// OPT decoder (OPTForCausalLM as transformers' modeling_opt.py computes it), the language model of BLIP-2 OPT:
// token embeddings plus learned absolute positions
// (embed_positions has max_position_embeddings + 2 rows: position p reads row p + 2, OPTLearnedPositionalEmbedding's
// offset), then layers of
//   pre-LN (do_layer_norm_before): x + out_proj(attn(self_attn_layer_norm(x)));  x + fc2(act(fc1(final_layer_norm(x))))
//   post-LN (opt-350m):           LN(x + out_proj(attn(x)));                   LN(x + fc2(act(fc1(x))))
// with q/k/v/out_proj and fc1/fc2 carrying biases (enable_bias), ReLU by default, then the decoder's
// final_layer_norm (pre-LN models without _remove_final_layer_norm) and lm_head (tied to embed_tokens unless
// tie_word_embeddings is false). word_embed_proj_dim other than hidden_size (opt-350m's project_in / project_out)
// is refused when the config is read. Attention: scale 1/sqrt(head_dim) (OPT multiplies q by it), causal + padding.
//
// Positions are the decoder inputs' `positions` (cumsum(attention_mask) - 1 over past + new, llava.ts / generate.ts),
// so a KV-cache decode step reads the row of its absolute position; OPT writes -1 at padded slots where
// positionsFromMask writes 1, which changes only the padded rows themselves (masked out as keys everywhere).
//
// Names under the prefix ("model.decoder." for OPTForCausalLM, "language_model.model.decoder." inside BLIP-2):
// embed_tokens, embed_positions, layers.N.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm,
// fc1, fc2, final_layer_norm}, final_layer_norm; the head is the layout's lmHead ("lm_head.weight").

import type { Value } from '../../engine/graph/builder';
import { activation } from '../../engine/ops/activations';
import { attention } from '../../engine/ops/attention';
import { layerNorm } from '../../engine/ops/norm';
import { Reader, type TextConfig } from '../config';
import { mergeHeads, splitHeads, type GraphWeights } from '../layers';
import type { TensorSpec } from '../weights/names';
import {
  decoderLogits,
  type DecoderInputs,
  type DecoderNames,
  type DecoderOptions,
  type DecoderResult,
  type KvPair,
} from './llama';

/** OPT's own config fields (TextConfig.opt). */
export interface OptOptions {
  /** pre-LN blocks (every published OPT but 350m) */
  layerNormBefore: boolean;
  /** the decoder's final_layer_norm exists (pre-LN and not _remove_final_layer_norm) */
  finalLayerNorm: boolean;
  /** q/k/v/out_proj and fc1/fc2 biases */
  enableBias: boolean;
  layerNormEps: number;
  /** embed_positions row of position 0 */
  positionOffset: number;
}

/** OPTConfig's defaults (configuration_opt.py) for a config.json object; `r` is the model's (or text_config's) reader. */
export function parseOpt(r: Reader): TextConfig {
  const hiddenSize = r.int('hidden_size', 768);
  const numAttentionHeads = r.int('num_attention_heads', 12);
  if (hiddenSize % numAttentionHeads !== 0)
    r.err('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
  const layerNormBefore = r.bool('do_layer_norm_before', true);
  if (!r.bool('layer_norm_elementwise_affine', true))
    r.err('layer_norm_elementwise_affine', 'layer norms without weights are not supported');
  if (r.has('word_embed_proj_dim') && r.int('word_embed_proj_dim') !== hiddenSize)
    r.err(
      'word_embed_proj_dim',
      `${r.obj.word_embed_proj_dim} differs from hidden_size ${hiddenSize} (project_in / project_out, as in opt-350m, are not supported)`,
    );
  const eos = r.obj.eos_token_id === undefined ? 2 : r.obj.eos_token_id;
  let eosTokenIds: number[];
  if (eos === null) eosTokenIds = [];
  else if (typeof eos === 'number' && Number.isInteger(eos)) eosTokenIds = [eos];
  else if (Array.isArray(eos) && eos.every((x) => Number.isInteger(x))) eosTokenIds = eos as number[];
  else r.err('eos_token_id', `must be an integer, a list of integers or null, got ${JSON.stringify(eos)}`);
  const act = r.str('activation_function', 'relu');
  // OPTConfig names it activation_function; r.act validates the name against the supported set
  const hiddenAct = new Reader(r.file, { activation_function: act }, r.path).act('activation_function', 'relu');
  return {
    modelType: 'opt',
    vocabSize: r.int('vocab_size', 50272),
    hiddenSize,
    intermediateSize: r.int('ffn_dim', 3072),
    numHiddenLayers: r.int('num_hidden_layers', 12),
    numAttentionHeads,
    numKeyValueHeads: numAttentionHeads,
    headDim: hiddenSize / numAttentionHeads,
    hiddenAct,
    maxPositionEmbeddings: r.int('max_position_embeddings', 2048),
    rmsNormEps: 1e-5,
    rope: { theta: 10000, type: 'default', factor: 1 },
    qkvBias: r.bool('enable_bias', true),
    oBias: r.bool('enable_bias', true),
    mlpBias: r.bool('enable_bias', true),
    tieWordEmbeddings: r.bool('tie_word_embeddings', true),
    bosTokenId: r.intOrNull('bos_token_id', 2),
    eosTokenIds,
    padTokenId: r.intOrNull('pad_token_id', 1),
    opt: {
      layerNormBefore,
      finalLayerNorm: layerNormBefore && !r.bool('_remove_final_layer_norm', false),
      enableBias: r.bool('enable_bias', true),
      layerNormEps: 1e-5,
      positionOffset: 2,
    },
  };
}

function optOf(t: TextConfig): OptOptions {
  if (!t.opt) throw new Error(`decoder: a ${t.modelType} config has no OPT fields`);
  return t.opt;
}

/** config.json fields of an OPT text model, explicit. */
export function optToHf(t: TextConfig): Record<string, unknown> {
  const o = optOf(t);
  return {
    model_type: 'opt',
    vocab_size: t.vocabSize,
    hidden_size: t.hiddenSize,
    ffn_dim: t.intermediateSize,
    num_hidden_layers: t.numHiddenLayers,
    num_attention_heads: t.numAttentionHeads,
    activation_function: t.hiddenAct,
    max_position_embeddings: t.maxPositionEmbeddings,
    do_layer_norm_before: o.layerNormBefore,
    _remove_final_layer_norm: o.layerNormBefore && !o.finalLayerNorm,
    word_embed_proj_dim: t.hiddenSize,
    enable_bias: o.enableBias,
    layer_norm_elementwise_affine: true,
    tie_word_embeddings: t.tieWordEmbeddings,
    bos_token_id: t.bosTokenId,
    eos_token_id: t.eosTokenIds.length === 1 ? t.eosTokenIds[0] : t.eosTokenIds.length === 0 ? null : t.eosTokenIds,
    pad_token_id: t.padTokenId,
    dropout: 0.1,
    attention_dropout: 0.0,
    use_cache: true,
  };
}

/** OPTDecoder parameters under `prefix` ("model.decoder."), plus lm_head unless tied. */
export function optTensors(t: TextConfig, prefix: string, lmHeadName: string): TensorSpec[] {
  const o = optOf(t);
  const h = t.hiddenSize;
  const out: TensorSpec[] = [
    { name: `${prefix}embed_tokens.weight`, shape: [t.vocabSize, h] },
    { name: `${prefix}embed_positions.weight`, shape: [t.maxPositionEmbeddings + o.positionOffset, h] },
  ];
  const lin = (name: string, n: number, m: number) => {
    out.push({ name: `${name}.weight`, shape: [n, m] });
    if (o.enableBias) out.push({ name: `${name}.bias`, shape: [n] });
  };
  const ln = (name: string) => {
    out.push({ name: `${name}.weight`, shape: [h] });
    out.push({ name: `${name}.bias`, shape: [h] });
  };
  for (let l = 0; l < t.numHiddenLayers; l++) {
    const L = `${prefix}layers.${l}.`;
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) lin(`${L}self_attn.${p}`, h, h);
    ln(`${L}self_attn_layer_norm`);
    lin(`${L}fc1`, t.intermediateSize, h);
    lin(`${L}fc2`, h, t.intermediateSize);
    ln(`${L}final_layer_norm`);
  }
  if (o.finalLayerNorm) ln(`${prefix}final_layer_norm`);
  if (!t.tieWordEmbeddings) out.push({ name: lmHeadName, shape: [t.vocabSize, h] });
  return out;
}

/** One OPTDecoderLayer; returns the new hidden states and its present k/v (past + new, or the new ones alone). */
export function optLayer(
  w: GraphWeights,
  cfg: TextConfig,
  L: string,
  x: Value,
  mask: Value,
  past: KvPair | null,
): { x: Value; present: KvPair } {
  const g = w.g;
  const o = optOf(cfg);
  const H = cfg.numAttentionHeads;
  const d = cfg.headDim;
  const bias = o.enableBias;
  const ln = (v: Value, name: string) =>
    layerNorm(v, w.tensor(`${L}${name}.weight`), w.tensor(`${L}${name}.bias`), { epsilon: o.layerNormEps });
  const h = o.layerNormBefore ? ln(x, 'self_attn_layer_norm') : x;
  const q = splitHeads(g, w.linear(h, `${L}self_attn.q_proj`, { bias }), H, d);
  const k = splitHeads(g, w.linear(h, `${L}self_attn.k_proj`, { bias }), H, d);
  const v = splitHeads(g, w.linear(h, `${L}self_attn.v_proj`, { bias }), H, d);
  const a = attention(q, k, v, {
    causal: true,
    mask,
    pastKey: past?.key,
    pastValue: past?.value,
    scale: 1 / Math.sqrt(d),
  });
  x = g.op1('Add', [x, w.linear(mergeHeads(g, a.out, H, d), `${L}self_attn.out_proj`, { bias })]);
  if (!o.layerNormBefore) x = ln(x, 'self_attn_layer_norm');
  const f = o.layerNormBefore ? ln(x, 'final_layer_norm') : x;
  const y = w.linear(activation(cfg.hiddenAct, w.linear(f, `${L}fc1`, { bias })), `${L}fc2`, { bias });
  x = g.op1('Add', [x, y]);
  if (!o.layerNormBefore) x = ln(x, 'final_layer_norm');
  const present = a.presentKey ? { key: a.presentKey, value: a.presentValue! } : { key: k, value: v };
  return { x, present };
}

/** The OPT decoder stack + final norm + lm_head, with the LLaMA decoder's inputs and results (registry DECODERS). */
export function optDecoderForward(
  w: GraphWeights,
  cfg: TextConfig,
  names: DecoderNames,
  inp: DecoderInputs,
  o: DecoderOptions = {},
): DecoderResult {
  const g = w.g;
  const opt = optOf(cfg);
  if (inp.past && inp.past.length !== cfg.numHiddenLayers)
    throw new Error(`decoder: ${inp.past.length} past k/v pairs for ${cfg.numHiddenLayers} layers`);
  const p = names.prefix;
  let x = inp.embeds;
  const pos = g.scope('embed_positions', () => {
    const idx = g.op1('Add', [inp.positions, g.constant(opt.positionOffset, 'int64', [])]);
    return g.op1('Gather', [w.tensor(`${p}embed_positions.weight`), idx], { axis: 0 });
  });
  x = g.op1('Add', [x, pos]);
  const wantPresent = !!inp.past || !!o.present;
  const present: KvPair[] = [];
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const past = inp.past ? inp.past[l] : null;
    const r = g.scope(`decoder/layer${l}`, () => optLayer(w, cfg, `${p}layers.${l}.`, x, inp.attentionMask, past));
    x = r.x;
    present.push(r.present);
  }
  if (opt.finalLayerNorm)
    x = layerNorm(x, w.tensor(`${p}final_layer_norm.weight`), w.tensor(`${p}final_layer_norm.bias`), {
      epsilon: opt.layerNormEps,
    });
  const logits = decoderLogits(w, cfg, names, x, o);
  return { hidden: x, logits, present: wantPresent ? present : null };
}
