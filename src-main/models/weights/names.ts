// The exact tensor names and shapes transformers saves for each architecture, and the mapping between
// checkpoint layouts. The parts (vision tower, projector, decoder) are here; a vision-language family
// (families/<family>/) puts them together under its own prefixes and maps its published layouts.
//
// Canonical names of the components:
//   CLIPVisionModel / SiglipVisionModel: vision_model.*       (CLIPModel / SiglipModel: same, plus text_model.* which is ignored)
//   LlamaForCausalLM / Qwen2ForCausalLM: model.*  lm_head.weight
import type { LlavaModelConfig, ModelConfig, ProjectorConfig, TextConfig, VisionConfig } from '../config';
import { vlmFamilyOf } from '../registry';
import { optTensors } from '../decoder/opt';

export interface TensorSpec {
  name: string;
  shape: number[];
  /** May be absent from a checkpoint (e.g. SigLIP's pooling head, which LLaVA never uses). */
  optional?: boolean;
}

/** Canonical name prefixes of a model's parts (undefined where the model has no such part). */
export interface WeightLayout {
  /** e.g. "vision_tower.vision_model." — prepend to "embeddings.patch_embedding.weight", "encoder.layers.0.…" */
  vision?: string;
  /** e.g. "multi_modal_projector." — prepend to "linear_1.weight" */
  projector?: string;
  /** e.g. "language_model.model." — prepend to "embed_tokens.weight", "layers.0.…", "norm.weight" */
  decoder?: string;
  /** full name of the output projection, e.g. "language_model.lm_head.weight" (absent from files when tied) */
  lmHead?: string;
}

export function weightLayout(config: ModelConfig): WeightLayout {
  switch (config.kind) {
    case 'vision':
      return { vision: 'vision_model.' };
    case 'text':
      // OPTForCausalLM keeps its decoder one level down (model.decoder.*)
      return { decoder: config.text.modelType === 'opt' ? 'model.decoder.' : 'model.', lmHead: 'lm_head.weight' };
    default:
      return vlmFamilyOf(config).layout(config);
  }
}

/** "vision_tower.vision_model.encoder.layers.3." — append "self_attn.q_proj.weight", "mlp.fc1.bias", "layer_norm1.weight" … */
export function visionLayerPrefix(layout: WeightLayout, layer: number): string {
  if (layout.vision === undefined) throw new Error('this model has no vision tower');
  return `${layout.vision}encoder.layers.${layer}.`;
}

/** "language_model.model.layers.3." — append "self_attn.q_proj.weight", "mlp.gate_proj.weight", "input_layernorm.weight" … */
export function decoderLayerPrefix(layout: WeightLayout, layer: number): string {
  if (layout.decoder === undefined) throw new Error('this model has no decoder');
  return `${layout.decoder}layers.${layer}.`;
}

/** CLIPVisionTransformer / SiglipVisionTransformer parameters, under `prefix` (e.g. "vision_model."). */
export function visionTensors(v: VisionConfig, prefix: string): TensorSpec[] {
  const h = v.hiddenSize;
  const i = v.intermediateSize;
  const p = prefix;
  const out: TensorSpec[] = [];
  const ln = (name: string, optional?: boolean) => {
    out.push({ name: `${name}.weight`, shape: [h], optional });
    out.push({ name: `${name}.bias`, shape: [h], optional });
  };
  const lin = (name: string, o: number, n: number, optional?: boolean) => {
    out.push({ name: `${name}.weight`, shape: [o, n], optional });
    out.push({ name: `${name}.bias`, shape: [o], optional });
  };
  if (v.classToken) out.push({ name: `${p}embeddings.class_embedding`, shape: [h] });
  out.push({ name: `${p}embeddings.patch_embedding.weight`, shape: [h, v.numChannels, v.patchSize, v.patchSize] });
  if (v.patchBias) out.push({ name: `${p}embeddings.patch_embedding.bias`, shape: [h] });
  out.push({ name: `${p}embeddings.position_embedding.weight`, shape: [v.numPositions, h] });
  if (v.preLayerNorm) ln(`${p}pre_layrnorm`); // sic: transformers' CLIP spells it "pre_layrnorm"
  for (let l = 0; l < v.numHiddenLayers; l++) {
    const L = `${p}encoder.layers.${l}.`;
    for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) lin(`${L}self_attn.${proj}`, h, h);
    ln(`${L}layer_norm1`);
    lin(`${L}mlp.fc1`, i, h);
    lin(`${L}mlp.fc2`, h, i);
    ln(`${L}layer_norm2`);
  }
  ln(`${p}post_layernorm`);
  if (v.useHead) {
    out.push({ name: `${p}head.probe`, shape: [1, 1, h], optional: true });
    out.push({ name: `${p}head.attention.in_proj_weight`, shape: [3 * h, h], optional: true });
    out.push({ name: `${p}head.attention.in_proj_bias`, shape: [3 * h], optional: true });
    lin(`${p}head.attention.out_proj`, h, h, true);
    ln(`${p}head.layernorm`, true);
    lin(`${p}head.mlp.fc1`, i, h, true);
    lin(`${p}head.mlp.fc2`, h, i, true);
  }
  return out;
}

/** LlavaMultiModalProjector parameters under `prefix` (e.g. "multi_modal_projector."). */
export function projectorTensors(pc: ProjectorConfig, prefix: string): TensorSpec[] {
  const out: TensorSpec[] = [{ name: `${prefix}linear_1.weight`, shape: [pc.outFeatures, pc.inFeatures] }];
  if (pc.bias) out.push({ name: `${prefix}linear_1.bias`, shape: [pc.outFeatures] });
  if (pc.type === 'mlp') {
    out.push({ name: `${prefix}linear_2.weight`, shape: [pc.outFeatures, pc.outFeatures] });
    if (pc.bias) out.push({ name: `${prefix}linear_2.bias`, shape: [pc.outFeatures] });
  }
  return out;
}

/** LlamaModel / Qwen2Model (or OPTDecoder, decoder/opt.ts) parameters under `prefix` (e.g. "model."), plus lm_head unless tied. */
export function decoderTensors(t: TextConfig, prefix: string, lmHead: string): TensorSpec[] {
  if (t.modelType === 'opt') return optTensors(t, prefix, lmHead);
  const h = t.hiddenSize;
  const q = t.numAttentionHeads * t.headDim;
  const kv = t.numKeyValueHeads * t.headDim;
  const out: TensorSpec[] = [{ name: `${prefix}embed_tokens.weight`, shape: [t.vocabSize, h] }];
  for (let l = 0; l < t.numHiddenLayers; l++) {
    const L = `${prefix}layers.${l}.`;
    const proj = (name: string, o: number, n: number, bias: boolean) => {
      out.push({ name: `${L}${name}.weight`, shape: [o, n] });
      if (bias) out.push({ name: `${L}${name}.bias`, shape: [o] });
    };
    proj('self_attn.q_proj', q, h, t.qkvBias);
    proj('self_attn.k_proj', kv, h, t.qkvBias);
    proj('self_attn.v_proj', kv, h, t.qkvBias);
    proj('self_attn.o_proj', h, q, t.oBias);
    proj('mlp.gate_proj', t.intermediateSize, h, t.mlpBias);
    proj('mlp.up_proj', t.intermediateSize, h, t.mlpBias);
    proj('mlp.down_proj', h, t.intermediateSize, t.mlpBias);
    out.push({ name: `${L}input_layernorm.weight`, shape: [h] });
    out.push({ name: `${L}post_attention_layernorm.weight`, shape: [h] });
  }
  out.push({ name: `${prefix}norm.weight`, shape: [h] });
  if (!t.tieWordEmbeddings) out.push({ name: lmHead, shape: [t.vocabSize, h] });
  return out;
}

/** Every tensor a checkpoint of this config holds, with canonical names and exact shapes, in a stable order. */
export function expectedTensors(config: ModelConfig): TensorSpec[] {
  const lay = weightLayout(config);
  switch (config.kind) {
    case 'vision':
      return visionTensors(config.vision, lay.vision!);
    case 'text':
      return decoderTensors(config.text, lay.decoder!, lay.lmHead!);
    default:
      return vlmFamilyOf(config).tensors(config);
  }
}

/** Non-parameter buffers older transformers versions saved; they are skipped on load (never an error). */
const IGNORED_BUFFERS = [
  /(^|\.)position_ids$/,
  /(^|\.)rotary_emb\.inv_freq$/,
  /(^|\.)masked_bias$/,
  /(^|\.)attn\.bias$/,
];

/**
 * Map a stored tensor name to its canonical name; null when the tensor is known to be irrelevant
 * (old buffers, the text half of a CLIP/SigLIP dual encoder, a tied lm_head saved anyway).
 */
export function canonicalName(config: ModelConfig, stored: string): string | null {
  if (IGNORED_BUFFERS.some((re) => re.test(stored))) return null;
  switch (config.kind) {
    default:
      return vlmFamilyOf(config).canonicalName(config, stored);
    case 'vision':
      if (/^(text_model\.|text_projection\.|visual_projection\.|logit_scale$|logit_bias$)/.test(stored)) return null;
      return stored;
    case 'text':
      if (stored === 'lm_head.weight' && config.text.tieWordEmbeddings) return null;
      return stored;
  }
}

/** The LLaVA parts, for code that builds one part at a time. */
export function llavaParts(config: LlavaModelConfig): {
  vision: TensorSpec[];
  projector: TensorSpec[];
  decoder: TensorSpec[];
} {
  const lay = weightLayout(config);
  return {
    vision: visionTensors(config.vision, lay.vision!),
    projector: projectorTensors(config.projector, lay.projector!),
    decoder: decoderTensors(config.text, lay.decoder!, lay.lmHead!),
  };
}
