// model_type -> model family. A vision-language family is one unit under families/ (families/types.ts): adding one
// is a folder there plus its line in vlmFamilies(). The components (vision towers, decoders) are graph builders:
// Qwen2 is the LLaMA decoder with q/k/v biases (TextConfig.qkvBias), SigLIP the ViT of clip-vit.ts with SigLIP's flags.

import type { Value } from '../engine/graph/builder';
import type {
  ModelConfig,
  Reader,
  TextConfig,
  TextModelType,
  VisionConfig,
  VisionModelType,
  VlmModelConfig,
} from './config';
import type { VlmFamily } from './families/types';
import { llavaFamily } from './families/llava';
import { idefics3Family } from './families/idefics3';
import { blip2Family, blip2VisionTower } from './families/blip2';
import type { GraphWeights } from './layers';
import { optDecoderForward } from './decoder/opt';
import {
  decoderForward,
  type DecoderInputs,
  type DecoderNames,
  type DecoderOptions,
  type DecoderResult,
} from './decoder/llama';
import { clipVisionTower, type VisionTowerOptions, type VisionTowerResult } from './vision/clip-vit';
import { siglipVisionTower } from './vision/siglip';

export type VisionTowerBuilder = (
  w: GraphWeights,
  cfg: VisionConfig,
  prefix: string,
  pixelValues: Value,
  o?: VisionTowerOptions,
) => VisionTowerResult;
export type DecoderBuilder = (
  w: GraphWeights,
  cfg: TextConfig,
  names: DecoderNames,
  inp: DecoderInputs,
  o?: DecoderOptions,
) => DecoderResult;

/** The vision-language families, one entry each (a function: the family modules import this one). */
export function vlmFamilies(): readonly VlmFamily[] {
  return [llavaFamily, idefics3Family, blip2Family] as unknown as VlmFamily[];
}

/** Every model_type a family reads. */
export function vlmModelTypes(): string[] {
  return vlmFamilies().flatMap((f) => f.modelTypes);
}

/** The family that reads this config.json model_type, if any. */
export function vlmFamilyForModelType(modelType: string): VlmFamily | undefined {
  return vlmFamilies().find((f) => f.modelTypes.includes(modelType));
}

/** The family of a parsed vision-language config. */
export function vlmFamilyOf<C extends VlmModelConfig>(c: C): VlmFamily<C> {
  const f = vlmFamilies().find((x) => x.name === c.kind);
  if (!f)
    throw new Error(
      `no model family "${c.kind}" (supported: ${vlmFamilies()
        .map((x) => x.name)
        .join(', ')})`,
    );
  return f as unknown as VlmFamily<C>;
}

/** config.parseHfConfig's dispatch: the family's parse for its model types, null for the components. */
export function parseVlmConfig(r: Reader, modelType: string): VlmModelConfig | null {
  const f = vlmFamilyForModelType(modelType);
  return f ? f.parseConfig(r, modelType) : null;
}

export const VISION_TOWERS: Record<VisionModelType, VisionTowerBuilder> = {
  clip_vision_model: clipVisionTower,
  siglip_vision_model: siglipVisionTower,
  blip_2_vision_model: (...a) => blip2VisionTower(...a),
};

export const DECODERS: Record<TextModelType, DecoderBuilder> = {
  llama: decoderForward,
  qwen2: decoderForward,
  opt: optDecoderForward,
};

export function visionTowerFor(cfg: VisionConfig): VisionTowerBuilder {
  const b = VISION_TOWERS[cfg.modelType];
  if (!b)
    throw new Error(
      `no vision tower for model_type "${cfg.modelType}" (supported: ${Object.keys(VISION_TOWERS).join(', ')})`,
    );
  return b;
}

export function decoderFor(cfg: TextConfig): DecoderBuilder {
  const b = DECODERS[cfg.modelType];
  if (!b)
    throw new Error(`no decoder for model_type "${cfg.modelType}" (supported: ${Object.keys(DECODERS).join(', ')})`);
  return b;
}

/** What Lenslab can run from a config: 'vlm' (a family's vision-language model), 'lm' (text-only causal LM), 'vision' (a tower alone). */
export function runnableKind(cfg: ModelConfig): 'vlm' | 'lm' | 'vision' {
  switch (cfg.kind) {
    case 'text':
      decoderFor(cfg.text);
      return 'lm';
    case 'vision':
      visionTowerFor(cfg.vision);
      return 'vision';
    default:
      vlmFamilyOf(cfg);
      visionTowerFor(cfg.vision);
      decoderFor(cfg.text);
      return 'vlm';
  }
}
