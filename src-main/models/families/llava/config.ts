// LLaVA's config.json (transformers' LlavaConfig): parsed into the normalized LlavaModelConfig, and written back in
// the classic LlavaForConditionalGeneration layout. Defaults are LlavaConfig's own (its default vision tower is
// CLIP ViT-L/14-336, its default text model LLaMA).
import {
  parseTextSub,
  parseVision,
  parseVisionSub,
  Reader,
  textToHf,
  visionToHf,
  type Activation,
  type LlavaModelConfig,
  type ProjectorConfig,
  type TextConfig,
  type VisionConfig,
} from '../../config';

type Obj = Record<string, unknown>;

export function parseLlava(r: Reader): LlavaModelConfig {
  const vr = r.sub('vision_config');
  // LlavaConfig's default vision tower is CLIP ViT-L/14-336
  const vision = vr
    ? parseVisionSub(vr)
    : parseVision(new Reader(r.file, {}, 'vision_config'), 'clip_vision_model', {
        intermediate_size: 4096,
        hidden_size: 1024,
        patch_size: 14,
        image_size: 336,
        num_hidden_layers: 24,
        num_attention_heads: 16,
      });
  const text = parseTextSub(r.sub('text_config') ?? new Reader(r.file, {}, 'text_config'));
  const strategy = r.str('vision_feature_select_strategy', 'default');
  if (strategy !== 'default' && strategy !== 'full')
    r.err('vision_feature_select_strategy', `must be "default" or "full", got "${strategy}"`);
  const rawLayer = r.obj.vision_feature_layer ?? -2;
  const nStates = vision.numHiddenLayers + 1; // hidden_states = embeddings + one per layer
  const layers = Array.isArray(rawLayer) ? rawLayer : [rawLayer];
  if (layers.length === 0) r.err('vision_feature_layer', 'is an empty list');
  const visionFeatureLayers = layers.map((l) => {
    if (typeof l !== 'number' || !Number.isInteger(l))
      r.err('vision_feature_layer', `must be an integer or a list of integers, got ${JSON.stringify(rawLayer)}`);
    const idx = l < 0 ? nStates + l : l;
    if (idx < 0 || idx >= nStates)
      r.err('vision_feature_layer', `${l} is out of range for a vision tower with ${vision.numHiddenLayers} layers`);
    return idx;
  });
  const ptype = r.str('mm_projector_type', 'mlp2x_gelu');
  if (ptype !== 'linear' && !/^mlp2x_/.test(ptype))
    r.err('mm_projector_type', `unsupported projector "${ptype}" (supported: linear, mlp2x_gelu)`);
  const projector: ProjectorConfig = {
    type: ptype === 'linear' ? 'linear' : 'mlp',
    inFeatures: vision.hiddenSize * visionFeatureLayers.length,
    outFeatures: text.hiddenSize,
    hiddenAct: r.act('projector_hidden_act', 'gelu'),
    bias: r.bool('multimodal_projector_bias', true),
  };
  const imageTokenIndex = r.has('image_token_index')
    ? r.int('image_token_index', undefined, 0)
    : r.int('image_token_id', 32000, 0);
  // image_token_index may equal vocab_size (LlavaConfig's own defaults do): image positions are replaced by image
  // features, so the id is never looked up in embed_tokens (the compiled graph must not gather it either).
  // LlavaConfig: tie_word_embeddings defaults to False but is forwarded from text_config when that says true
  const tie = r.bool('tie_word_embeddings', false) || text.tieWordEmbeddings;
  return {
    kind: 'llava',
    modelType: 'llava',
    vision,
    text: { ...text, tieWordEmbeddings: tie },
    projector,
    imageTokenIndex,
    visionFeatureLayer: rawLayer as number | number[],
    visionFeatureLayers,
    visionFeatureSelectStrategy: strategy,
    imageSeqLength: r.int('image_seq_length', 576),
    numImageTokens: vision.numPositions - (strategy === 'default' ? 1 : 0),
    tieWordEmbeddings: tie,
    raw: r.obj,
  };
}

export interface LlavaConfigInput {
  vision: VisionConfig;
  text: TextConfig;
  projectorType?: 'mlp' | 'linear';
  projectorHiddenAct?: Activation;
  projectorBias?: boolean;
  imageTokenIndex: number;
  visionFeatureLayer?: number | number[];
  visionFeatureSelectStrategy?: 'default' | 'full';
}

/** A complete LLaVA config.json object (classic LlavaForConditionalGeneration layout). Parse it to get the normalized form. */
export function llavaToHf(c: LlavaConfigInput): Obj {
  const strategy = c.visionFeatureSelectStrategy ?? 'default';
  const o: Obj = {
    architectures: ['LlavaForConditionalGeneration'],
    model_type: 'llava',
    vision_config: visionToHf(c.vision),
    text_config: textToHf(c.text),
    image_token_index: c.imageTokenIndex,
    projector_hidden_act: c.projectorHiddenAct ?? 'gelu',
    multimodal_projector_bias: c.projectorBias ?? true,
    vision_feature_layer: c.visionFeatureLayer ?? -2,
    vision_feature_select_strategy: strategy,
    image_seq_length: c.vision.numPositions - (strategy === 'default' ? 1 : 0),
    tie_word_embeddings: c.text.tieWordEmbeddings,
    torch_dtype: 'float32',
  };
  if (c.projectorType === 'linear') o.mm_projector_type = 'linear';
  return o;
}
