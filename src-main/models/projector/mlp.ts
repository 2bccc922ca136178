// LLaVA's multi-modal projector (transformers' LlavaMultiModalProjector): linear_1 -> act -> linear_2, or linear_1
// alone for the original LLaVA "linear" projector type. Features [N, tokens, in] -> [N, tokens, text hidden].

import type { Value } from '../../engine/graph/builder';
import { activation } from '../../engine/ops/activations';
import type { ProjectorConfig } from '../config';
import type { GraphWeights } from '../layers';

export function projector(w: GraphWeights, cfg: ProjectorConfig, prefix: string, features: Value): Value {
  return w.g.scope('projector', () => {
    let y = w.linear(features, `${prefix}linear_1`, { bias: cfg.bias });
    if (cfg.type === 'mlp') y = w.linear(activation(cfg.hiddenAct, y), `${prefix}linear_2`, { bias: cfg.bias });
    return y;
  });
}
