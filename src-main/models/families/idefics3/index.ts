// Idefics3 / SmolVLM (transformers' Idefics3ForConditionalGeneration, SmolVLMForConditionalGeneration):
// SigLIP-style vision tower (Idefics3VisionTransformer: no class token, patch conv with bias, post_layernorm on the
// last hidden state), the connector (pixel shuffle by scale_factor, then modality_projection.proj without bias), and
// a LLaMA decoder (SmolLM2) with a separate or tied lm_head. An image is split into tiles + a global image
// (processor.ts); every frame gives (image_size / patch_size)^2 / scale_factor^2 image tokens, merged into the
// <image> positions in order as transformers' inputs_merger does.
//
// Published layout (the canonical names): model.vision_model.*, model.connector.modality_projection.proj.weight,
// model.text_model.*, lm_head.weight (absent when tied).
import { layerNorm } from '../../../engine/ops/norm';
import type { Value } from '../../../engine/graph/builder';
import type { VlmModelConfig } from '../../config';
import type { GraphWeights } from '../../layers';
import { PreprocessorError } from '../../image-processor';
import { visionTower } from '../../vision/clip-vit';
import { decoderTensors, visionTensors } from '../../weights/names';
import type { VlmFamily } from '../types';
import { parseIdefics3, type Idefics3ModelConfig } from './config';
import { idefics3Gguf } from './gguf';
import { Idefics3ImageProcessor, IDEFICS3_TOKENS, imagePromptIds, parseIdefics3Preprocessor } from './processor';

const LAYOUT = {
  vision: 'model.vision_model.',
  projector: 'model.connector.',
  decoder: 'model.text_model.',
  lmHead: 'lm_head.weight',
};
const PROJ = 'model.connector.modality_projection.proj';

/** The SigLIP tower's last hidden state after post_layernorm: [N, patches, E]. */
function postLnTower(w: GraphWeights, c: Idefics3ModelConfig, pixelValues: Value): Value {
  const v = c.vision;
  const p = LAYOUT.vision;
  const last = visionTower(w, v, p, pixelValues, { states: [v.numHiddenLayers] }).last;
  return layerNorm(last, w.tensor(`${p}post_layernorm.weight`), w.tensor(`${p}post_layernorm.bias`), {
    epsilon: v.layerNormEps,
  });
}

/** Idefics3Connector: pixel shuffle [N, h*w, E] -> [N, h/s * w/s, E*s*s] (its view/permute sequence), then the linear. */
function pixelShuffleConnector(w: GraphWeights, c: Idefics3ModelConfig, x: Value): Value {
  const g = w.g;
  const v = c.vision;
  return g.scope('connector', () => {
    const s = c.scaleFactor;
    const side = v.imageSize / v.patchSize;
    const E = v.hiddenSize;
    const N = -1;
    let y = g.op1('Reshape', [x, g.ints([N, side, side / s, E * s])]);
    y = g.op1('Transpose', [y], { perm: [0, 2, 1, 3] });
    y = g.op1('Reshape', [y, g.ints([N, side / s, side / s, E * s * s])]);
    y = g.op1('Transpose', [y], { perm: [0, 2, 1, 3] });
    y = g.op1('Reshape', [y, g.ints([N, (side / s) * (side / s), E * s * s])]);
    return w.linear(y, PROJ, { bias: false });
  });
}

export const idefics3Family: VlmFamily<Idefics3ModelConfig> = {
  name: 'idefics3',
  modelTypes: ['idefics3', 'smolvlm'],
  architecture: 'Idefics3ForConditionalGeneration',
  parseConfig: (r, mt) => parseIdefics3(r, mt),
  describe: (c) => `${c.modelType}-${c.text.modelType}`,
  connectorLabel: (c) => `pixel shuffle x${c.scaleFactor} + linear`,
  layout: () => LAYOUT,
  tensors: (c) => [
    ...visionTensors(c.vision, LAYOUT.vision),
    { name: `${PROJ}.weight`, shape: [c.connector.outFeatures, c.connector.inFeatures] },
    ...decoderTensors(c.text, LAYOUT.decoder, LAYOUT.lmHead),
  ],
  canonicalName(c, stored) {
    if (stored === LAYOUT.lmHead && c.tieWordEmbeddings) return null;
    return stored;
  },
  imageFeatures(w, c, pixelValues) {
    return pixelShuffleConnector(w, c, postLnTower(w, c, pixelValues));
  },
  splitFeatures: {
    tower: (w, c, pixelValues) => postLnTower(w, c, pixelValues),
    towerShape: (c) => ({ tokens: (c.vision.imageSize / c.vision.patchSize) ** 2, dim: c.vision.hiddenSize }),
    connector: (w, c, x) => pixelShuffleConnector(w, c, x),
  },
  featureGrid(c) {
    // pixel shuffle keeps the patches' row-major order at side/s × side/s
    const side = c.vision.imageSize / c.vision.patchSize / c.scaleFactor;
    return { rows: side, cols: side };
  },
  unusedVisionTensor: () => false,
  imageProcessor(c, json, file, processorConfig) {
    const pc = parseIdefics3Preprocessor(json, file);
    if (pc.maxImageSize !== c.vision.imageSize)
      throw new PreprocessorError(
        `${file}: field "max_image_size.longest_edge": ${pc.maxImageSize} is not the vision tower's image_size ${c.vision.imageSize} (config.json)`,
      );
    const seq = processorConfig?.image_seq_len;
    if (seq !== undefined && seq !== c.numImageTokens)
      throw new PreprocessorError(
        `processor_config.json: field "image_seq_len": ${JSON.stringify(seq)} does not match config.json, whose vision tower and scale_factor give ${c.numImageTokens} tokens per image`,
      );
    return new Idefics3ImageProcessor(pc);
  },
  imageTokenIds: (c, tokens, grid) => imagePromptIds(grid, c.numImageTokens, tokens),
  requiredTokens(_c, grid) {
    const out: string[] = [IDEFICS3_TOKENS.fake, IDEFICS3_TOKENS.global, IDEFICS3_TOKENS.image];
    for (let r = 1; r <= (grid?.rows ?? 0); r++)
      for (let col = 1; col <= (grid?.cols ?? 0); col++) out.push(`<row_${r}_col_${col}>`);
    return out;
  },
  peft: {
    decoderLayers: 'model\\.text_model',
    visionLayers: 'model\\.vision_model',
    connector: 'connector',
    alternativeNames: (m) => [m],
  },
  shape(c, processor) {
    const g = processor?.maxGrid() ?? { rows: 0, cols: 0 };
    return {
      vision: {
        hiddenSize: c.vision.hiddenSize,
        intermediateSize: c.vision.intermediateSize,
        numLayers: c.vision.numHiddenLayers,
        numHeads: c.vision.numAttentionHeads,
        tokensPerImage: c.vision.numPositions,
        patchSize: c.vision.patchSize,
        numChannels: c.vision.numChannels,
      },
      connector: { inFeatures: c.connector.inFeatures, outFeatures: c.connector.outFeatures, type: 'linear' },
      tokensPerFrame: c.numImageTokens,
      maxFramesPerImage: g.rows * g.cols + 1,
    };
  },
  gguf: idefics3Gguf,
};

export type { Idefics3ModelConfig };
export function isIdefics3(c: VlmModelConfig): c is Idefics3ModelConfig {
  return c.kind === 'idefics3';
}
