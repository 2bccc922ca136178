// LLaMA-style decoder (LlamaModel + lm_head, and Qwen2 through the config flags: q/k/v biases), as transformers
// computes it: RMSNorm pre-norm blocks, RoPE (theta + default/linear/llama3 scaling) on q and k, grouped-query
// attention with a causal + padding mask, SwiGLU MLP (down(act(gate(x)) * up(x))), final RMSNorm, lm_head (or the
// embedding table when tied, shared with the token lookup: lmHead).
//
// KV cache: with `past` given (one {key, value} per layer, [B, n_kv, P, head_dim]), attention runs over past + new
// keys and `present` returns the concatenations; the attention mask then covers P + S positions and the positions of
// the new tokens start at P. Without `past` the same code gives the full (training / recomputation) forward, and can
// still return `present` (prefill: the new rotated keys and values themselves).

import type { Value } from '../../engine/graph/builder';
import { activation } from '../../engine/ops/activations';
import { attention } from '../../engine/ops/attention';
import { rmsNorm } from '../../engine/ops/norm';
import { applyRotary, positionsFromMask, rangePositions, ropeCache, type RopeCache } from '../../engine/ops/rotary';
import type { TextConfig } from '../config';
import { mergeHeads, splitHeads, type GraphWeights } from '../layers';

export interface KvPair {
  /** [B, n_kv_heads, L, head_dim] */
  key: Value;
  value: Value;
}

export interface DecoderInputs {
  /** Input embeddings [B, S, hidden]. */
  embeds: Value;
  /** int64 [B, P + S]: 1 keep, 0 padding (P = past length, 0 without a cache). */
  attentionMask: Value;
  /** int64 [B or 1, S] position ids of the new tokens. */
  positions: Value;
  /** Per-layer KV cache; absent for a full forward. */
  past?: readonly KvPair[] | null;
}

export interface DecoderOptions {
  /**
   * Which logits to compute: every position (default), only the last one ([B, 1, V]), none, or the rows of
   * `logitRows` ([K, V]).
   */
  logits?: 'all' | 'last' | 'none' | 'rows';
  /** int64 [K]: positions b * S + s of the flattened [B, S] hidden states whose logits are wanted ('rows'). */
  logitRows?: Value;
  /** Return present key/values even without `past` (prefill). Default: only when `past` is given. */
  present?: boolean;
}

export interface DecoderResult {
  /** Final hidden states after the last RMSNorm [B, S, hidden]. */
  hidden: Value;
  logits: Value | null;
  present: KvPair[] | null;
}

/** Canonical tensor names of the decoder: `prefix` is "language_model.model." (LLaVA) or "model." (causal LM). */
export interface DecoderNames {
  prefix: string;
  lmHead: string;
}

/** Token embeddings [B, S, hidden] of int64 ids [B, S] (ids must be valid rows of embed_tokens). */
export function embedTokens(w: GraphWeights, names: DecoderNames, ids: Value): Value {
  return w.embedding(`${names.prefix}embed_tokens.weight`, ids);
}

/**
 * Position ids of the new tokens: 'range' gives past + [0, S) (transformers' forward without position_ids, right
 * padding); 'mask' gives cumsum(attention_mask) - 1 over past + new, last S columns (generate() with left padding).
 * For unpadded or right-padded rows both agree on every real token.
 */
export function decoderPositions(
  ids: Value,
  attentionMask: Value,
  mode: 'range' | 'mask',
  pastLength: Value | number = 0,
): Value {
  return mode === 'mask' ? positionsFromMask(attentionMask, ids) : rangePositions(ids, pastLength);
}

/** One decoder layer; returns the new hidden states and its present k/v (past + new, or the new ones alone). */
export function decoderLayer(
  w: GraphWeights,
  cfg: TextConfig,
  layerPrefix: string,
  x: Value,
  rope: RopeCache,
  mask: Value,
  past: KvPair | null,
): { x: Value; present: KvPair | null } {
  const g = w.g;
  const L = layerPrefix;
  const H = cfg.numAttentionHeads;
  const Hkv = cfg.numKeyValueHeads;
  const d = cfg.headDim;
  let h = rmsNorm(x, w.tensor(`${L}input_layernorm.weight`), { epsilon: cfg.rmsNormEps });
  let q = splitHeads(g, w.linear(h, `${L}self_attn.q_proj`, { bias: cfg.qkvBias }), H, d);
  let k = splitHeads(g, w.linear(h, `${L}self_attn.k_proj`, { bias: cfg.qkvBias }), Hkv, d);
  const v = splitHeads(g, w.linear(h, `${L}self_attn.v_proj`, { bias: cfg.qkvBias }), Hkv, d);
  q = applyRotary(q, rope);
  k = applyRotary(k, rope);
  const a = attention(q, k, v, {
    causal: true,
    mask,
    pastKey: past?.key,
    pastValue: past?.value,
    scale: 1 / Math.sqrt(d),
  });
  x = g.op1('Add', [x, w.linear(mergeHeads(g, a.out, H, d), `${L}self_attn.o_proj`, { bias: cfg.oBias })]);
  h = rmsNorm(x, w.tensor(`${L}post_attention_layernorm.weight`), { epsilon: cfg.rmsNormEps });
  const gate = activation(cfg.hiddenAct, w.linear(h, `${L}mlp.gate_proj`, { bias: cfg.mlpBias }));
  const up = w.linear(h, `${L}mlp.up_proj`, { bias: cfg.mlpBias });
  x = g.op1('Add', [x, w.linear(g.op1('Mul', [gate, up]), `${L}mlp.down_proj`, { bias: cfg.mlpBias })]);
  // without a cache, present = the new (rotated) keys and values, what concat(empty past, k/v) would give
  const present = a.presentKey ? { key: a.presentKey, value: a.presentValue! } : { key: k, value: v };
  return { x, present };
}

/** The decoder stack + final norm + lm_head. */
export function decoderForward(
  w: GraphWeights,
  cfg: TextConfig,
  names: DecoderNames,
  inp: DecoderInputs,
  o: DecoderOptions = {},
): DecoderResult {
  const g = w.g;
  if (inp.past && inp.past.length !== cfg.numHiddenLayers)
    throw new Error(`decoder: ${inp.past.length} past k/v pairs for ${cfg.numHiddenLayers} layers`);
  const rope = g.scope('rope', () => ropeCache(g, inp.positions, cfg.headDim, cfg.rope.theta, cfg.rope, w.dtype));
  const wantPresent = !!inp.past || !!o.present;
  let x = inp.embeds;
  const present: KvPair[] = [];
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const past = inp.past ? inp.past[l] : null;
    const r = g.scope(`decoder/layer${l}`, () =>
      decoderLayer(w, cfg, `${names.prefix}layers.${l}.`, x, rope, inp.attentionMask, past),
    );
    x = r.x;
    if (r.present) present.push(r.present);
  }
  const hidden = rmsNorm(x, w.tensor(`${names.prefix}norm.weight`), { epsilon: cfg.rmsNormEps });
  const logits = decoderLogits(w, cfg, names, hidden, o);
  return { hidden, logits, present: wantPresent ? present : null };
}

/**
 * The logits `o` asks for from the final hidden states [B, S, hidden] (decoder results of every family). Rows: the
 * head runs on the gathered rows only, so a training step computes logits for its label positions alone (the LM
 * head of a 151,936-token vocabulary is a quarter of a 0.5B decoder's FLOPs, and [B*S, V] logits are saved three
 * times over for the backward); Gather's gradient scatters back into the other positions' zeros.
 */
export function decoderLogits(
  w: GraphWeights,
  cfg: TextConfig,
  names: DecoderNames,
  hidden: Value,
  o: DecoderOptions,
): Value | null {
  const g = w.g;
  const mode = o.logits ?? 'all';
  if (mode === 'none') return null;
  let hs = hidden;
  if (mode === 'last') hs = g.op1('Slice', [hidden, g.ints([-1]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])]);
  else if (mode === 'rows') {
    if (!o.logitRows) throw new Error("decoder: logits 'rows' needs logitRows");
    const D = cfg.hiddenSize;
    const flat = g.op1(
      'Reshape',
      [hidden, g.ints([-1, D])],
      {},
      { outTypes: [{ dtype: hidden.dtype, shape: ['?', D] }] },
    );
    hs = g.op1(
      'Gather',
      [flat, o.logitRows],
      { axis: 0 },
      { outTypes: [{ dtype: hidden.dtype, shape: [o.logitRows.shape?.[0] ?? '?', D] }] },
    );
  }
  return g.scope('lm_head', () => lmHead(w, cfg, names, hs));
}

/**
 * hidden [B, S, hidden] -> logits [B, S, vocab] (tied: embed_tokens is the head).
 *
 * The head is used in checkpoint layout [V, D]: [B*S, D] x [V, D]^T as one Gemm(transB=1), reshaped back. A tied
 * embedding is thus one initializer shared by the Gather and the head (a MatMul against a transposed copy would store
 * the table twice: V x D x 4 bytes more, 544 MB for Qwen2-0.5B, in every compiled graph; a Transpose node of the
 * initializer would be folded by ORT into that same copy at session load). Autodiff: Gemm's rule gives the hidden
 * states' gradient as Gemm(dy, W) and a trainable head's as Gemm(dy^T, h), in checkpoint layout.
 */
export function lmHead(w: GraphWeights, cfg: TextConfig, names: DecoderNames, hidden: Value): Value {
  const g = w.g;
  const name = cfg.tieWordEmbeddings ? `${names.prefix}embed_tokens.weight` : names.lmHead;
  const D = cfg.hiddenSize;
  const V = cfg.vocabSize;
  const shape = hidden.shape;
  const flat = g.op1(
    'Reshape',
    [hidden, g.ints([-1, D])],
    {},
    { outTypes: [{ dtype: hidden.dtype, shape: ['?', D] }] },
  );
  // Gemm(transB) on the float table, or the quantized form when the weights are quantized (a quantized base)
  const logits = w.head(flat, name, V);
  // [B, S] of hidden (its leading dims) + [V]
  const lead = g.op1('Shape', [hidden], { start: 0, end: -1 });
  const outShape = g.op1('Concat', [lead, g.ints([V])], { axis: 0 });
  return g.op1(
    'Reshape',
    [logits, outShape],
    {},
    { outTypes: [{ dtype: hidden.dtype, shape: shape ? [...shape.slice(0, -1), V] : null }] },
  );
}
