// The parts of an mmproj GGUF (llama.cpp's clip.cpp) that every ViT-based vision side shares: the CLIP / SigLIP
// encoder layers under convert_hf_to_gguf.py's tensor names, the choice of ggml type for the vision side, and the
// general + clip.vision.* metadata. Each family adds its own projector tensors and keys.
import type { VisionConfig } from '../config';
import type { TensorSource } from '../weights/safetensors';
import { LlamaFileType, ggufWeightType, type GgmlTypeName, type GgufQuant } from '../../export/gguf/format';
import type { GgufTensorPlan, GgufValue } from '../../export/gguf/writer';

/** A plan list and the function that adds one tensor to it from the (merged) weights. */
export function mmprojPlans(w: TensorSource, quant: GgufQuant) {
  const plans: GgufTensorPlan[] = [];
  // the vision side is small and precision-sensitive: its 2-D weights are f16 or q8_0 (never q4_0)
  const q: GgufQuant = quant === 'q4_0' ? 'q8_0' : quant;
  const add = (name: string, src: string, type?: GgmlTypeName) => {
    const shape = w.info(src).shape;
    plans.push({ name, shape, type: type ?? ggufWeightType(q, shape), read: () => w.get(src) });
  };
  return { plans, add };
}

/** Encoder layers 0..layers-1 of a CLIP / SigLIP tower under `prefix` (…vision_model.) as v.blk.N.* */
export function vitLayerPlans(add: (name: string, src: string) => void, prefix: string, layers: number): void {
  for (let l = 0; l < layers; l++) {
    const L = `${prefix}encoder.layers.${l}.`;
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
}

/** general.* and clip.vision.* keys every mmproj has (MmprojModel.set_gguf_parameters). */
export function mmprojKv(o: {
  name: string;
  quant: GgufQuant;
  vision: VisionConfig;
  projectorType: string;
  projectionDim: number;
  blockCount: number;
  imageMean: readonly number[];
  imageStd: readonly number[];
  useGelu: boolean;
}): Map<string, GgufValue> {
  const v = o.vision;
  const kv = new Map<string, GgufValue>();
  kv.set('general.architecture', { type: 'string', value: 'clip' });
  kv.set('general.type', { type: 'string', value: 'mmproj' });
  kv.set('general.name', { type: 'string', value: o.name });
  kv.set('general.file_type', {
    type: 'u32',
    value: o.quant === 'f32' ? LlamaFileType.F32 : o.quant === 'f16' ? LlamaFileType.F16 : LlamaFileType.Q8_0,
  });
  kv.set('clip.has_text_encoder', { type: 'bool', value: false });
  kv.set('clip.has_vision_encoder', { type: 'bool', value: true });
  kv.set('clip.projector_type', { type: 'string', value: o.projectorType });
  kv.set('clip.use_gelu', { type: 'bool', value: o.useGelu });
  kv.set('clip.vision.image_size', { type: 'u32', value: v.imageSize });
  kv.set('clip.vision.patch_size', { type: 'u32', value: v.patchSize });
  kv.set('clip.vision.embedding_length', { type: 'u32', value: v.hiddenSize });
  kv.set('clip.vision.feed_forward_length', { type: 'u32', value: v.intermediateSize });
  kv.set('clip.vision.projection_dim', { type: 'u32', value: o.projectionDim });
  kv.set('clip.vision.attention.head_count', { type: 'u32', value: v.numAttentionHeads });
  kv.set('clip.vision.attention.layer_norm_epsilon', { type: 'f32', value: v.layerNormEps });
  kv.set('clip.vision.block_count', { type: 'u32', value: o.blockCount });
  kv.set('clip.vision.image_mean', { type: 'array', itemType: 'f32', value: [...o.imageMean] });
  kv.set('clip.vision.image_std', { type: 'array', itemType: 'f32', value: [...o.imageStd] });
  return kv;
}
