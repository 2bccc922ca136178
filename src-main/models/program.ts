// The trainable VLM: which tensors train, the forward + loss the engine's
// step programs differentiate, initial values, and the adapter files that come out of it. Plus the inference
// logits graph with an optional adapter.
//
// Trainable set by method:
//   'lora'            LoRA A/B on the target modules (decoder; + vision tower with includeVision)
//   'projector'       the projector's tensors (full), nothing else
//   'lora+projector'  both
//   'full'            every tensor of the chosen parts (default decoder + projector; opts.fullParts) — used to
//                     pretrain the demo base model; saved as a whole Hugging Face folder (saveFullModel)
// Everything else is frozen: initializers inside the graph, never graph inputs.
//
// Parameter names: LoRA matrices use PEFT's keys ("base_model.model.<module>.lora_A.weight" [r, in], "...lora_B.weight"
// [out, r]); fully trained tensors their canonical checkpoint names ("multi_modal_projector.linear_1.weight").
//
// Data inputs of the forward (graph input names):
//   input_ids int64 [B, T], attention_mask int64 [B, T], labels int64 [B, T] (unshifted, -100 = ignored: the loss
//   compares logits[t] with labels[t+1]), pixel_values float32 [N, 3, H, W] (vision-language models): the batch's
//   frames in row order, N = number of frames (LLaVA: one per <image>; Idefics3: tiles + global image; see llava.ts). A batch with no
//   image still needs N >= 1: feed one zero image, it is not used. With LoRA dropout > 0 the training forward also
//   takes dropout_seed int64 [] (DROPOUT_SEED_INPUT): the masks are a pure function of it (layers.ts), so feed a new
//   one per micro-batch (dropoutStepSeed(runSeed, step, micro)); the score forward has no dropout and no such input.
// Outputs: loss = sum of token losses / number of label tokens (0 when there are none), token_loss_sum, token_count
// (to re-weight micro-batches by tokens).

import { Graph, type Value } from '../engine/graph/builder';
import { ONNX_DTYPE, type DType } from '../engine/graph/dtype';
import type { ForwardBuilder, ParamSpec } from '../engine/programs/train-step';
import type { ScoreResult } from '../engine/programs/score';
import { softmaxCrossEntropy } from '../engine/ops/loss';
import { isVlm, type ModelConfig, type TextModelConfig, type VlmModelConfig } from './config';
import type { FamilyImageProcessor, ImageGrid } from './families/types';
import { vlmFamilyOf } from './registry';
import type { RenderSetup } from '../datasets/render';
import type { HfModel } from './hf-folder';
import { loadHfFolder, saveHfFolder } from './hf-folder';
import { GraphWeights, type LoraBinding, type QuantFallback } from './layers';
import { quantizeFallbackReason, type NBitsOptions, type QuantScheme } from './quantize';
import { buildForwardGraph, causalForward, imageFeatures, IO, type ForwardGraphOptions } from './llava';
import { poolFrameFeatures } from './video';
import {
  loadAdapter as loadPeftAdapter,
  loraScaling,
  projectorParams,
  resolveLoraModules,
  saveAdapter as savePeftAdapter,
  targetModulesRegex,
  validateLoraSpec,
  type Adapter,
  type LoraModule,
  type LoraSpec,
} from './peft';
import { expectedTensors, weightLayout } from './weights/names';
import type { TensorSource } from './weights/safetensors';
import { demoRng } from './demo/rng';
import { connectorModules } from './peft';
import type { LensTokenizer } from './tokenizer';
import { ChatTemplate, LLAVA_CHAT_TEMPLATE, missingTemplateWarning } from './chat-template';
import type { ImageProcessor } from './image-processor';
import { LORA_TARGETS, TRAIN_METHODS, type LoraTarget, type TrainMethod as HparamsMethod } from '../contract/hparams';

/** The API's methods (contract/hparams.ts TRAIN_METHODS) and 'full' (every weight, for the engine's own tests). */
export type TrainMethod = HparamsMethod | 'full';

export interface LoraOptions {
  rank: number;
  alpha: number;
  /** Dropout on the LoRA branch's input in training graphs (score graphs never drop). */
  dropout: number;
  /** q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj */
  targetModules: string[];
  /** Also adapt the vision tower's matching projections (q/k/v/out_proj, fc1/fc2). Default false. */
  includeVision?: boolean;
  /** scaling alpha / sqrt(r) instead of alpha / r. Default false. */
  useRslora?: boolean;
}

/** A model the builders accept: a loaded folder (HfModel) or any config + tensor source. */
export interface ModelLike {
  config: ModelConfig;
  weights: TensorSource;
}

/** A loaded vision-language folder (any family) with everything chat and training need. */
export interface LoadedVlm extends HfModel {
  config: VlmModelConfig;
  tokenizer: LensTokenizer;
  chatTemplate: ChatTemplate;
  /** the family's image processor (frames and tile grid of an image) */
  images: FamilyImageProcessor;
  imageTokenId: number;
  /** image tokens per frame */
  numImageTokens: number;
}

/** The one loader of a vision-language folder: loadHfFolder + the checks that it is usable (tokenizer, chat template, image processor). */
export function loadVlm(dir: string): LoadedVlm {
  const m = loadHfFolder(dir);
  const fail = (msg: string): never => {
    m.close();
    throw new Error(`${dir}: ${msg}`);
  };
  const cfg = m.config;
  if (!isVlm(cfg))
    return fail(
      `model_type "${cfg.modelType}" is not a vision-language model; training and chat need one (compose a vision tower with a language model first)`,
    );
  if (!m.tokenizer) fail('no tokenizer.json');
  // a family whose published folders have no template (BLIP-2) brings its own
  const builtIn = vlmFamilyOf(cfg).chat;
  if (!m.chatTemplate && builtIn) m.chatTemplate = familyTemplate(builtIn, m.tokenizer!);
  if (!m.chatTemplate) fail('no chat template (tokenizer_config.json chat_template or chat_template.jinja)');
  if (!m.images) fail('no preprocessor_config.json');
  return Object.assign(m, {
    config: cfg,
    tokenizer: m.tokenizer!,
    chatTemplate: m.chatTemplate!,
    images: m.images!,
    imageTokenId: cfg.imageTokenIndex,
    numImageTokens: cfg.numImageTokens,
  });
}

/**
 * The one render setup of a model folder (training, eval, chat, dataset lint and token preview): its chat template
 * (the built-in LLaVA-1.5 template when the folder has none), tokenizer, and what one image placeholder becomes
 * (the family's token ids for `grid`; default: the largest grid the processor makes, so lengths are upper bounds).
 */
export function renderSetupOf(model: HfModel, grid?: ImageGrid): RenderSetup {
  const cfg = model.config;
  if (cfg.kind === 'vision') throw new Error(`${model.dir}: a vision-only model has no tokenizer or chat template`);
  const tokenizer = model.tokenizer;
  if (!tokenizer) throw new Error(`${model.dir}: no tokenizer.json`);
  const builtIn = isVlm(cfg) ? vlmFamilyOf(cfg).chat : undefined;
  const familyOwn = !!builtIn && (!model.chatTemplate || model.chatTemplate.origin === builtIn.origin);
  const template =
    model.chatTemplate ??
    (builtIn
      ? familyTemplate(builtIn, tokenizer)
      : new ChatTemplate(
          LLAVA_CHAT_TEMPLATE,
          { bos_token: tokenizer.bosToken, eos_token: tokenizer.eosToken },
          'built-in LLaVA template',
        ));
  const warnings = model.chatTemplate || builtIn ? [] : [missingTemplateWarning(model.dir)];
  if (!isVlm(cfg)) return { template, tokenizer, warnings };
  const family = vlmFamilyOf(cfg);
  const images = model.images;
  const special = familyOwn
    ? {
        addSpecialTokens: builtIn!.addSpecialTokens,
        ...(builtIn!.captionPrompt !== undefined ? { captionPrompt: builtIn!.captionPrompt } : {}),
      }
    : {};
  const setupFor = (g: ImageGrid): RenderSetup => {
    const ids = family.imageTokenIds(cfg, tokenizer, g);
    return {
      template,
      tokenizer,
      warnings,
      ...special,
      image: { tokenId: cfg.imageTokenIndex, count: ids.length, ids },
    };
  };
  const setup = setupFor(grid ?? images?.maxGrid() ?? { rows: 0, cols: 0 });
  const max = images?.maxGrid();
  if (grid || !images || !max || (max.rows === 0 && max.cols === 0)) return setup;
  // tile grids: one setup per grid, made when an image of that size is first rendered
  const byGrid = new Map<string, RenderSetup>();
  setup.forImage = (width, height) => {
    const g = images.grid(width, height);
    const key = `${g.rows}x${g.cols}`;
    let s = byGrid.get(key);
    if (!s) byGrid.set(key, (s = setupFor(g)));
    return s;
  };
  return setup;
}

/** A family's built-in chat template with the tokenizer's special tokens as variables. */
function familyTemplate(chat: { template: string; origin: string }, tokenizer: LensTokenizer): ChatTemplate {
  return new ChatTemplate(
    chat.template,
    {
      bos_token: tokenizer.bosToken,
      eos_token: tokenizer.eosToken,
      unk_token: tokenizer.unkToken,
      pad_token: tokenizer.padToken,
    },
    chat.origin,
  );
}

export interface TrainableVlmOptions {
  /** Informational (memory estimates, checks); the graph's B and T stay symbolic. */
  maxSeqLen?: number;
  batchSize?: number;
  /** 'full' method: which parts train (default ['projector', 'decoder']). */
  fullParts?: Array<'vision' | 'projector' | 'decoder'>;
  /** Graph float type (default float32). */
  dtype?: DType;
  /**
   * Frozen base weights held as int8 / int4 blocks (QLoRA-style; quantize.ts frozenMatMulNBits) under float32
   * trainable tensors; matrices that cannot take the blocks stay float32 (quantizeFallbacks names them).
   */
  quantizeBase?: QuantScheme;
  /** MatMulNBits options of the quantized base (tests: accuracy level 0 for float32 arithmetic). */
  nbits?: NBitsOptions;
  /**
   * What the graph takes for images: pixel_values (default), or image features computed and cached outside it
   * (IMAGE_FEATURES_INPUT) at a layer featureCacheLayer allows for this method: 'projected' = the connector's
   * output, 'tower' = the tower's output, the connector (which trains) applied in the graph.
   */
  imageInput?: 'pixels' | FeatureLayer;
  /** pixel_values (or cached features) are video frames, pooled per frame by this window (video.ts; 2 = 2×2). */
  videoPool?: number;
  /**
   * The training forward takes packed rows (training/batching.ts pack): attention_mask holds sample ordinals, so
   * attention stays within a sample and positions restart at each (llava.ts packedMask). An unpacked batch (a mask
   * of 0 / 1) is a packed batch of one sample a row. The score forward stays unpacked.
   */
  packed?: boolean;
}

/** Where image features can be cached: after the connector, or before it (the family's splitFeatures). */
export type FeatureLayer = 'tower' | 'projected';

/** The graph input of cached image features: float32 [N frames, tokens, dim] (featureShape). */
export const IMAGE_FEATURES_INPUT = 'image_features';

/**
 * The last layer of the image path whose output no training can change, or null when the tower itself trains: the
 * connector's output when it is frozen ('lora' on the decoder), the tower's output when only the connector trains
 * ('projector', 'lora+projector', 'full' without the tower) and the family can split there.
 */
export function featureCacheLayer(
  cfg: ModelConfig,
  method: TrainMethod,
  lora: LoraOptions | null,
  fullParts?: Array<'vision' | 'projector' | 'decoder'>,
): FeatureLayer | null {
  if (!isVlm(cfg)) return null;
  if ((method === 'lora' || method === 'lora+projector') && lora?.includeVision) return null;
  const parts = method === 'full' ? (fullParts ?? ['projector', 'decoder']) : [];
  if (parts.includes('vision')) return null;
  const connectorTrains = method === 'projector' || method === 'lora+projector' || parts.includes('projector');
  if (!connectorTrains) return 'projected';
  return vlmFamilyOf(cfg).splitFeatures ? 'tower' : null;
}

/** [tokens, dim] of one frame's features at `layer`. */
export function featureShape(cfg: VlmModelConfig, layer: FeatureLayer): { tokens: number; dim: number } {
  if (layer === 'projected') return { tokens: cfg.numImageTokens, dim: cfg.text.hiddenSize };
  const split = vlmFamilyOf(cfg).splitFeatures;
  if (!split) throw new Error(`${cfg.modelType}: the family cannot split its image features at the tower`);
  return split.towerShape(cfg);
}

/**
 * The image path alone, up to `layer`: pixel_values [N, 3, S, S] -> IMAGE_FEATURES_INPUT [N, tokens, dim], with the
 * frozen weights as the training graph holds them (opts.quantizeBase), so cached features equal in-graph ones.
 */
export function buildFeatureGraph(
  model: ModelLike,
  layer: FeatureLayer,
  opts: Pick<TrainableVlmOptions, 'quantizeBase' | 'nbits'> = {},
): Graph {
  const cfg = model.config;
  if (!isVlm(cfg)) throw new Error(`a ${cfg.modelType} model has no image features`);
  const g = new Graph(`lenslab_features_${layer}`);
  const qb = opts.quantizeBase ?? 'none';
  const w = new GraphWeights(
    g,
    model.weights,
    qb === 'none' ? {} : { quantize: qb, quantizeFor: 'training', nbits: opts.nbits },
  );
  const v = cfg.vision;
  const pv = g.input(IO.pixelValues, 'float32', ['N', v.numChannels, v.imageSize, v.imageSize]);
  const f = layer === 'projected' ? imageFeatures(w, cfg, pv) : vlmFamilyOf(cfg).splitFeatures!.tower(w, cfg, pv);
  g.output(f, IMAGE_FEATURES_INPUT);
  return g;
}

/** What each parameter is. */
export interface ParamInfo {
  kind: 'lora_A' | 'lora_B' | 'full';
  /** LoRA: module name; full: canonical tensor name */
  target: string;
}

export interface TrainableVlm {
  method: TrainMethod;
  lora: LoraOptions | null;
  params: ParamSpec[];
  paramInfo: Map<string, ParamInfo>;
  /** LoRA modules adapted (empty for projector/full). */
  loraModules: LoraModule[];
  /** LoRA A ~ kaiming-uniform (PEFT: bound 1/sqrt(in)), B = 0; full tensors from the folder. */
  initialValues(seed: number): Record<string, Float32Array>;
  /** Frozen matrices that keep float32 under the quantizeBase option, with the reason (empty without one). */
  quantizeFallbacks(): QuantFallback[];
  forward: ForwardBuilder;
  /** Forward for the engine's score program: per-row mean token loss [B], token_loss_sum [B], token_count [B]. */
  score: (g: Graph, params: Readonly<Record<string, Value>>) => ScoreResult;
  dataInputs: {
    input_ids: 'int64 [B,T]';
    attention_mask: 'int64 [B,T]';
    labels: 'int64 [B,T], -100 = ignored';
    pixel_values?: 'float32 [N,3,H,W]';
    image_features?: 'float32 [N,tokens,dim]';
    dropout_seed?: 'int64 [], training forward with LoRA dropout > 0';
  };
}

function asCausal(cfg: ModelConfig): VlmModelConfig | TextModelConfig {
  if (cfg.kind === 'vision') throw new Error('a vision-only model cannot be trained as a language model');
  return cfg;
}

/** LoraOptions -> peft.ts LoraSpec (validated). */
export function loraSpec(cfg: ModelConfig, method: TrainMethod, lora: LoraOptions): LoraSpec {
  if (method === 'full') throw new Error("method 'full' has no LoRA spec");
  const targets = lora.targetModules as LoraTarget[];
  const spec: LoraSpec = {
    mode: method,
    r: lora.rank,
    alpha: lora.alpha,
    dropout: lora.dropout,
    targets,
    includeVision: !!lora.includeVision,
    useRslora: !!lora.useRslora,
  };
  validateLoraSpec(asCausal(cfg), spec);
  return spec;
}

function loraModulesFor(cfg: ModelConfig, spec: LoraSpec): LoraModule[] {
  return resolveLoraModules(cfg, targetModulesRegex(cfg, spec));
}

function fullTensorNames(cfg: ModelConfig, parts: Array<'vision' | 'projector' | 'decoder'>): string[] {
  const lay = weightLayout(cfg);
  // the connector is whatever is neither vision tower nor decoder (LLaVA's projector; BLIP-2's query tokens, Q-Former
  // and language projection)
  const partOf = (n: string): 'vision' | 'projector' | 'decoder' =>
    lay.vision && n.startsWith(lay.vision)
      ? 'vision'
      : (lay.decoder && n.startsWith(lay.decoder)) || n === lay.lmHead
        ? 'decoder'
        : 'projector';
  // vision tensors the family's image features never read (LLaVA: post_layernorm, the pooling head, later layers)
  const unusedVision = (n: string): boolean => {
    if (!lay.vision || !n.startsWith(lay.vision) || !isVlm(cfg)) return false;
    return vlmFamilyOf(cfg).unusedVisionTensor(cfg, n.slice(lay.vision.length));
  };
  return expectedTensors(cfg)
    .filter((s) => !s.optional && parts.includes(partOf(s.name)) && !unusedVision(s.name))
    .map((s) => s.name);
}

/** The trainable VLM for a method. */
export function buildTrainableVlm(
  model: ModelLike,
  method: TrainMethod,
  lora: LoraOptions | null,
  opts: TrainableVlmOptions = {},
): TrainableVlm {
  const cfg = asCausal(model.config);
  if (![...TRAIN_METHODS, 'full'].includes(method))
    throw new Error(`unknown training method "${method}" (lora, projector, lora+projector, full)`);
  const specs = new Map(expectedTensors(cfg).map((s) => [s.name, s.shape]));
  const params: ParamSpec[] = [];
  const paramInfo = new Map<string, ParamInfo>();
  let modules: LoraModule[] = [];
  let spec: LoraSpec | null = null;
  if (method === 'lora' || method === 'lora+projector') {
    if (!lora) throw new Error(`method ${method} needs LoRA options`);
    spec = loraSpec(cfg, method, lora);
    modules = loraModulesFor(cfg, spec);
    if (modules.length === 0)
      throw new Error(`LoRA targets ${JSON.stringify(lora.targetModules)} match no layer of this model`);
    for (const m of modules) {
      params.push({ name: m.keyA, shape: [spec.r, m.inFeatures] }, { name: m.keyB, shape: [m.outFeatures, spec.r] });
      paramInfo.set(m.keyA, { kind: 'lora_A', target: m.module });
      paramInfo.set(m.keyB, { kind: 'lora_B', target: m.module });
    }
  }
  let full: string[] = [];
  if (method === 'projector' || method === 'lora+projector') {
    if (!isVlm(cfg)) throw new Error(`method ${method} needs a vision-language model (it trains the projector)`);
    full = projectorParams(cfg);
  } else if (method === 'full') full = fullTensorNames(cfg, opts.fullParts ?? ['projector', 'decoder']);
  for (const n of full) {
    const shape = specs.get(n)!;
    params.push({ name: n, shape, decay: shape.length > 1 });
    paramInfo.set(n, { kind: 'full', target: n });
  }
  if (params.length === 0) throw new Error(`method ${method}: nothing to train`);
  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32') for (const p of params) p.dtype = dtype;
  const imageInput = opts.imageInput ?? 'pixels';
  if (imageInput !== 'pixels') {
    const allowed = featureCacheLayer(cfg, method, lora, opts.fullParts);
    // features from before a layer that trains would be stale; 'tower' is also right when the connector is frozen
    if (allowed === null || (allowed === 'tower' && imageInput === 'projected'))
      throw new Error(
        `method ${method}${lora?.includeVision ? ' with LoRA on the vision tower' : ''}: image features at the ${imageInput} layer would not follow training`,
      );
  }
  const scaling = spec ? loraScaling(spec) : 1;

  const qb = opts.quantizeBase ?? 'none';
  if (qb !== 'none' && dtype !== 'float32') throw new Error(`a ${qb} base trains in float32 only (dtype ${dtype})`);
  const quant = qb === 'none' ? {} : { quantize: qb, quantizeFor: 'training' as const, nbits: opts.nbits };
  let lastWeights: GraphWeights | null = null;
  const build = (g: Graph, p: Readonly<Record<string, Value>>, training: boolean) => {
    const fullParams: Record<string, Value> = {};
    for (const n of full) fullParams[n] = p[n];
    const bindings = new Map<string, LoraBinding>();
    for (const m of modules)
      bindings.set(m.module, { a: p[m.keyA], b: p[m.keyB], scaling, dropout: training ? (spec?.dropout ?? 0) : 0 });
    const w = new GraphWeights(g, model.weights, { dtype, params: fullParams, lora: bindings, ...quant });
    lastWeights = w;
    const T: (string | number)[] = ['B', 'T'];
    const inputIds = g.input(IO.inputIds, 'int64', T);
    const attentionMask = g.input(IO.attentionMask, 'int64', T);
    const labels = g.input('labels', 'int64', T);
    let pixelValues: Value | null = null;
    let feats: Value | null = null;
    if (!isVlm(cfg)) {
      /* a text-only model: no image input */
    } else if (imageInput === 'pixels')
      pixelValues = g.input(IO.pixelValues, dtype, [
        'N',
        cfg.vision.numChannels,
        cfg.vision.imageSize,
        cfg.vision.imageSize,
      ]);
    else {
      const sh = featureShape(cfg, imageInput);
      const x = g.input(IMAGE_FEATURES_INPUT, dtype, ['N', sh.tokens, sh.dim]);
      feats = imageInput === 'projected' ? x : vlmFamilyOf(cfg).splitFeatures!.connector(w, cfg, x);
      if (opts.videoPool) feats = poolFrameFeatures(g, cfg, feats, opts.videoPool);
    }
    const sel = g.scope('loss', () => labelPositions(g, labels));
    const r = causalForward(
      w,
      cfg,
      { inputIds, attentionMask, pixelValues, imageFeatures: feats, videoPool: opts.videoPool },
      { logits: 'rows', logitRows: sel.rows, positions: 'mask', packed: training && !!opts.packed },
    );
    return { ...g.scope('loss', () => selectedTokenLosses(g, r.logits!, sel)), sel };
  };

  const forward: ForwardBuilder = (g, p) => {
    const t = build(g, p, true);
    const sum = g.op1('ReduceSum', [t.perToken], { keepdims: 0 });
    const count = g.op1('ReduceSum', [t.valid], { keepdims: 0 });
    const loss = g.op1('Div', [sum, g.op1('Max', [count, g.scalar(1, sum)])]);
    return { loss, outputs: { token_loss_sum: sum, token_count: count } };
  };
  const score = (g: Graph, p: Readonly<Record<string, Value>>): ScoreResult => {
    const t = build(g, p, false);
    const [sum, count] = perSampleSums(g, t.sel.sample, t.sel.batch, t.perToken, t.valid);
    const losses = g.op1('Div', [sum, g.op1('Max', [count, g.scalar(1, sum)])]);
    return { losses, outputs: { token_loss_sum: sum, token_count: count } };
  };

  const initialValues = (seed: number): Record<string, Float32Array> => {
    const out: Record<string, Float32Array> = {};
    const rng = demoRng(seed);
    for (const m of modules) {
      const bound = 1 / Math.sqrt(m.inFeatures);
      const a = new Float32Array(spec!.r * m.inFeatures);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
      out[m.keyA] = a;
      out[m.keyB] = new Float32Array(m.outFeatures * spec!.r);
    }
    for (const n of full) out[n] = Float32Array.from(model.weights.get(n));
    return out;
  };

  const quantizeFallbacks = (): QuantFallback[] => {
    if (qb === 'none') return [];
    // a scratch build of the score graph: initializers are lazy, so nothing is read or quantized
    const g = new Graph('quantize_plan');
    const p: Record<string, Value> = {};
    for (const ps of params) p[ps.name] = g.input(`param.${ps.name}`, dtype, ps.shape);
    build(g, p, false);
    return lastWeights!.quantFallbacks();
  };

  return {
    method,
    lora: spec ? lora : null,
    params,
    paramInfo,
    loraModules: modules,
    initialValues,
    quantizeFallbacks,
    forward,
    score,
    dataInputs: {
      input_ids: 'int64 [B,T]',
      attention_mask: 'int64 [B,T]',
      labels: 'int64 [B,T], -100 = ignored',
      ...(isVlm(cfg) && imageInput === 'pixels' ? { pixel_values: 'float32 [N,3,H,W]' as const } : {}),
      ...(isVlm(cfg) && imageInput !== 'pixels' ? { image_features: 'float32 [N,tokens,dim]' as const } : {}),
      ...(spec && spec.dropout > 0
        ? { dropout_seed: 'int64 [], training forward with LoRA dropout > 0' as const }
        : {}),
    },
  };
}

/**
 * Gradient checkpointing's segments (engine/autodiff.ts recompute): one per layer of a decoder, vision tower, Q-Former
 * or text tower, named by its graph scope ("fwd/decoder/layer3/..." -> "decoder/layer3").
 */
export function layerSegment(node: { name: string }): string | null {
  return /(?:^|\/)((?:decoder|vision|qformer|text)\/layer\d+)\//.exec(node.name)?.[1] ?? null;
}

/** The positions whose logits enter the loss, from labels [B, T] (unshifted, -100 = ignored). */
export interface LabelPositions {
  /** int64 [K + 1]: b * T + t for every t whose next label (labels[b, t + 1]) counts, then one padding row 0 */
  rows: Value;
  /** int64 [K + 1]: those labels, then -100 for the padding row (which keeps K + 1 >= 1 rows without labels) */
  labels: Value;
  /** int64 [K + 1]: the batch row b of each */
  sample: Value;
  /** int64 [1]: B */
  batch: Value;
}

/**
 * The causal shift as a selection: logits[b, t] predicts labels[b, t + 1], so the rows that count are those whose
 * shifted label is not -100 (found with NonZero at run time). A training step then computes the LM head and its
 * softmax for its answer tokens only, not for image and prompt tokens.
 */
export function labelPositions(g: Graph, labels: Value): LabelPositions {
  const i64 = (shape: (string | number)[]) => ({ outTypes: [{ dtype: 'int64' as const, shape }] });
  const ignore = g.constant(-100, 'int64', []);
  // labels shifted left by one, -100 in the last column: [B, T]
  const B = g.op1('Shape', [labels], { start: 0, end: 1 }, i64([1]));
  const T = g.op1('Shape', [labels], { start: 1, end: 2 }, i64([1]));
  const last = g.op1('Expand', [ignore, g.op1('Concat', [B, g.ints([1])], { axis: 0 }, i64([2]))], {}, i64(['B', 1]));
  const next = g.op1('Slice', [labels, g.ints([1]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])]);
  const shifted = g.op1('Concat', [next, last], { axis: 1 }, i64(['B', 'T']));
  const flat = g.op1('Reshape', [shifted, g.ints([-1])], {}, i64(['?']));
  const keep = g.op1('Not', [g.op1('Equal', [flat, ignore])]);
  // 'label_rows' names the run-time count (K + 1), so a host/device split (graph/split.ts) can read it on the host
  const nz = g.op1(
    'Reshape',
    [g.op1('NonZero', [keep], {}, i64([1, 'label_count'])), g.ints([-1])],
    {},
    i64(['label_count']),
  );
  const rows = g.op1('Concat', [nz, g.ints([0])], { axis: 0 }, i64(['label_rows']));
  const picked = g.op1('Gather', [flat, nz], { axis: 0 }, i64(['label_count']));
  return {
    rows,
    labels: g.op1(
      'Concat',
      [picked, g.constant(new BigInt64Array([-100n]), 'int64', [1])],
      { axis: 0 },
      i64(['label_rows']),
    ),
    sample: g.op1('Div', [rows, T], {}, i64(['label_rows'])),
    batch: B,
  };
}

/** Cross-entropy of the selected rows' logits [K + 1, V]: per-row losses [K + 1] (0 where ignored) and valid mask. */
export function selectedTokenLosses(g: Graph, logits: Value, sel: LabelPositions): { perToken: Value; valid: Value } {
  const ce = softmaxCrossEntropy(logits, sel.labels, { reduction: 'none', ignoreIndex: -100 });
  const valid = g.op1('Cast', [g.op1('Not', [g.op1('Equal', [sel.labels, g.constant(-100, 'int64', [])])])], {
    to: ONNX_DTYPE[logits.dtype],
  });
  return { perToken: ce.loss, valid };
}

/** Sums of each of `values` ([K], one dtype) per batch row: [B] each, through one one-hot [B, K] of `sample`. */
function perSampleSums(g: Graph, sample: Value, batch: Value, ...values: Value[]): Value[] {
  const range = g.op1('Range', [
    g.constant(0, 'int64', []),
    g.op1('Squeeze', [batch, g.ints([0])]),
    g.constant(1, 'int64', []),
  ]);
  const onehot = g.op1('Cast', [g.op1('Equal', [g.op1('Unsqueeze', [range, g.ints([1])]), sample])], {
    to: ONNX_DTYPE[values[0].dtype],
  });
  return values.map((v) =>
    g.op1('Squeeze', [g.op1('MatMul', [onehot, g.op1('Unsqueeze', [v, g.ints([1])])]), g.ints([1])]),
  );
}

// ---- adapters ----------------------------------------------------------------------------------------------------

/** Trained values (by parameter name) -> a peft.ts Adapter (for merging or LoRA graphs), without touching disk. */
export function adapterFromValues(
  model: ModelLike,
  method: TrainMethod,
  lora: LoraOptions | null,
  values: Record<string, Float32Array>,
): Adapter {
  if (method === 'full') throw new Error("method 'full' produces a whole model, not an adapter (saveFullModel)");
  const cfg = model.config;
  const spec = loraSpec(cfg, method, lora ?? { rank: 8, alpha: 8, dropout: 0, targetModules: ['q_proj'] });
  const modules = method === 'projector' ? [] : loraModulesFor(cfg, spec);
  const map = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const m of modules) {
    const a = values[m.keyA];
    const b = values[m.keyB];
    if (!a || !b) throw new Error(`adapter values: missing ${!a ? m.keyA : m.keyB}`);
    map.set(m.module, { a, b });
  }
  const saved = new Map<string, Float32Array>();
  if (method !== 'lora')
    for (const n of projectorParams(cfg)) {
      if (!values[n]) throw new Error(`adapter values: missing projector tensor ${n}`);
      saved.set(n, values[n]);
    }
  return {
    config: {
      r: spec.r,
      alpha: spec.alpha,
      dropout: spec.dropout,
      useRslora: spec.useRslora,
      targetModules: targetModulesRegex(cfg, spec),
      modulesToSave: method === 'lora' ? [] : connectorModules(cfg),
      raw: {},
    },
    scaling: loraScaling(spec),
    modules,
    lora: map,
    saved,
  };
}

/** PEFT adapter folder: adapter_config.json + adapter_model.safetensors. Returns the files written. */
export function saveAdapter(
  dir: string,
  model: ModelLike,
  method: TrainMethod,
  lora: LoraOptions | null,
  values: Record<string, Float32Array>,
  baseModel = '',
): string[] {
  const a = adapterFromValues(model, method, lora, values);
  const spec = loraSpec(model.config, method, lora ?? { rank: 8, alpha: 8, dropout: 0, targetModules: ['q_proj'] });
  return savePeftAdapter(dir, model.config, spec, a.lora, a.saved, baseModel);
}

/** Load a PEFT adapter folder back into (method, lora, values) with the same parameter names as training. */
export function loadAdapter(
  dir: string,
  model: ModelLike,
): { method: TrainMethod; lora: LoraOptions; values: Record<string, Float32Array>; adapter: Adapter } {
  const adapter = loadPeftAdapter(dir, model.config);
  const raw = adapter.config.raw as { lenslab?: { mode?: TrainMethod; targets?: string[]; include_vision?: boolean } };
  const hasProjector = adapter.saved.size > 0;
  const visionPrefix = weightLayout(model.config).vision;
  const method: TrainMethod = raw.lenslab?.mode ?? (hasProjector ? 'lora+projector' : 'lora');
  const targets =
    raw.lenslab?.targets ?? LORA_TARGETS.filter((t) => adapter.modules.some((m) => m.module.endsWith(`.${t}`)));
  const lora: LoraOptions = {
    rank: adapter.config.r,
    alpha: adapter.config.alpha,
    dropout: adapter.config.dropout,
    targetModules: [...targets],
    includeVision:
      raw.lenslab?.include_vision ??
      adapter.modules.some((m) => visionPrefix !== undefined && m.module.startsWith(visionPrefix)),
    useRslora: adapter.config.useRslora,
  };
  const values: Record<string, Float32Array> = {};
  if (method !== 'projector')
    for (const m of adapter.modules) {
      const ab = adapter.lora.get(m.module)!;
      values[m.keyA] = ab.a;
      values[m.keyB] = ab.b;
    }
  for (const [n, v] of adapter.saved) values[n] = v;
  return { method, lora, values, adapter };
}

/** A 'full'-method result as a whole Hugging Face folder (the base folder's files, trained tensors replaced). */
export function saveFullModel(
  dir: string,
  model: HfModel,
  values: Record<string, Float32Array>,
  o: { dtype?: 'F32' | 'F16' | 'BF16' } = {},
): string[] {
  const base = model.weights;
  const weights: TensorSource = {
    names: () => base.names(),
    has: (n) => base.has(n),
    info: (n) => base.info(n),
    get: (n) => values[n] ?? base.get(n),
  };
  return saveHfFolder(dir, {
    config: model.json.config,
    weights,
    tokenizer: model.json.tokenizer,
    tokenizerConfig: model.json.tokenizerConfig,
    preprocessorConfig: model.json.preprocessorConfig,
    processorConfig: model.json.processorConfig,
    generationConfig: model.json.generationConfig,
    chatTemplateJinja: model.json.chatTemplateJinja,
    dtype: o.dtype,
  });
}

// ---- inference -----------------------------------------------------------------------------------------------------

export interface LogitsGraphOptions extends Omit<ForwardGraphOptions, 'adapter' | 'mode'> {
  /** A PEFT Adapter, or trained values with their method and LoRA options. */
  adapter?: Adapter | { method: TrainMethod; lora: LoraOptions | null; values: Record<string, Float32Array> } | null;
}

/** input_ids, attention_mask, pixel_values -> logits [B, T, V] (see llava.ts for the names). */
export function buildLogitsGraph(model: ModelLike, o: LogitsGraphOptions = {}): Graph {
  const a = o.adapter
    ? 'values' in o.adapter
      ? adapterFromValues(model, o.adapter.method, o.adapter.lora, o.adapter.values)
      : o.adapter
    : null;
  return buildForwardGraph(model, { ...o, adapter: a, mode: 'full' });
}

export { buildForwardGraph, IO };
export { DROPOUT_SEED_INPUT, dropoutStepSeed } from './layers';
