// Idefics3 / SmolVLM's vision side as llama.cpp's mtmd reads it: an mmproj GGUF of architecture "clip" with projector
// "idefics3" (convert_hf_to_gguf.py's SmolVLMModel): the whole SigLIP-style tower, post_layernorm, and the
// modality projection applied after clip.cpp's own pixel shuffle by clip.vision.projector.scale_factor. llama.cpp
// tiles an image as Idefics3ImageProcessor does, from clip.vision.preproc_image_size (size.longest_edge).
import type { GgufQuant } from '../../../export/gguf/format';
import type { GgufTensorPlan, GgufValue } from '../../../export/gguf/writer';
import type { TensorSource } from '../../weights/safetensors';
import { mmprojKv, mmprojPlans, vitLayerPlans } from '../../vision/gguf';
import type { FamilyImageProcessor, VlmGgufExport } from '../types';
import type { Idefics3ModelConfig } from './config';
import type { Idefics3ImageProcessor } from './processor';

const VP = 'model.vision_model.';

function check(c: Idefics3ModelConfig, no: (field: string, why: string) => never): void {
  const v = c.vision;
  if (!['gelu', 'gelu_pytorch_tanh', 'gelu_new', 'gelu_fast'].includes(v.hiddenAct))
    no('vision_config.hidden_act', `is ${v.hiddenAct}; llama.cpp's idefics3 tower uses GELU`);
  if (!v.patchBias) no('vision_config', "has a patch embedding without bias, which llama.cpp's idefics3 tower expects");
}

function tensors(c: Idefics3ModelConfig, w: TensorSource, quant: GgufQuant): GgufTensorPlan[] {
  const { plans, add } = mmprojPlans(w, quant);
  // SmolVLMModel.tensor_force_quant: everything under .embeddings. stays F32
  add('v.patch_embd.weight', `${VP}embeddings.patch_embedding.weight`, 'F32');
  add('v.patch_embd.bias', `${VP}embeddings.patch_embedding.bias`, 'F32');
  add('v.position_embd.weight', `${VP}embeddings.position_embedding.weight`, 'F32');
  vitLayerPlans(add, VP, c.vision.numHiddenLayers);
  add('v.post_ln.weight', `${VP}post_layernorm.weight`);
  add('v.post_ln.bias', `${VP}post_layernorm.bias`);
  add('mm.model.fc.weight', 'model.connector.modality_projection.proj.weight');
  return plans;
}

function kv(
  c: Idefics3ModelConfig,
  images: FamilyImageProcessor,
  name: string,
  quant: GgufQuant,
): Map<string, GgufValue> {
  const ip = (images as Idefics3ImageProcessor).config;
  const kv = mmprojKv({
    name,
    quant,
    vision: c.vision,
    projectorType: 'idefics3',
    projectionDim: c.text.hiddenSize,
    blockCount: c.vision.numHiddenLayers,
    imageMean: ip.imageMean,
    imageStd: ip.imageStd,
    useGelu: true,
  });
  kv.set('clip.vision.projector.scale_factor', { type: 'u32', value: c.scaleFactor });
  kv.set('clip.vision.preproc_image_size', { type: 'u32', value: ip.doResize ? ip.longestEdge : c.vision.imageSize });
  return kv;
}

export const idefics3Gguf: VlmGgufExport<Idefics3ModelConfig> = { check, kv, tensors };
