// BLIP-2's config.json (transformers' Blip2Config): vision_config (Blip2VisionConfig), qformer_config
// (Blip2QFormerConfig), text_config (OPT: the decoder-only language models; Flan-T5 is refused), num_query_tokens,
// and, in the layout transformers >= 4.47 and the updated Salesforce repositories use, image_token_index: the prompt
// then holds num_query_tokens image tokens in front of the text, which the projected query outputs replace.
// Defaults are the classes' own (Blip2VisionConfig: the EVA ViT-g of blip2-opt-2.7b; Blip2QFormerConfig: BERT-base
// sized; text_config: OPTConfig). Blip2Config sets qformer_config.encoder_hidden_size to the vision hidden size.
import { Reader, type TextConfig, type VisionConfig } from '../../config';
import { optToHf, parseOpt } from '../../decoder/opt';

export interface QFormerConfig {
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  hiddenAct: string;
  layerNormEps: number;
  /** layers l with l % crossAttentionFrequency == 0 cross-attend to the image */
  crossAttentionFrequency: number;
  /** the vision hidden size (keys/values of the cross-attention) */
  encoderHiddenSize: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
}

export interface Blip2ModelConfig {
  kind: 'blip2';
  modelType: 'blip-2';
  /** the vision tower (Blip2VisionModel: class token, patch conv with bias, fused qkv with q/v biases, post_layernorm) */
  vision: VisionConfig;
  qformer: QFormerConfig;
  text: TextConfig;
  numQueryTokens: number;
  /** the image token (image_token_index); every prompt holds numQueryTokens of them */
  imageTokenIndex: number;
  numImageTokens: number;
  tieWordEmbeddings: boolean;
  raw: Record<string, unknown>;
}

const GELUS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu'];

function parseBlip2Vision(r: Reader): VisionConfig {
  const hiddenSize = r.int('hidden_size', 1408);
  const numAttentionHeads = r.int('num_attention_heads', 16);
  if (hiddenSize % numAttentionHeads !== 0)
    r.err('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
  const imageSize = r.int('image_size', 224);
  const patchSize = r.int('patch_size', 14);
  if (patchSize > imageSize) r.err('patch_size', `${patchSize} is larger than image_size ${imageSize}`);
  const numPatches = Math.floor(imageSize / patchSize) ** 2;
  return {
    modelType: 'blip_2_vision_model',
    hiddenSize,
    intermediateSize: r.int('intermediate_size', 6144),
    numHiddenLayers: r.int('num_hidden_layers', 39),
    numAttentionHeads,
    headDim: hiddenSize / numAttentionHeads,
    numChannels: 3,
    imageSize,
    patchSize,
    hiddenAct: r.act('hidden_act', 'gelu'),
    layerNormEps: r.num('layer_norm_eps', 1e-6),
    classToken: true,
    preLayerNorm: false,
    patchBias: true,
    useHead: false,
    numPatches,
    numPositions: numPatches + 1,
    qkvBias: r.bool('qkv_bias', true) ? 'qv' : 'none',
  };
}

function parseQFormer(r: Reader, encoderHiddenSize: number): QFormerConfig {
  const hiddenSize = r.int('hidden_size', 768);
  const numAttentionHeads = r.int('num_attention_heads', 12);
  if (hiddenSize % numAttentionHeads !== 0)
    r.err('num_attention_heads', `${numAttentionHeads} does not divide hidden_size ${hiddenSize}`);
  const hiddenAct = r.str('hidden_act', 'gelu');
  if (!GELUS.includes(hiddenAct))
    r.err('hidden_act', `unsupported activation "${hiddenAct}" (supported: ${GELUS.join(', ')})`);
  const pe = r.str('position_embedding_type', 'absolute');
  if (pe !== 'absolute') r.err('position_embedding_type', `"${pe}" is not supported (absolute)`);
  return {
    hiddenSize,
    numHiddenLayers: r.int('num_hidden_layers', 12),
    numAttentionHeads,
    intermediateSize: r.int('intermediate_size', 3072),
    hiddenAct,
    layerNormEps: r.num('layer_norm_eps', 1e-12),
    crossAttentionFrequency: r.int('cross_attention_frequency', 2),
    encoderHiddenSize,
    vocabSize: r.int('vocab_size', 30522),
    maxPositionEmbeddings: r.int('max_position_embeddings', 512),
  };
}

export function parseBlip2(r: Reader): Blip2ModelConfig {
  const vision = parseBlip2Vision(r.sub('vision_config') ?? new Reader(r.file, {}, 'vision_config'));
  const qformer = parseQFormer(r.sub('qformer_config') ?? new Reader(r.file, {}, 'qformer_config'), vision.hiddenSize);
  const tr = r.sub('text_config') ?? new Reader(r.file, {}, 'text_config');
  const tmt = tr.str('model_type', 'opt');
  if (tmt !== 'opt')
    tr.err(
      'model_type',
      `"${tmt}" is not supported as BLIP-2's language model (opt; Flan-T5 encoder-decoders are not)`,
    );
  const text = parseOpt(tr);
  const numQueryTokens = r.int('num_query_tokens', 32);
  if (!r.has('image_token_index') && !r.has('image_token_id'))
    r.err(
      'image_token_index',
      'is missing: this is the BLIP-2 layout from before transformers 4.47, whose processor does not write image tokens; use the updated checkpoint (its config.json has image_token_index and the tokenizer an "<image>" token)',
    );
  const imageTokenIndex = r.has('image_token_index')
    ? r.int('image_token_index', undefined, 0)
    : r.int('image_token_id', undefined, 0);
  if (imageTokenIndex >= text.vocabSize)
    r.err(
      'image_token_index',
      `${imageTokenIndex} is outside the language model's vocabulary (${text.vocabSize} rows)`,
    );
  return {
    kind: 'blip2',
    modelType: 'blip-2',
    vision,
    qformer,
    text,
    numQueryTokens,
    imageTokenIndex,
    numImageTokens: numQueryTokens,
    tieWordEmbeddings: text.tieWordEmbeddings,
    raw: r.obj,
  };
}

/** A complete Blip2ForConditionalGeneration config.json (the image_token_index layout). */
export function blip2ToHf(c: {
  vision: VisionConfig;
  qformer: QFormerConfig;
  text: TextConfig;
  numQueryTokens: number;
  imageTokenIndex: number;
}): Record<string, unknown> {
  const v = c.vision;
  const q = c.qformer;
  return {
    architectures: ['Blip2ForConditionalGeneration'],
    model_type: 'blip-2',
    num_query_tokens: c.numQueryTokens,
    image_token_index: c.imageTokenIndex,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    use_decoder_only_language_model: true,
    tie_word_embeddings: c.text.tieWordEmbeddings,
    torch_dtype: 'float32',
    vision_config: {
      model_type: 'blip_2_vision_model',
      hidden_size: v.hiddenSize,
      intermediate_size: v.intermediateSize,
      num_hidden_layers: v.numHiddenLayers,
      num_attention_heads: v.numAttentionHeads,
      image_size: v.imageSize,
      patch_size: v.patchSize,
      hidden_act: v.hiddenAct,
      layer_norm_eps: v.layerNormEps,
      attention_dropout: 0.0,
      qkv_bias: v.qkvBias !== 'none',
    },
    qformer_config: {
      model_type: 'blip_2_qformer',
      hidden_size: q.hiddenSize,
      num_hidden_layers: q.numHiddenLayers,
      num_attention_heads: q.numAttentionHeads,
      intermediate_size: q.intermediateSize,
      hidden_act: q.hiddenAct,
      layer_norm_eps: q.layerNormEps,
      cross_attention_frequency: q.crossAttentionFrequency,
      encoder_hidden_size: q.encoderHiddenSize,
      vocab_size: q.vocabSize,
      max_position_embeddings: q.maxPositionEmbeddings,
      position_embedding_type: 'absolute',
      hidden_dropout_prob: 0.1,
      attention_probs_dropout_prob: 0.1,
    },
    text_config: { ...optToHf(c.text), architectures: ['OPTForCausalLM'] },
  };
}
