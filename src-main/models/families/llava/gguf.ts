// LLaVA's vision side as llama.cpp's mtmd reads it: an mmproj GGUF of architecture "clip" with projector "mlp"
// (convert_hf_to_gguf.py's LlavaVisionModel): the CLIP / SigLIP tower up to the feature layer, then the two-layer
// projector. What clip.cpp cannot represent is refused naming the config.json field.
import type { LlavaModelConfig } from '../../config';
import type { TensorSource } from '../../weights/safetensors';
import type { GgufQuant } from '../../../export/gguf/format';
import type { GgufTensorPlan, GgufValue } from '../../../export/gguf/writer';
import { mmprojKv, mmprojPlans, vitLayerPlans } from '../../vision/gguf';
import type { FamilyImageProcessor, VlmGgufExport } from '../types';

function check(c: LlavaModelConfig, no: (field: string, why: string) => never): void {
  const v = c.vision;
  if (c.projector.type !== 'mlp')
    no(
      'mm_projector_type',
      `is ${c.projector.type}; llama.cpp's LLaVA projector ("mlp") is linear_1 -> GELU -> linear_2`,
    );
  if (!/^gelu/.test(c.projector.hiddenAct))
    no('projector_hidden_act', `is ${c.projector.hiddenAct}; llama.cpp's mlp projector uses GELU`);
  if (c.visionFeatureLayers.length !== 1)
    no('vision_feature_layer', `lists ${c.visionFeatureLayers.length} layers; llama.cpp's mlp projector takes one`);
  if (c.visionFeatureLayers[0] < 1) no('vision_feature_layer', 'selects the patch embeddings (no encoder layer)');
  if (v.classToken && c.visionFeatureSelectStrategy !== 'default')
    no(
      'vision_feature_select_strategy',
      `is "${c.visionFeatureSelectStrategy}"; llama.cpp drops the class token of CLIP ("default")`,
    );
  if (!v.classToken && c.visionFeatureSelectStrategy !== 'full')
    no(
      'vision_feature_select_strategy',
      `is "default" on a tower without a class token (it drops a patch); llama.cpp keeps every patch`,
    );
  if (!['quick_gelu', 'gelu', 'gelu_pytorch_tanh', 'gelu_new', 'gelu_fast'].includes(v.hiddenAct))
    no('vision_config.hidden_act', `is ${v.hiddenAct}; llama.cpp's clip has GELU and quick GELU`);
}

function tensors(c: LlavaModelConfig, w: TensorSource, quant: GgufQuant): GgufTensorPlan[] {
  const v = c.vision;
  const vp = 'vision_tower.vision_model.';
  const { plans, add } = mmprojPlans(w, quant);
  if (v.classToken) add('v.class_embd', `${vp}embeddings.class_embedding`, 'F32');
  add('v.patch_embd.weight', `${vp}embeddings.patch_embedding.weight`, quant === 'f32' ? 'F32' : 'F16');
  if (v.patchBias) add('v.patch_embd.bias', `${vp}embeddings.patch_embedding.bias`, 'F32');
  add('v.position_embd.weight', `${vp}embeddings.position_embedding.weight`, 'F32');
  if (v.preLayerNorm) {
    add('v.pre_ln.weight', `${vp}pre_layrnorm.weight`);
    add('v.pre_ln.bias', `${vp}pre_layrnorm.bias`);
  }
  // only the layers up to the feature layer run (LLaVA never reads post_layernorm)
  vitLayerPlans(add, vp, c.visionFeatureLayers[0]);
  add('mm.0.weight', 'multi_modal_projector.linear_1.weight');
  if (c.projector.bias) add('mm.0.bias', 'multi_modal_projector.linear_1.bias');
  add('mm.2.weight', 'multi_modal_projector.linear_2.weight');
  if (c.projector.bias) add('mm.2.bias', 'multi_modal_projector.linear_2.bias');
  return plans;
}

function kv(c: LlavaModelConfig, images: FamilyImageProcessor, name: string, quant: GgufQuant): Map<string, GgufValue> {
  const ip = images.base!.config;
  const kv = mmprojKv({
    name,
    quant,
    vision: c.vision,
    projectorType: 'mlp',
    projectionDim: c.projector.outFeatures,
    // hidden_states index (0 = the embeddings): clip.cpp runs exactly this many layers and takes their output
    blockCount: c.visionFeatureLayers[0],
    imageMean: ip.imageMean,
    imageStd: ip.imageStd,
    useGelu: c.vision.hiddenAct !== 'quick_gelu',
  });
  kv.set('clip.has_llava_projector', { type: 'bool', value: true });
  kv.set('clip.vision.feature_layer', { type: 'array', itemType: 'i32', value: [c.visionFeatureLayers[0]] });
  return kv;
}

// llama.cpp's LLaVA graph (tools/mtmd/models/llava.cpp, in @fugood/llama.node 1.7.15 and upstream as of July 2026)
// appends the class token after the patches while its position ids and patch selection assume it comes first:
// measured on the demo model, its caption of a scene equals ours of the same scene with the top-left cell blanked.
function notes(c: LlavaModelConfig): string[] {
  if (!c.vision.classToken) return [];
  return [
    "llama.cpp's LLaVA graph places the vision tower's class token after the patches (a llama.cpp bug): it drops the " +
      "image's first (top-left) patch and shifts the others' positions by one, so its answers about an image can " +
      "differ from Lenslab's and transformers'; the files are written as transformers reads the model",
  ];
}

export const llavaGguf: VlmGgufExport<LlavaModelConfig> = { check, kv, tensors, notes };
