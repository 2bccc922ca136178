// config.json of a dual-encoder (contrastive) model: transformers' CLIPConfig (model_type "clip") and SiglipConfig
// ("siglip"), each a text_config and a vision_config with transformers' defaults. These are not vision-language
// families (no decoder): config.ts still reads them as a vision tower for LLaVA composition; this reader adds the text
// tower, the projections and the logit scale / bias that CLIPModel / SiglipModel use.

import { ConfigError, Reader, parseVision, type Activation, type VisionConfig } from '../../config';

export type ContrastiveKind = 'clip' | 'siglip';

export interface ContrastiveTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  headDim: number;
  /** the text tower's positions: longer texts are truncated */
  maxPositionEmbeddings: number;
  hiddenAct: Activation;
  layerNormEps: number;
  padTokenId: number;
  bosTokenId: number;
  eosTokenId: number;
  /** SigLIP's text head output size (projection_size, default hidden_size); CLIP has text_projection instead */
  projectionSize: number;
}

export interface ContrastiveConfig {
  kind: ContrastiveKind;
  modelType: ContrastiveKind;
  vision: VisionConfig;
  text: ContrastiveTextConfig;
  /** CLIP's projection_dim (visual_projection / text_projection outputs); SigLIP: the embedding size */
  projectionDim: number;
  raw: Record<string, unknown>;
}

function parseText(r: Reader, kind: ContrastiveKind): ContrastiveTextConfig {
  const clip = kind === 'clip';
  const hiddenSize = r.int('hidden_size', clip ? 512 : 768);
  const numAttentionHeads = r.int('num_attention_heads', clip ? 8 : 12);
  if (hiddenSize % numAttentionHeads !== 0)
    r.err('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
  return {
    vocabSize: r.int('vocab_size', clip ? 49408 : 32000),
    hiddenSize,
    intermediateSize: r.int('intermediate_size', clip ? 2048 : 3072),
    numHiddenLayers: r.int('num_hidden_layers', 12),
    numAttentionHeads,
    headDim: hiddenSize / numAttentionHeads,
    maxPositionEmbeddings: r.int('max_position_embeddings', clip ? 77 : 64),
    hiddenAct: r.act('hidden_act', clip ? 'quick_gelu' : 'gelu_pytorch_tanh'),
    layerNormEps: r.num('layer_norm_eps', clip ? 1e-5 : 1e-6),
    padTokenId: r.int('pad_token_id', 1, 0),
    bosTokenId: r.int('bos_token_id', clip ? 49406 : 49406, 0),
    eosTokenId: r.int('eos_token_id', clip ? 49407 : 49407, 0),
    projectionSize: r.int('projection_size', hiddenSize),
  };
}

/** Parse a CLIP / SigLIP config.json object (errors name the file and field). */
export function parseContrastiveConfig(json: unknown, file = 'config.json'): ContrastiveConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ConfigError(file, '', 'is not a JSON object');
  const r = new Reader(file, json as Record<string, unknown>, '');
  const mt = r.str('model_type', '');
  if (mt !== 'clip' && mt !== 'siglip')
    r.err('model_type', `"${mt}" is not a contrastive image-text model (supported: clip, siglip)`);
  const kind = mt as ContrastiveKind;
  const vr = r.sub('vision_config') ?? new Reader(file, {}, 'vision_config');
  const tr = r.sub('text_config') ?? new Reader(file, {}, 'text_config');
  const vision = parseVision(vr, kind === 'clip' ? 'clip_vision_model' : 'siglip_vision_model');
  const text = parseText(tr, kind);
  if (kind === 'siglip' && !vision.useHead)
    vr.err(
      'vision_use_head',
      'SiglipModel pools images with its attention head; vision_use_head false has no image embedding',
    );
  let projectionDim: number;
  if (kind === 'clip') projectionDim = r.int('projection_dim', 512);
  else {
    if (text.projectionSize !== vision.hiddenSize)
      tr.err(
        'projection_size',
        `${text.projectionSize} must equal vision_config.hidden_size ${vision.hiddenSize} (the text and image embeddings are compared)`,
      );
    projectionDim = vision.hiddenSize;
  }
  return { kind, modelType: kind, vision, text, projectionDim, raw: json as Record<string, unknown> };
}

/** config.json of a contrastive model (every field written). */
export function contrastiveToHf(
  c: Omit<ContrastiveConfig, 'raw' | 'modelType'>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const v = c.vision;
  const t = c.text;
  const clip = c.kind === 'clip';
  return {
    architectures: [clip ? 'CLIPModel' : 'SiglipModel'],
    model_type: c.kind,
    ...(clip ? { projection_dim: c.projectionDim, logit_scale_init_value: 2.6592 } : {}),
    text_config: {
      model_type: clip ? 'clip_text_model' : 'siglip_text_model',
      vocab_size: t.vocabSize,
      hidden_size: t.hiddenSize,
      intermediate_size: t.intermediateSize,
      num_hidden_layers: t.numHiddenLayers,
      num_attention_heads: t.numAttentionHeads,
      max_position_embeddings: t.maxPositionEmbeddings,
      hidden_act: t.hiddenAct,
      layer_norm_eps: t.layerNormEps,
      pad_token_id: t.padTokenId,
      bos_token_id: t.bosTokenId,
      eos_token_id: t.eosTokenId,
      ...(clip ? { projection_dim: c.projectionDim } : { projection_size: t.projectionSize }),
    },
    vision_config: {
      model_type: clip ? 'clip_vision_model' : 'siglip_vision_model',
      hidden_size: v.hiddenSize,
      intermediate_size: v.intermediateSize,
      num_hidden_layers: v.numHiddenLayers,
      num_attention_heads: v.numAttentionHeads,
      num_channels: v.numChannels,
      image_size: v.imageSize,
      patch_size: v.patchSize,
      hidden_act: v.hiddenAct,
      layer_norm_eps: v.layerNormEps,
      ...(clip ? { projection_dim: c.projectionDim } : { vision_use_head: true }),
    },
    ...extra,
  };
}
