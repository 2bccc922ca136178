// model_type -> graph builder. The normalized config (config.ts) says which family a folder is; this table says which
// function builds it. Qwen2 is the LLaMA decoder with q/k/v biases (TextConfig.qkvBias), SigLIP the ViT of
// clip-vit.ts with SigLIP's flags.

import type { Value } from '../engine/graph/builder';
import type { ModelConfig, TextConfig, TextModelType, VisionConfig, VisionModelType } from './config';
import type { GraphWeights } from './layers';
import { decoderForward, type DecoderInputs, type DecoderNames, type DecoderOptions, type DecoderResult } from './decoder/llama';
import { clipVisionTower, type VisionTowerOptions, type VisionTowerResult } from './vision/clip-vit';
import { siglipVisionTower } from './vision/siglip';

export type VisionTowerBuilder = (w: GraphWeights, cfg: VisionConfig, prefix: string, pixelValues: Value, o?: VisionTowerOptions) => VisionTowerResult;
export type DecoderBuilder = (w: GraphWeights, cfg: TextConfig, names: DecoderNames, inp: DecoderInputs, o?: DecoderOptions) => DecoderResult;

export const VISION_TOWERS: Record<VisionModelType, VisionTowerBuilder> = {
  clip_vision_model: clipVisionTower,
  siglip_vision_model: siglipVisionTower,
};

export const DECODERS: Record<TextModelType, DecoderBuilder> = {
  llama: decoderForward,
  qwen2: decoderForward,
};

export function visionTowerFor(cfg: VisionConfig): VisionTowerBuilder {
  const b = VISION_TOWERS[cfg.modelType];
  if (!b) throw new Error(`no vision tower for model_type "${cfg.modelType}" (supported: ${Object.keys(VISION_TOWERS).join(', ')})`);
  return b;
}

export function decoderFor(cfg: TextConfig): DecoderBuilder {
  const b = DECODERS[cfg.modelType];
  if (!b) throw new Error(`no decoder for model_type "${cfg.modelType}" (supported: ${Object.keys(DECODERS).join(', ')})`);
  return b;
}

/** What Lenslab can run from a config: 'vlm' (LLaVA), 'lm' (text-only causal LM), 'vision' (a tower alone). */
export function runnableKind(cfg: ModelConfig): 'vlm' | 'lm' | 'vision' {
  switch (cfg.kind) {
    case 'llava':
      visionTowerFor(cfg.vision);
      decoderFor(cfg.text);
      return 'vlm';
    case 'text':
      decoderFor(cfg.text);
      return 'lm';
    case 'vision':
      visionTowerFor(cfg.vision);
      return 'vision';
  }
}
