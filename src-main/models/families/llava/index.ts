// LLaVA (transformers' LlavaForConditionalGeneration): CLIP or SigLIP vision tower, feature layer(s) and select
// strategy, MLP (or linear) projector, LLaMA / Qwen2 decoder. One <image> is one frame of numImageTokens tokens.
//
// Canonical names are the classic layout (transformers < 4.52), which Lenslab also writes:
//   vision_tower.vision_model.*   multi_modal_projector.linear_{1,2}.*   language_model.model.*   language_model.lm_head.weight
// transformers >= 4.52 saves model.vision_tower.*, model.multi_modal_projector.*, model.language_model.*, lm_head.weight;
// those are accepted on load and mapped to the canonical names.
import type { Value } from '../../../engine/graph/builder';
import type { LlavaModelConfig } from '../../config';
import type { GraphWeights } from '../../layers';
import { ImageProcessor, parsePreprocessorConfig } from '../../image-processor';
import { projector } from '../../projector/mlp';
import { visionTowerFor } from '../../registry';
import { decoderTensors, projectorTensors, visionTensors } from '../../weights/names';
import type { VlmFamily } from '../types';
import { parseLlava } from './config';
import { llavaGguf } from './gguf';

const LAYOUT = {
  vision: 'vision_tower.vision_model.',
  projector: 'multi_modal_projector.',
  decoder: 'language_model.model.',
  lmHead: 'language_model.lm_head.weight',
};

/** The tower's hidden states at the feature layer(s), class token dropped by the 'default' strategy, concatenated. */
function selectedFeatures(w: GraphWeights, c: LlavaModelConfig, pixelValues: Value): Value {
  const g = w.g;
  const layers = c.visionFeatureLayers;
  const r = visionTowerFor(c.vision)(w, c.vision, LAYOUT.vision, pixelValues, { states: layers });
  let feats = layers.map((l) => r.states.get(l)!);
  if (c.visionFeatureSelectStrategy === 'default')
    feats = feats.map((f) => g.op1('Slice', [f, g.ints([1]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])]));
  return feats.length === 1 ? feats[0] : g.op1('Concat', feats, { axis: -1 });
}

export const llavaFamily: VlmFamily<LlavaModelConfig> = {
  name: 'llava',
  modelTypes: ['llava'],
  architecture: 'LlavaForConditionalGeneration',
  parseConfig: (r) => parseLlava(r),
  describe: (c) => `llava-${c.text.modelType}`,
  connectorLabel: (c) => `${c.projector.type}${c.projector.type === 'mlp' ? ` (${c.projector.hiddenAct})` : ''}`,
  layout: () => LAYOUT,
  tensors: (c) => [
    ...visionTensors(c.vision, LAYOUT.vision),
    ...projectorTensors(c.projector, LAYOUT.projector),
    ...decoderTensors(c.text, LAYOUT.decoder, LAYOUT.lmHead),
  ],
  canonicalName(c, stored) {
    let n = stored;
    if (n.startsWith('model.language_model.')) n = 'language_model.model.' + n.slice('model.language_model.'.length);
    else if (n.startsWith('model.vision_tower.')) n = n.slice('model.'.length);
    else if (n.startsWith('model.multi_modal_projector.')) n = n.slice('model.'.length);
    else if (n === 'lm_head.weight') n = 'language_model.lm_head.weight';
    if (n === 'language_model.lm_head.weight' && c.tieWordEmbeddings) return null;
    return n;
  },
  imageFeatures(w, c, pixelValues) {
    return projector(w, c.projector, LAYOUT.projector, selectedFeatures(w, c, pixelValues));
  },
  splitFeatures: {
    tower: (w, c, pixelValues) => selectedFeatures(w, c, pixelValues),
    towerShape: (c) => ({ tokens: c.numImageTokens, dim: c.projector.inFeatures }),
    connector: (w, c, x) => projector(w, c.projector, LAYOUT.projector, x),
  },
  featureGrid(c) {
    // 'full' keeps the class token in front of the patch grid
    if (c.visionFeatureSelectStrategy !== 'default') return null;
    const side = c.vision.imageSize / c.vision.patchSize;
    return Number.isInteger(side) && side * side === c.numImageTokens ? { rows: side, cols: side } : null;
  },
  unusedVisionTensor(c, rest) {
    // post_layernorm, the pooling head and layers after the last feature layer are never read
    if (rest.startsWith('post_layernorm.') || rest.startsWith('head.')) return true;
    const l = /^encoder\.layers\.(\d+)\./.exec(rest);
    return !!l && Number(l[1]) >= Math.max(...c.visionFeatureLayers);
  },
  imageProcessor(_c, json, file) {
    const p = new ImageProcessor(parsePreprocessorConfig(json, file));
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
  imageTokenIds: (c) => new Array<number>(c.numImageTokens).fill(c.imageTokenIndex),
  requiredTokens: () => [],
  peft: {
    decoderLayers: '(?:language_model\\.model|model\\.language_model)',
    visionLayers: '(?:model\\.)?vision_tower\\.vision_model',
    connector: 'multi_modal_projector',
    alternativeNames(module) {
      const out = [module];
      if (module.startsWith('language_model.model.'))
        out.push('model.language_model.' + module.slice('language_model.model.'.length));
      if (module.startsWith('vision_tower.')) out.push('model.' + module);
      if (module.startsWith('multi_modal_projector.')) out.push('model.' + module);
      return out;
    },
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
    connector: { inFeatures: c.projector.inFeatures, outFeatures: c.projector.outFeatures, type: c.projector.type },
    tokensPerFrame: c.numImageTokens,
    maxFramesPerImage: 1,
  }),
  gguf: llavaGguf,
};
