// Idefics3 / SmolVLM config.json (transformers' Idefics3Config, SmolVLMConfig), parsed into the normalized
// Idefics3ModelConfig and written back. Defaults are transformers' own: Idefics3Config(image_token_id=128257,
// tie_word_embeddings=False, scale_factor=2), Idefics3VisionConfig(hidden_size=1152, intermediate_size=3072,
// num_hidden_layers=12, num_attention_heads=16, image_size=224, patch_size=32, gelu_pytorch_tanh, eps 1e-6),
// text_config LlamaConfig(rms_norm_eps=1e-5, pad_token_id=128002).
import { parseTextSub, parseVision, Reader, textToHf, type TextConfig, type VisionConfig } from '../../config';

type Obj = Record<string, unknown>;

export interface Idefics3ModelConfig {
  kind: 'idefics3';
  modelType: 'idefics3' | 'smolvlm';
  /** SigLIP-style tower (no class token, patch conv with bias, post_layernorm applied) */
  vision: VisionConfig;
  /** vision_config.model_type as published (idefics3_vision / smolvlm_vision) */
  visionModelType: string;
  text: TextConfig;
  /** pixel shuffle factor: scale_factor^2 neighbouring patches become one token */
  scaleFactor: number;
  /** modality_projection.proj: [text hidden, vision hidden * scale_factor^2], no bias */
  connector: { inFeatures: number; outFeatures: number };
  imageTokenIndex: number;
  /** image tokens per frame (the processor's image_seq_len): (image_size / patch_size)^2 / scale_factor^2 */
  numImageTokens: number;
  tieWordEmbeddings: boolean;
  raw: Obj;
}

const VISION_TYPES = ['idefics3_vision', 'smolvlm_vision', 'idefics3', 'smolvlm', 'siglip_vision_model'];

export function parseIdefics3(r: Reader, modelType: string): Idefics3ModelConfig {
  const vr = r.sub('vision_config') ?? new Reader(r.file, {}, 'vision_config');
  const vmt = vr.str('model_type', modelType === 'smolvlm' ? 'smolvlm_vision' : 'idefics3_vision');
  if (!VISION_TYPES.includes(vmt))
    vr.err('model_type', `unknown vision model_type "${vmt}" (supported: ${VISION_TYPES.join(', ')})`);
  const vision = {
    ...parseVision(vr, 'siglip_vision_model', {
      hidden_size: 1152,
      intermediate_size: 3072,
      num_hidden_layers: 12,
      num_attention_heads: 16,
      patch_size: 32,
    }),
    useHead: false,
  };
  const side = vision.imageSize / vision.patchSize;
  if (!Number.isInteger(side))
    vr.err('patch_size', `${vision.patchSize} does not divide image_size ${vision.imageSize}`);
  const text = parseTextSub(r.sub('text_config') ?? new Reader(r.file, {}, 'text_config'));
  const scaleFactor = r.int('scale_factor', 2);
  if (side % scaleFactor !== 0)
    r.err(
      'scale_factor',
      `${scaleFactor} does not divide the ${side} x ${side} patch grid (vision_config.image_size / patch_size)`,
    );
  const imageTokenIndex = r.int('image_token_id', 128257, 0);
  if (imageTokenIndex >= text.vocabSize)
    r.err(
      'image_token_id',
      `${imageTokenIndex} is outside the vocabulary of ${text.vocabSize} (text_config.vocab_size)`,
    );
  const tie = r.bool('tie_word_embeddings', false) || text.tieWordEmbeddings;
  return {
    kind: 'idefics3',
    modelType: modelType as 'idefics3' | 'smolvlm',
    vision,
    visionModelType: vmt,
    text: { ...text, tieWordEmbeddings: tie },
    scaleFactor,
    connector: { inFeatures: vision.hiddenSize * scaleFactor * scaleFactor, outFeatures: text.hiddenSize },
    imageTokenIndex,
    numImageTokens: (side * side) / (scaleFactor * scaleFactor),
    tieWordEmbeddings: tie,
    raw: r.obj,
  };
}

export interface Idefics3ConfigInput {
  modelType?: 'idefics3' | 'smolvlm';
  vision: VisionConfig;
  text: TextConfig;
  scaleFactor: number;
  imageTokenId: number;
}

/** A complete config.json object as Idefics3ForConditionalGeneration (or SmolVLM) publishes it. */
export function idefics3ToHf(c: Idefics3ConfigInput): Obj {
  const mt = c.modelType ?? 'idefics3';
  const v = c.vision;
  return {
    architectures: [mt === 'smolvlm' ? 'SmolVLMForConditionalGeneration' : 'Idefics3ForConditionalGeneration'],
    model_type: mt,
    image_token_id: c.imageTokenId,
    scale_factor: c.scaleFactor,
    tie_word_embeddings: c.text.tieWordEmbeddings,
    use_cache: true,
    vision_config: {
      model_type: mt === 'smolvlm' ? 'smolvlm_vision' : 'idefics3_vision',
      hidden_size: v.hiddenSize,
      intermediate_size: v.intermediateSize,
      num_hidden_layers: v.numHiddenLayers,
      num_attention_heads: v.numAttentionHeads,
      num_channels: v.numChannels,
      image_size: v.imageSize,
      patch_size: v.patchSize,
      hidden_act: v.hiddenAct,
      layer_norm_eps: v.layerNormEps,
      attention_dropout: 0.0,
      initializer_range: 0.02,
    },
    text_config: textToHf(c.text),
    torch_dtype: 'float32',
  };
}
