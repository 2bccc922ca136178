// config.json of BLIP (model_type "blip"): transformers' BlipConfig with a text_config (BlipTextConfig) and a
// vision_config (BlipVisionConfig), read with transformers' defaults. The architecture (BlipForQuestionAnswering or
// BlipForConditionalGeneration) comes from `architectures`.
//
// Label smoothing: transformers up to 4.3x hard-coded CrossEntropyLoss(label_smoothing=0.1) in BlipTextLMHeadModel
// (the published blip-vqa-base / captioning recipes trained with it); later versions read text_config.label_smoothing.
// A config that names it is followed; one that does not (the published checkpoints) gets 0.1.

import { ConfigError, Reader } from '../../config';
import type { BlipVisionConfig } from '../../vision/blip-vit';
import type { BertBlockConfig } from '../../text/bert';

export type BlipArchitecture = 'BlipForQuestionAnswering' | 'BlipForConditionalGeneration';
export const BLIP_ARCHITECTURES: readonly BlipArchitecture[] = [
  'BlipForQuestionAnswering',
  'BlipForConditionalGeneration',
];

export interface BlipTextConfig extends BertBlockConfig {
  vocabSize: number;
  encoderHiddenSize: number;
  numHiddenLayers: number;
  maxPositionEmbeddings: number;
  bosTokenId: number;
  padTokenId: number;
  sepTokenId: number;
  eosTokenId: number;
  labelSmoothing: number;
}

export interface BlipConfig {
  kind: 'blip';
  architecture: BlipArchitecture;
  vision: BlipVisionConfig;
  text: BlipTextConfig;
  raw: Record<string, unknown>;
}

function parseText(r: Reader): BlipTextConfig {
  const hiddenSize = r.int('hidden_size', 768);
  const numAttentionHeads = r.int('num_attention_heads', 8);
  if (hiddenSize % numAttentionHeads !== 0)
    r.err('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
  const hiddenAct = r.str('hidden_act', 'gelu');
  if (!['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu'].includes(hiddenAct))
    r.err('hidden_act', `"${hiddenAct}" is not supported`);
  const labelSmoothing = r.num('label_smoothing', 0.1);
  if (!(labelSmoothing >= 0 && labelSmoothing < 1))
    r.err('label_smoothing', `must be in [0, 1) (got ${labelSmoothing})`);
  return {
    vocabSize: r.int('vocab_size', 30524),
    hiddenSize,
    encoderHiddenSize: r.int('encoder_hidden_size', 768),
    intermediateSize: r.int('intermediate_size', 3072),
    numHiddenLayers: r.int('num_hidden_layers', 12),
    numAttentionHeads,
    maxPositionEmbeddings: r.int('max_position_embeddings', 512),
    hiddenAct,
    layerNormEps: r.num('layer_norm_eps', 1e-12),
    bosTokenId: r.int('bos_token_id', 30522, 0),
    padTokenId: r.int('pad_token_id', 0, 0),
    sepTokenId: r.int('sep_token_id', 102, 0),
    eosTokenId: r.int('eos_token_id', 2, 0),
    labelSmoothing,
  };
}

function parseVisionBlip(r: Reader): BlipVisionConfig {
  const hiddenSize = r.int('hidden_size', 768);
  const numAttentionHeads = r.int('num_attention_heads', 12);
  if (hiddenSize % numAttentionHeads !== 0)
    r.err('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
  const imageSize = r.int('image_size', 384);
  const patchSize = r.int('patch_size', 16);
  if (patchSize > imageSize) r.err('patch_size', `${patchSize} is larger than image_size ${imageSize}`);
  const hiddenAct = r.str('hidden_act', 'gelu');
  if (!['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'quick_gelu', 'relu'].includes(hiddenAct))
    r.err('hidden_act', `"${hiddenAct}" is not supported`);
  return {
    hiddenSize,
    intermediateSize: r.int('intermediate_size', 3072),
    numHiddenLayers: r.int('num_hidden_layers', 12),
    numAttentionHeads,
    imageSize,
    patchSize,
    numChannels: r.int('num_channels', 3),
    layerNormEps: r.num('layer_norm_eps', 1e-5),
    hiddenAct,
    qkvBias: 'full',
  };
}

/** Whether a config.json object is a BLIP model (model_type "blip"). */
export function isBlipConfigJson(json: unknown): boolean {
  return !!json && typeof json === 'object' && (json as { model_type?: unknown }).model_type === 'blip';
}

/** Parse a BLIP config.json object (errors name the file and field). */
export function parseBlipConfig(json: unknown, file = 'config.json'): BlipConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ConfigError(file, '', 'is not a JSON object');
  const r = new Reader(file, json as Record<string, unknown>, '');
  const mt = r.str('model_type', '');
  if (mt !== 'blip') r.err('model_type', `"${mt}" is not BLIP`);
  const archs = (json as { architectures?: unknown }).architectures;
  const arch = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : 'BlipForQuestionAnswering';
  if (!BLIP_ARCHITECTURES.includes(arch as BlipArchitecture))
    r.err('architectures', `"${arch}" is not supported (supported: ${BLIP_ARCHITECTURES.join(', ')})`);
  const vision = parseVisionBlip(r.sub('vision_config') ?? new Reader(file, {}, 'vision_config'));
  const tr = r.sub('text_config') ?? new Reader(file, {}, 'text_config');
  const text = parseText(tr);
  if (text.encoderHiddenSize !== vision.hiddenSize)
    tr.err(
      'encoder_hidden_size',
      `${text.encoderHiddenSize} must equal vision_config.hidden_size ${vision.hiddenSize} (the text encoder attends to the image)`,
    );
  if (arch === 'BlipForQuestionAnswering' && text.encoderHiddenSize !== text.hiddenSize)
    tr.err(
      'encoder_hidden_size',
      `${text.encoderHiddenSize} must equal hidden_size ${text.hiddenSize} (the answer decoder attends to the question)`,
    );
  return { kind: 'blip', architecture: arch as BlipArchitecture, vision, text, raw: json as Record<string, unknown> };
}

/** config.json of a BLIP model (every field written). */
export function blipToHf(
  c: Omit<BlipConfig, 'raw' | 'kind'>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const v = c.vision;
  const t = c.text;
  return {
    architectures: [c.architecture],
    model_type: 'blip',
    projection_dim: 512,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    logit_scale_init_value: 2.6592,
    text_config: {
      model_type: 'blip_text_model',
      vocab_size: t.vocabSize,
      hidden_size: t.hiddenSize,
      encoder_hidden_size: t.encoderHiddenSize,
      intermediate_size: t.intermediateSize,
      num_hidden_layers: t.numHiddenLayers,
      num_attention_heads: t.numAttentionHeads,
      max_position_embeddings: t.maxPositionEmbeddings,
      hidden_act: t.hiddenAct,
      layer_norm_eps: t.layerNormEps,
      bos_token_id: t.bosTokenId,
      pad_token_id: t.padTokenId,
      sep_token_id: t.sepTokenId,
      eos_token_id: t.eosTokenId,
      is_decoder: true,
      use_cache: true,
      label_smoothing: t.labelSmoothing,
    },
    vision_config: {
      model_type: 'blip_vision_model',
      hidden_size: v.hiddenSize,
      intermediate_size: v.intermediateSize,
      num_hidden_layers: v.numHiddenLayers,
      num_attention_heads: v.numAttentionHeads,
      num_channels: v.numChannels,
      image_size: v.imageSize,
      patch_size: v.patchSize,
      hidden_act: v.hiddenAct,
      layer_norm_eps: v.layerNormEps,
    },
    ...extra,
  };
}
