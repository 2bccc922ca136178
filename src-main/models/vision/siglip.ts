// SigLIP's vision tower (SiglipVisionTransformer): the same ViT as clip-vit.ts with the config's flags set for SigLIP
// (no class token, no pre-norm, patch conv with bias, gelu_pytorch_tanh), plus the post_layernorm that transformers
// applies to last_hidden_state. LLaVA reads hidden_states, which never include post_layernorm, so it only matters
// for callers that want SiglipVisionModel's last_hidden_state. The attention-pooling head is not built.

import type { Value } from '../../engine/graph/builder';
import { layerNorm } from '../../engine/ops/norm';
import type { VisionConfig } from '../config';
import type { GraphWeights } from '../layers';
import { visionTower, type VisionTowerOptions, type VisionTowerResult } from './clip-vit';

export function siglipVisionTower(
  w: GraphWeights,
  cfg: VisionConfig,
  prefix: string,
  pixelValues: Value,
  o: VisionTowerOptions = {},
): VisionTowerResult {
  if (cfg.modelType !== 'siglip_vision_model') throw new Error(`siglipVisionTower: config is ${cfg.modelType}`);
  return visionTower(w, cfg, prefix, pixelValues, o);
}

/** SiglipVisionModel's last_hidden_state: post_layernorm(hidden_states[-1]). */
export function siglipLastHiddenState(w: GraphWeights, cfg: VisionConfig, prefix: string, pixelValues: Value): Value {
  const r = visionTower(w, cfg, prefix, pixelValues, { states: [cfg.numHiddenLayers] });
  return layerNorm(r.last, w.tensor(`${prefix}post_layernorm.weight`), w.tensor(`${prefix}post_layernorm.bias`), {
    epsilon: cfg.layerNormEps,
  });
}
