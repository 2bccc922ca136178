// BLIP-2 (transformers' Blip2ForConditionalGeneration with an OPT language model): the vision model (Blip2VisionModel:
// EVA-style ViT with a class token, fused qkv with q/v biases, post_layernorm; vision/blip-vit.ts), the Q-Former
// (qformer.ts: num_query_tokens learned queries cross-attending to the image) and language_projection give
// num_query_tokens features per image, which replace the prompt's image tokens (image_token_index) in front of the
// text, as transformers >= 4.47 does with the processor's num_query_tokens "<image>" tokens; OPT decoder.
//
// Published layout (canonical names): vision_model.*, query_tokens, qformer.*, language_projection.*,
// language_model.model.decoder.*, language_model.lm_head.weight (tied to embed_tokens: ignored on load).
//
// Prompts: BLIP-2 folders publish no chat template; the built-in one writes what Blip2Processor gives,
// "<image>" (expanded to num_query_tokens image tokens) then "</s>" then the text: nothing for prompt-free
// captioning (captions train and evaluate with no prompt), "Question: ... Answer:" for VQA. Answers are trained as " answer\n" (a space after a prompt; "\n" is
// the published text_config.eos_token_id, as LAVIS trained BLIP-2), inside {% generation %} so the loss mask follows.
// LoRA: PEFT's default targets for blip-2 are OPT's q_proj / v_proj; the 'projector' method is Q-Former-only
// (qformer + language_projection, saved as modules_to_save; the query_tokens parameter is not a module, so PEFT
// cannot save it and it stays frozen).
import { PreprocessorError, ImageProcessor, parsePreprocessorConfig } from '../../image-processor';
import { blipVisionModel, blipVisionTensors, type BlipVisionConfig } from '../../vision/blip-vit';
import type { VisionConfig } from '../../config';
import { decoderTensors } from '../../weights/names';
import type { VlmFamily } from '../types';
import type { VisionTowerBuilder } from '../../registry';
import { parseBlip2, type Blip2ModelConfig } from './config';
import { qformerFeatures, qformerTensors } from './qformer';

const LAYOUT = {
  vision: 'vision_model.',
  projector: 'qformer.',
  decoder: 'language_model.model.decoder.',
  lmHead: 'language_model.lm_head.weight',
};

export const BLIP2_CHAT_TEMPLATE =
  '{%- set ns = namespace(text=false, image=false) -%}' +
  "{%- for message in messages -%}{%- if '<image>' in message['content'] -%}{%- set ns.image = true -%}{%- endif -%}{%- endfor -%}" +
  "{%- if ns.image -%}{{ '<image>' }}{%- endif -%}{{ bos_token }}" +
  '{%- for message in messages -%}' +
  "{%- if message['role'] == 'user' -%}" +
  "{%- set t = message['content'] | replace('<image>\\n', '') | replace('<image>', '') | trim -%}" +
  "{%- if t -%}{{ (' ' if ns.text else '') + t }}{%- set ns.text = true -%}{%- endif -%}" +
  "{%- elif message['role'] == 'assistant' -%}" +
  "{%- generation -%}{{ (' ' if ns.text else '') + (message['content'] | trim) + '\\n' }}{%- endgeneration -%}" +
  '{%- set ns.text = false -%}' +
  '{%- endif -%}' +
  '{%- endfor -%}';

/** The vision config as blip-vit.ts takes it. */
export function blip2VisionConfig(v: VisionConfig): BlipVisionConfig {
  return {
    hiddenSize: v.hiddenSize,
    intermediateSize: v.intermediateSize,
    numHiddenLayers: v.numHiddenLayers,
    numAttentionHeads: v.numAttentionHeads,
    imageSize: v.imageSize,
    patchSize: v.patchSize,
    numChannels: v.numChannels,
    layerNormEps: v.layerNormEps,
    hiddenAct: v.hiddenAct,
    qkvBias: v.qkvBias ?? 'qv',
  };
}

export const blip2Family: VlmFamily<Blip2ModelConfig> = {
  name: 'blip2',
  modelTypes: ['blip-2'],
  architecture: 'Blip2ForConditionalGeneration',
  parseConfig: (r) => parseBlip2(r),
  describe: (c) => `blip-2-${c.text.modelType}`,
  connectorLabel: (c) => `Q-Former (${c.qformer.numHiddenLayers} layers, ${c.numQueryTokens} queries) + linear`,
  layout: () => LAYOUT,
  tensors: (c) => [
    ...blipVisionTensors(blip2VisionConfig(c.vision), LAYOUT.vision),
    ...qformerTensors(c.qformer, c.numQueryTokens, c.text.hiddenSize),
    ...decoderTensors(c.text, LAYOUT.decoder, LAYOUT.lmHead),
  ],
  canonicalName(c, stored) {
    if (stored === LAYOUT.lmHead && c.tieWordEmbeddings) return null;
    // the Q-Former's text path (feed-forward for text tokens, embeddings) never runs for generation
    if (
      /^qformer\.encoder\.layer\.\d+\.(intermediate|output)\./.test(stored) ||
      stored.startsWith('qformer.embeddings.')
    )
      return null;
    return stored;
  },
  imageFeatures(w, c, pixelValues) {
    const image = blipVisionModel(w, blip2VisionConfig(c.vision), LAYOUT.vision, pixelValues);
    return qformerFeatures(w, c.qformer, c.numQueryTokens, image);
  },
  // the Q-Former-only method caches the vision model's output and runs the Q-Former in the training graph
  splitFeatures: {
    tower: (w, c, pixelValues) => blipVisionModel(w, blip2VisionConfig(c.vision), LAYOUT.vision, pixelValues),
    towerShape: (c) => ({ tokens: c.vision.numPositions, dim: c.vision.hiddenSize }),
    connector: (w, c, x) => qformerFeatures(w, c.qformer, c.numQueryTokens, x),
  },
  unusedVisionTensor: () => false,
  imageProcessor(c, json, file, processorConfig) {
    const pc = parsePreprocessorConfig(json, file);
    const s = pc.size;
    const side = 'height' in s ? (s.height === s.width ? s.height : -1) : s.shortestEdge;
    const out = pc.doCenterCrop ? (pc.cropSize.height === pc.cropSize.width ? pc.cropSize.height : -1) : side;
    if (out !== c.vision.imageSize)
      throw new PreprocessorError(
        `${file}: field "size": ${JSON.stringify(pc.raw.size ?? null)} does not give the vision model's image_size ${c.vision.imageSize} x ${c.vision.imageSize} (config.json)`,
      );
    const nq = processorConfig?.num_query_tokens;
    if (nq !== undefined && nq !== null && nq !== c.numQueryTokens)
      throw new PreprocessorError(
        `processor_config.json: field "num_query_tokens": ${JSON.stringify(nq)} does not match config.json's num_query_tokens ${c.numQueryTokens}`,
      );
    const p = new ImageProcessor(pc);
    return {
      base: p,
      async process(input) {
        const pv = await p.process(input);
        return { data: pv.data, frames: 1, height: pv.height, width: pv.width, rows: 0, cols: 0 };
      },
      gridOf: async () => ({ rows: 0, cols: 0 }),
      grid: () => ({ rows: 0, cols: 0 }),
      maxGrid: () => ({ rows: 0, cols: 0 }),
    };
  },
  imageTokenIds: (c) => new Array<number>(c.numQueryTokens).fill(c.imageTokenIndex),
  requiredTokens: () => [],
  peft: {
    decoderLayers: 'language_model\\.model\\.decoder',
    visionLayers: 'vision_model',
    connector: 'qformer',
    connectorModules: ['qformer', 'language_projection'],
    alternativeNames: (m) => [m],
  },
  chat: {
    template: BLIP2_CHAT_TEMPLATE,
    origin: 'built-in BLIP-2 template',
    addSpecialTokens: false,
    captionPrompt: '',
  },
  shape: (c) => ({
    vision: {
      hiddenSize: c.vision.hiddenSize,
      intermediateSize: c.vision.intermediateSize,
      numLayers: c.vision.numHiddenLayers,
      numHeads: c.vision.numAttentionHeads,
      tokensPerImage: c.vision.numPositions,
      patchSize: c.vision.patchSize,
      numChannels: c.vision.numChannels,
    },
    connector: {
      inFeatures: c.qformer.hiddenSize,
      outFeatures: c.text.hiddenSize,
      type: 'linear',
      params: qformerTensors(c.qformer, c.numQueryTokens, c.text.hiddenSize).reduce(
        (n, s) => n + s.shape.reduce((a, b) => a * b, 1),
        0,
      ),
    },
    tokensPerFrame: c.numQueryTokens,
    maxFramesPerImage: 1,
  }),
};

export type { Blip2ModelConfig };

/** The vision model as a registry tower: last_hidden_state (post_layernorm) only, the one state BLIP-2 reads. */
export const blip2VisionTower: VisionTowerBuilder = (w, cfg, prefix, pixelValues, o = {}) => {
  const want = o.states ?? [cfg.numHiddenLayers];
  if (want.some((i) => i !== cfg.numHiddenLayers))
    throw new Error(
      `BLIP-2 vision model: only the last hidden state (${cfg.numHiddenLayers}) is computed, not ${JSON.stringify(want)}`,
    );
  const last = blipVisionModel(w, blip2VisionConfig(cfg), prefix, pixelValues);
  return { states: new Map([[cfg.numHiddenLayers, last]]), last };
};
