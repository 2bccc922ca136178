// The vision-language assembly every family shares, and the standalone forward graphs built on it.
//
// Image features: the family's vision tower + connector (families/<family>/ imageFeatures), [N, tokens per frame, D]
// (LLaVA: hidden_states at vision_feature_layer(s), minus the class token with the 'default' strategy, projector).
// Merge: every position whose id is image_token_index takes the next image feature row, in row-major order over the
// whole batch (transformers' masked_scatter): image n fills the n-th run of numImageTokens image positions. Text
// positions embed their ids; image positions look up row 0 (image_token_index may equal vocab_size, outside the
// table) and are then replaced with Where, so gradients reach the projector through the Gather of the features.
// pixel_values therefore holds the batch's images in order, [N, 3, H, W] with N = the number of <image> runs (one per
// row for single-image samples); a row without an image simply uses none.
//
// Graph I/O names (inference graphs): input_ids int64 [B, S], attention_mask int64 [B, P+S], pixel_values
// float32 [N, 3, H, W], past_key_values.<i>.key/value [B, n_kv, P, head_dim] -> logits [B, S or 1, V],
// present.<i>.key/value [B, n_kv, P+S, head_dim].

import { Graph, type Value } from '../engine/graph/builder';
import type { DType } from '../engine/graph/dtype';
import { isVlm, type ModelConfig, type TextModelConfig, type VlmModelConfig } from './config';
import { GraphWeights, type LoraBinding } from './layers';
import { maskValue } from '../engine/ops/attention';
import { decoderPositions, embedTokens, type DecoderNames, type DecoderResult, type KvPair } from './decoder/llama';
import { decoderFor, vlmFamilyOf } from './registry';
import { weightLayout } from './weights/names';
import type { TensorSource } from './weights/safetensors';
import { AdapterInputs, adapterBindings, mergeAdapter, type Adapter } from './peft';
import { videoFeatures } from './video';

export const IO = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  pixelValues: 'pixel_values',
  positionIds: 'position_ids',
  logits: 'logits',
  pastKey: (i: number) => `past_key_values.${i}.key`,
  pastValue: (i: number) => `past_key_values.${i}.value`,
  presentKey: (i: number) => `present.${i}.key`,
  presentValue: (i: number) => `present.${i}.value`,
} as const;

export type CausalConfig = VlmModelConfig | TextModelConfig;

export function decoderNames(cfg: CausalConfig): DecoderNames {
  const lay = weightLayout(cfg);
  return { prefix: lay.decoder!, lmHead: lay.lmHead! };
}

/** Projected image features [N, tokens per frame, text hidden] of pixel_values [N, 3, H, W] (the family's). */
export function imageFeatures(w: GraphWeights, cfg: VlmModelConfig, pixelValues: Value): Value {
  return vlmFamilyOf(cfg).imageFeatures(w, cfg, pixelValues);
}

/** Input embeddings [B, S, D]: token embeddings with image positions replaced by image features (when given). */
export function llavaEmbeddings(w: GraphWeights, cfg: CausalConfig, ids: Value, features: Value | null): Value {
  const g = w.g;
  const names = decoderNames(cfg);
  if (!isVlm(cfg)) return embedTokens(w, names, ids);
  return g.scope('merge', () => {
    const imgTok = g.constant(cfg.imageTokenIndex, 'int64', []);
    const zero = g.constant(0, 'int64', []);
    const isImg = g.op1('Equal', [ids, imgTok]);
    const textIds = g.op1('Where', [isImg, zero, ids]);
    const text = embedTokens(w, names, textIds);
    if (!features) return text;
    const D = cfg.text.hiddenSize;
    const flatFeats = g.op1('Reshape', [features, g.ints([-1, D])]);
    // index of each image position into the flattened features: running count over the batch, row-major
    const cnt = g.op1('Reshape', [g.op1('Cast', [isImg], { to: 7 }), g.ints([-1])]);
    const cs = g.op1('CumSum', [cnt, g.constant(0, 'int64', [])], {}, { outTypes: [{ dtype: 'int64', shape: ['?'] }] });
    const idx = g.op1(
      'Reshape',
      [g.op1('Sub', [cs, g.constant(1, 'int64', [])]), g.op1('Shape', [ids])],
      {},
      { outTypes: [{ dtype: 'int64', shape: ids.shape }] },
    );
    const safeIdx = g.op1('Where', [isImg, idx, zero]);
    const img = g.op1('Gather', [flatFeats, safeIdx], { axis: 0 });
    return g.op1('Where', [g.op1('Unsqueeze', [isImg, g.ints([-1])]), img, text]);
  });
}

export interface CausalForwardInputs {
  inputIds: Value;
  attentionMask: Value;
  pixelValues?: Value | null;
  /** Projected image features [N, tokens per frame, text hidden] instead of pixelValues (computed elsewhere). */
  imageFeatures?: Value | null;
  /** int64 [B or 1, S]; default from `positions`. */
  positionIds?: Value | null;
  past?: readonly KvPair[] | null;
  /** pixel_values are video frames: their features are pooled per frame (video.ts), e.g. 2 for 2×2. */
  videoPool?: number | null;
}

export interface CausalForwardOptions {
  logits?: 'all' | 'last' | 'none' | 'rows';
  /** int64 [K] flattened [B, T] positions whose logits are computed (logits 'rows', decoder/llama.ts decoderLogits). */
  logitRows?: Value;
  present?: boolean;
  /** How positions are derived when positionIds is not given (default 'mask'; see decoderPositions). */
  positions?: 'range' | 'mask';
  /** attention_mask holds sample ordinals of packed rows (packedMask); no KV cache. */
  packed?: boolean;
}

/**
 * Packed rows (training/batching.ts pack): attention_mask [B, T] holds each token's sample ordinal within its row
 * (1, 2, … for the samples laid end to end, 0 for the padding after them). A token attends only to tokens of its own
 * sample (the attention adds the causal part; padding attends to padding, so no row of the mask is empty) and its
 * position counts from its sample's first token, so every sample computes what it would alone in a row of its own.
 * Returns the additive mask [B, 1, T, T] and the positions [B, T] (the number of earlier-or-same tokens of the same
 * sample, minus one).
 */
export function packedMask(g: Graph, segments: Value, dtype: DType): { mask: Value; positions: Value } {
  const s = segments.shape;
  const B = s?.[0] ?? '?';
  const T = s?.[1] ?? '?';
  const same = g.op1('Equal', [
    g.op1('Unsqueeze', [segments, g.ints([2])]),
    g.op1('Unsqueeze', [segments, g.ints([1])]),
  ]);
  const len = g.op1('Squeeze', [g.op1('Shape', [segments], { start: 1, end: 2 }), g.ints([0])]);
  const r = g.op1(
    'Range',
    [g.constant(0, 'int64', []), len, g.constant(1, 'int64', [])],
    {},
    { outTypes: [{ dtype: 'int64', shape: [T] }] },
  );
  // [i, j]: key j at or before query i
  const causal = g.op1('LessOrEqual', [g.op1('Unsqueeze', [r, g.ints([0])]), g.op1('Unsqueeze', [r, g.ints([1])])]);
  const seen = g.op1('Cast', [g.op1('And', [same, causal])], { to: 7 });
  const count = g.op1(
    'ReduceSum',
    [seen, g.ints([-1])],
    { keepdims: 0 },
    { outTypes: [{ dtype: 'int64', shape: [B, T] }] },
  );
  const positions = g.op1('Sub', [count, g.constant(1, 'int64', [])]);
  const add = g.op1('Where', [same, g.scalar(0, dtype), g.scalar(maskValue(dtype), dtype)]);
  const mask = g.op1('Unsqueeze', [add, g.ints([1])], {}, { outTypes: [{ dtype, shape: [B, 1, T, T] }] });
  return { mask, positions };
}

/** LLaVA (or text-only causal LM) forward: embeddings + merge + decoder. */
export function causalForward(
  w: GraphWeights,
  cfg: CausalConfig,
  inp: CausalForwardInputs,
  o: CausalForwardOptions = {},
): DecoderResult {
  const g = w.g;
  if ((inp.pixelValues || inp.imageFeatures) && !isVlm(cfg)) throw new Error('pixel_values given to a text-only model');
  if (inp.pixelValues && inp.imageFeatures) throw new Error('causalForward: pixel values or image features, not both');
  const fromPixels = (pv: Value, c: VlmModelConfig) =>
    inp.videoPool ? videoFeatures(w, c, pv, inp.videoPool) : imageFeatures(w, c, pv);
  const feats = inp.imageFeatures ?? (inp.pixelValues && isVlm(cfg) ? fromPixels(inp.pixelValues, cfg) : null);
  const embeds = llavaEmbeddings(w, cfg, inp.inputIds, feats);
  let positions = inp.positionIds ?? null;
  let mask = inp.attentionMask;
  if (o.packed) {
    if (inp.past) throw new Error('causalForward: packed rows take no KV cache');
    const p = g.scope('packing', () => packedMask(g, inp.attentionMask, w.dtype));
    mask = p.mask;
    positions ??= p.positions;
  }
  if (!positions) {
    const mode = o.positions ?? 'mask';
    const pastLen = inp.past?.length
      ? g.op1('Squeeze', [g.op1('Shape', [inp.past[0].key], { start: 2, end: 3 }), g.ints([0])])
      : 0;
    positions = g.scope('positions', () => decoderPositions(inp.inputIds, inp.attentionMask, mode, pastLen));
  }
  return decoderFor(cfg.text)(
    w,
    cfg.text,
    decoderNames(cfg),
    { embeds, attentionMask: mask, positions, past: inp.past },
    { logits: o.logits, logitRows: o.logitRows, present: o.present },
  );
}

// ---- standalone inference graphs -------------------------------------------------------------------------------

/** A model as the graph builders need it (HfModel from loadHfFolder satisfies this). */
export interface ModelWeights {
  config: ModelConfig;
  weights: TensorSource;
}

export interface ForwardGraphOptions {
  /** 'full': logits only; 'prefill': + present k/v; 'decode': past k/v inputs + present outputs. Default 'full'. */
  mode?: 'full' | 'prefill' | 'decode';
  /** Give the graph a pixel_values input (default: LLaVA in full/prefill mode). */
  image?: boolean;
  /** pixel_values are the frames of a video: pooled per frame by this window (video.ts; 2 = 2×2). */
  videoPool?: number;
  /** Logits of every position (default for 'full') or of the last one (default for prefill/decode). */
  logits?: 'all' | 'last';
  /** Positions from the attention mask (default; left padding works), past + range, or a position_ids input. */
  positions?: 'range' | 'mask' | 'input';
  /**
   * A PEFT adapter: merged into the weights at build time ('merge', default), applied as separate LoRA branches with
   * its values as constants ('lora'), or as LoRA branches whose A/B matrices and saved tensors are graph inputs
   * ('inputs', see AdapterInputs: the graph depends on the adapter's structure only; feed adapterInputTensors).
   */
  adapter?: Adapter | null;
  adapterMode?: 'merge' | 'lora' | 'inputs';
  /** Graph float type (default float32). */
  dtype?: DType;
  /** Static batch size (default symbolic 'B'). */
  batch?: number;
  name?: string;
}

// The adapter as graph constants or graph inputs lives with the adapter files (peft.ts); re-exported for callers here.
export {
  ADAPTER_INPUT,
  AdapterInputs,
  adapterBindings,
  adapterInputTensors,
  adapterStructure,
  type AdapterInputTensor,
} from './peft';

/** A standalone ONNX graph of the model's forward with the IO names above. */
export function buildForwardGraph(model: ModelWeights, o: ForwardGraphOptions = {}): Graph {
  const cfg = model.config;
  if (cfg.kind === 'vision') throw new Error('buildForwardGraph: a vision-only model has no decoder');
  const mode = o.mode ?? 'full';
  const dtype = o.dtype ?? 'float32';
  const g = new Graph(o.name ?? `${cfg.modelType}_${mode}`);
  let source = model.weights;
  let lora: Map<string, LoraBinding> | undefined;
  let lazy: AdapterInputs | undefined;
  const adapterMode = o.adapterMode ?? 'merge';
  if (o.adapter) {
    if (adapterMode === 'merge') source = mergeAdapter(model.weights, o.adapter);
    else if (adapterMode === 'lora') lora = adapterBindings(g, o.adapter, dtype);
    else lazy = new AdapterInputs(g, o.adapter, model.weights, dtype);
  }
  const overrides = o.adapter && adapterMode === 'lora' ? o.adapter.saved : undefined;
  const w = new GraphWeights(g, source, { dtype, lora, overrides, lazy });
  const B = o.batch ?? 'B';
  const inputIds = g.input(IO.inputIds, 'int64', [B, mode === 'decode' ? 'S' : 'T']);
  const attentionMask = g.input(IO.attentionMask, 'int64', [B, mode === 'decode' ? 'L' : 'T']);
  const image = o.image ?? (isVlm(cfg) && mode !== 'decode');
  if (image && !isVlm(cfg)) throw new Error('buildForwardGraph: image input on a text-only model');
  let pixelValues: Value | null = null;
  if (image && isVlm(cfg)) {
    const v = cfg.vision;
    pixelValues = g.input(IO.pixelValues, dtype, ['N', v.numChannels, v.imageSize, v.imageSize]);
  }
  const t = cfg.text;
  let past: KvPair[] | null = null;
  if (mode === 'decode') {
    past = [];
    for (let i = 0; i < t.numHiddenLayers; i++)
      past.push({
        key: g.input(IO.pastKey(i), dtype, [B, t.numKeyValueHeads, 'P', t.headDim]),
        value: g.input(IO.pastValue(i), dtype, [B, t.numKeyValueHeads, 'P', t.headDim]),
      });
  }
  const positionIds =
    o.positions === 'input' ? g.input(IO.positionIds, 'int64', [B, mode === 'decode' ? 'S' : 'T']) : null;
  const r = causalForward(
    w,
    cfg,
    { inputIds, attentionMask, pixelValues, positionIds, past, videoPool: o.videoPool },
    {
      logits: o.logits ?? (mode === 'full' ? 'all' : 'last'),
      present: mode !== 'full',
      positions: o.positions === 'input' ? undefined : o.positions,
    },
  );
  g.output(r.logits!, IO.logits);
  if (r.present)
    r.present.forEach((p, i) => {
      g.output(p.key, IO.presentKey(i));
      g.output(p.value, IO.presentValue(i));
    });
  return g;
}
