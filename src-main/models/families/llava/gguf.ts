// LLaVA's vision side as llama.cpp's mtmd reads it: an mmproj GGUF of architecture "clip" with projector "mlp"
// (convert_hf_to_gguf.py's LlavaVisionModel): the CLIP / SigLIP tower up to the feature layer, then the two-layer
// projector. What clip.cpp cannot represent is refused naming the config.json field.
import type { LlavaModelConfig } from '../../config';
import type { PreprocessorConfig } from '../../image-processor';
import type { TensorSource } from '../../weights/safetensors';
import { LlamaFileType, ggufWeightType, type GgmlTypeName, type GgufQuant } from '../../../export/gguf/format';
import type { GgufTensorPlan, GgufValue } from '../../../export/gguf/writer';
import type { VlmGgufExport } from '../types';

function check(c: LlavaModelConfig, no: (field: string, why: string) => never): void {
  const v = c.vision;
  if (c.projector.type !== 'mlp') no('mm_projector_type', `is ${c.projector.type}; llama.cpp's LLaVA projector ("mlp") is linear_1 -> GELU -> linear_2`);
  if (!/^gelu/.test(c.projector.hiddenAct)) no('projector_hidden_act', `is ${c.projector.hiddenAct}; llama.cpp's mlp projector uses GELU`);
  if (c.visionFeatureLayers.length !== 1) no('vision_feature_layer', `lists ${c.visionFeatureLayers.length} layers; llama.cpp's mlp projector takes one`);
  if (c.visionFeatureLayers[0] < 1) no('vision_feature_layer', 'selects the patch embeddings (no encoder layer)');
  if (v.classToken && c.visionFeatureSelectStrategy !== 'default') no('vision_feature_select_strategy', `is "${c.visionFeatureSelectStrategy}"; llama.cpp drops the class token of CLIP ("default")`);
  if (!v.classToken && c.visionFeatureSelectStrategy !== 'full') no('vision_feature_select_strategy', `is "default" on a tower without a class token (it drops a patch); llama.cpp keeps every patch`);
  if (!['quick_gelu', 'gelu', 'gelu_pytorch_tanh', 'gelu_new', 'gelu_fast'].includes(v.hiddenAct)) no('vision_config.hidden_act', `is ${v.hiddenAct}; llama.cpp's clip has GELU and quick GELU`);
}

function tensors(c: LlavaModelConfig, w: TensorSource, quant: GgufQuant): GgufTensorPlan[] {
  const v = c.vision;
  const vp = 'vision_tower.vision_model.';
  const plans: GgufTensorPlan[] = [];
  // the vision side is small and precision-sensitive: its 2-D weights are f16 or q8_0 (never q4_0)
  const q: GgufQuant = quant === 'q4_0' ? 'q8_0' : quant;
  const add = (name: string, src: string, type?: GgmlTypeName) => {
    const shape = w.info(src).shape;
    plans.push({ name, shape, type: type ?? ggufWeightType(q, shape), read: () => w.get(src) });
  };
  if (v.classToken) add('v.class_embd', `${vp}embeddings.class_embedding`, 'F32');
  add('v.patch_embd.weight', `${vp}embeddings.patch_embedding.weight`, quant === 'f32' ? 'F32' : 'F16');
  if (v.patchBias) add('v.patch_embd.bias', `${vp}embeddings.patch_embedding.bias`, 'F32');
  add('v.position_embd.weight', `${vp}embeddings.position_embedding.weight`, 'F32');
  if (v.preLayerNorm) {
    add('v.pre_ln.weight', `${vp}pre_layrnorm.weight`);
    add('v.pre_ln.bias', `${vp}pre_layrnorm.bias`);
  }
  // only the layers up to the feature layer run (LLaVA never reads post_layernorm)
  const layers = c.visionFeatureLayers[0];
  for (let l = 0; l < layers; l++) {
    const L = `${vp}encoder.layers.${l}.`;
    const B = `v.blk.${l}.`;
    for (const [g, hf] of [
      ['attn_q', 'self_attn.q_proj'],
      ['attn_k', 'self_attn.k_proj'],
      ['attn_v', 'self_attn.v_proj'],
      ['attn_out', 'self_attn.out_proj'],
      ['ln1', 'layer_norm1'],
      ['ffn_up', 'mlp.fc1'],
      ['ffn_down', 'mlp.fc2'],
      ['ln2', 'layer_norm2'],
    ] as const) {
      add(`${B}${g}.weight`, `${L}${hf}.weight`);
      add(`${B}${g}.bias`, `${L}${hf}.bias`);
    }
  }
  add('mm.0.weight', 'multi_modal_projector.linear_1.weight');
  if (c.projector.bias) add('mm.0.bias', 'multi_modal_projector.linear_1.bias');
  add('mm.2.weight', 'multi_modal_projector.linear_2.weight');
  if (c.projector.bias) add('mm.2.bias', 'multi_modal_projector.linear_2.bias');
  return plans;
}

function kv(c: LlavaModelConfig, ip: PreprocessorConfig, name: string, quant: GgufQuant): Map<string, GgufValue> {
  const v = c.vision;
  const kv = new Map<string, GgufValue>();
  kv.set('general.architecture', { type: 'string', value: 'clip' });
  kv.set('general.type', { type: 'string', value: 'mmproj' });
  kv.set('general.name', { type: 'string', value: name });
  kv.set('general.file_type', { type: 'u32', value: quant === 'f32' ? LlamaFileType.F32 : quant === 'f16' ? LlamaFileType.F16 : LlamaFileType.Q8_0 });
  kv.set('clip.has_text_encoder', { type: 'bool', value: false });
  kv.set('clip.has_vision_encoder', { type: 'bool', value: true });
  kv.set('clip.has_llava_projector', { type: 'bool', value: true });
  kv.set('clip.projector_type', { type: 'string', value: 'mlp' });
  kv.set('clip.use_gelu', { type: 'bool', value: v.hiddenAct !== 'quick_gelu' });
  kv.set('clip.vision.image_size', { type: 'u32', value: v.imageSize });
  kv.set('clip.vision.patch_size', { type: 'u32', value: v.patchSize });
  kv.set('clip.vision.embedding_length', { type: 'u32', value: v.hiddenSize });
  kv.set('clip.vision.feed_forward_length', { type: 'u32', value: v.intermediateSize });
  kv.set('clip.vision.projection_dim', { type: 'u32', value: c.projector.outFeatures });
  kv.set('clip.vision.attention.head_count', { type: 'u32', value: v.numAttentionHeads });
  kv.set('clip.vision.attention.layer_norm_epsilon', { type: 'f32', value: v.layerNormEps });
  kv.set('clip.vision.block_count', { type: 'u32', value: c.visionFeatureLayers[0] });
  // hidden_states index (0 = the embeddings): clip.cpp runs exactly this many layers and takes their output
  kv.set('clip.vision.feature_layer', { type: 'array', itemType: 'i32', value: [c.visionFeatureLayers[0]] });
  kv.set('clip.vision.image_mean', { type: 'array', itemType: 'f32', value: ip.imageMean });
  kv.set('clip.vision.image_std', { type: 'array', itemType: 'f32', value: ip.imageStd });
  return kv;
}

export const llavaGguf: VlmGgufExport<LlavaModelConfig> = { check, kv, tensors };
