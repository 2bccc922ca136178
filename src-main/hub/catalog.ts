// Models Lenslab knows how to get, with their download size and what chatting with and training them needs on
// this machine. Shapes come from each repository's config.json as published (checked by hand against the Hub);
// memory uses the same estimate as a run (training/memory.ts) with the quick-start preset (LoRA rank 16 on every
// decoder projection, batch 4, the image tokens plus 64 text tokens). Families Lenslab cannot run yet are listed
// with the reason, so a user sees what is coming instead of a download that fails after gigabytes.
import { totalmem } from 'node:os';
import { availableMemory, estimateTrainingMemory, type ModelShape } from '../training/memory';
import { LORA_TARGETS } from '../training/hparams';

export interface CatalogSource {
  repo: string;
  /** What the repo holds, as Lenslab sees it. */
  role: 'vlm' | 'vision' | 'text';
  /** Bytes of the files a pull takes (safetensors + configs), as listed on the Hub. */
  downloadBytes: number;
}

export interface CatalogModel {
  id: string;
  title: string;
  description: string;
  /** Pulled from the Hub; the demo is bundled (sources empty). */
  sources: CatalogSource[];
  /** Two sources composed into one LLaVA (vision tower + language model, new projector). */
  compose: boolean;
  supported: boolean;
  /** Why not (unsupported), or a caveat. */
  note: string | null;
  /** model_type as in config.json. */
  modelType: string;
  params: number;
  shape: ModelShape | null;
}

const qwen05 = {
  vocabSize: 151_646,
  hiddenSize: 896,
  intermediateSize: 4864,
  numLayers: 24,
  numHeads: 14,
  numKvHeads: 2,
  headDim: 64,
  tieEmbeddings: true,
  qkvBias: true,
};

export const CATALOG: CatalogModel[] = [
  {
    id: 'demo',
    title: 'Demo: tiny LLaVA',
    description: 'The bundled 1 MB model the demo fine-tunes in seconds (shapes, colours, counting).',
    sources: [],
    compose: false,
    supported: true,
    note: 'Bundled: install it from the Models page, no download.',
    modelType: 'llava',
    params: 444_500,
    shape: {
      vision: {
        hiddenSize: 64,
        intermediateSize: 256,
        numLayers: 2,
        numHeads: 4,
        tokensPerImage: 10,
        patchSize: 16,
        numChannels: 3,
      },
      projector: { inFeatures: 64, outFeatures: 96, type: 'mlp' },
      decoder: {
        vocabSize: 394,
        hiddenSize: 96,
        intermediateSize: 256,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 24,
        tieEmbeddings: false,
      },
      imageTokens: 9,
      weightBytes: 4,
    },
  },
  {
    id: 'llava-interleave-qwen-0.5b',
    title: 'LLaVA-Interleave Qwen 0.5B',
    description: 'SigLIP-so400m vision tower + Qwen2-0.5B: the smallest published LLaVA; 729 image tokens.',
    sources: [{ repo: 'llava-hf/llava-interleave-qwen-0.5b-hf', role: 'vlm', downloadBytes: 1_790_000_000 }],
    compose: false,
    supported: true,
    note: null,
    modelType: 'llava',
    params: 894_000_000,
    shape: {
      vision: {
        hiddenSize: 1152,
        intermediateSize: 4304,
        numLayers: 26,
        numHeads: 16,
        tokensPerImage: 729,
        patchSize: 14,
        numChannels: 3,
      },
      projector: { inFeatures: 1152, outFeatures: 896, type: 'mlp' },
      decoder: qwen05,
      imageTokens: 729,
      weightBytes: 4,
    },
  },
  {
    id: 'clip-b32+tinyllama',
    title: 'CLIP ViT-B/32 + TinyLlama 1.1B Chat (compose)',
    description: 'Two downloads composed into a LLaVA with a new projector: train the projector first, then LoRA.',
    sources: [
      { repo: 'openai/clip-vit-base-patch32', role: 'vision', downloadBytes: 605_000_000 },
      { repo: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', role: 'text', downloadBytes: 2_200_000_000 },
    ],
    compose: true,
    supported: true,
    note: 'The projector starts random: it needs training before answers make sense.',
    modelType: 'llava',
    params: 1_188_000_000,
    shape: {
      vision: {
        hiddenSize: 768,
        intermediateSize: 3072,
        numLayers: 12,
        numHeads: 12,
        tokensPerImage: 50,
        patchSize: 32,
        numChannels: 3,
      },
      projector: { inFeatures: 768, outFeatures: 2048, type: 'mlp' },
      decoder: {
        vocabSize: 32_000,
        hiddenSize: 2048,
        intermediateSize: 5632,
        numLayers: 22,
        numHeads: 32,
        numKvHeads: 4,
        headDim: 64,
        tieEmbeddings: false,
      },
      imageTokens: 49,
      weightBytes: 4,
    },
  },
  {
    id: 'siglip-base-patch16-224',
    title: 'SigLIP base patch16-224 (vision tower)',
    description: 'A vision tower to compose with a LLaMA or Qwen2 language model (196 image tokens).',
    sources: [{ repo: 'google/siglip-base-patch16-224', role: 'vision', downloadBytes: 813_000_000 }],
    compose: false,
    supported: true,
    note: 'A tower alone cannot answer: compose it with a language model on the Models page.',
    modelType: 'siglip',
    params: 203_000_000,
    shape: null,
  },
  {
    id: 'smolvlm-256m',
    title: 'SmolVLM 256M Instruct',
    description: 'SigLIP-B/16 + SmolLM2-135M with pixel-shuffle and image splitting.',
    sources: [{ repo: 'HuggingFaceTB/SmolVLM-256M-Instruct', role: 'vlm', downloadBytes: 513_000_000 }],
    compose: false,
    supported: true,
    note: 'Idefics3 family: an image is split into up to 4 x 4 tiles of 512 px plus a global image, 64 tokens each.',
    modelType: 'idefics3',
    params: 256_000_000,
    shape: {
      vision: {
        hiddenSize: 768,
        intermediateSize: 3072,
        numLayers: 12,
        numHeads: 12,
        tokensPerImage: 1024,
        patchSize: 16,
        numChannels: 3,
      },
      projector: { inFeatures: 12288, outFeatures: 576, type: 'linear' },
      decoder: {
        vocabSize: 49_280,
        hiddenSize: 576,
        intermediateSize: 1536,
        numLayers: 30,
        numHeads: 9,
        numKvHeads: 3,
        headDim: 64,
        tieEmbeddings: false,
      },
      imageTokens: 17 * 64,
      weightBytes: 4,
    },
  },
  {
    id: 'smolvlm-500m',
    title: 'SmolVLM 500M Instruct',
    description: 'SigLIP-B/16 + SmolLM2-360M with pixel-shuffle and image splitting.',
    sources: [{ repo: 'HuggingFaceTB/SmolVLM-500M-Instruct', role: 'vlm', downloadBytes: 1_020_000_000 }],
    compose: false,
    supported: true,
    note: 'Idefics3 family: an image is split into up to 4 x 4 tiles of 512 px plus a global image, 64 tokens each.',
    modelType: 'idefics3',
    params: 507_000_000,
    shape: {
      vision: {
        hiddenSize: 768,
        intermediateSize: 3072,
        numLayers: 12,
        numHeads: 12,
        tokensPerImage: 1024,
        patchSize: 16,
        numChannels: 3,
      },
      projector: { inFeatures: 12288, outFeatures: 960, type: 'linear' },
      decoder: {
        vocabSize: 49_280,
        hiddenSize: 960,
        intermediateSize: 2560,
        numLayers: 32,
        numHeads: 15,
        numKvHeads: 5,
        headDim: 64,
        tieEmbeddings: false,
      },
      imageTokens: 17 * 64,
      weightBytes: 4,
    },
  },
  {
    id: 'blip-vqa-base',
    title: 'BLIP VQA base',
    description: 'ViT-B/16 + BERT question encoder and answer decoder.',
    sources: [{ repo: 'Salesforce/blip-vqa-base', role: 'vlm', downloadBytes: 1_540_000_000 }],
    compose: false,
    supported: false,
    note: 'BLIP family (model_type "blip"): an encoder-decoder with cross-attention, not implemented yet.',
    modelType: 'blip',
    params: 385_000_000,
    shape: null,
  },
  {
    id: 'blip2-opt-2.7b',
    title: 'BLIP-2 OPT 2.7B',
    description: 'EVA ViT-g + Q-Former + OPT-2.7B.',
    sources: [{ repo: 'Salesforce/blip2-opt-2.7b', role: 'vlm', downloadBytes: 15_500_000_000 }],
    compose: false,
    supported: false,
    note: 'BLIP-2 family (model_type "blip-2"): the Q-Former and the OPT decoder are not implemented yet.',
    modelType: 'blip-2',
    params: 3_745_000_000,
    shape: null,
  },
  {
    id: 'whisper-tiny',
    title: 'Whisper tiny (audio)',
    description: 'Speech encoder-decoder for transcription datasets.',
    sources: [{ repo: 'openai/whisper-tiny', role: 'vlm', downloadBytes: 151_000_000 }],
    compose: false,
    supported: false,
    note: 'Whisper family (model_type "whisper"): audio models are not implemented yet.',
    modelType: 'whisper',
    params: 39_000_000,
    shape: null,
  },
];

/** Reason a model_type cannot be pulled, from the catalog (null when the catalog has nothing to say). */
export function unsupportedReason(modelType: string): string | null {
  return CATALOG.find((c) => !c.supported && c.modelType === modelType)?.note ?? null;
}

export interface CatalogEstimate {
  /** Weights held as float32 + a KV cache of 2,048 tokens + the runtime's arenas. */
  chatBytes: number | null;
  /** The quick-start LoRA run's estimate. */
  trainBytes: number | null;
  /** 'fits': trains here; 'chat-only': chat fits but training does not; 'too-big'; null: not estimated. */
  fit: 'fits' | 'chat-only' | 'too-big' | null;
}

export function estimateCatalogModel(
  m: CatalogModel,
  availableBytes = availableMemory(),
  totalBytes = totalmem(),
): CatalogEstimate {
  // a tower alone cannot chat or train; an unsupported family is not estimated
  if (!m.shape) return { chatBytes: null, trainBytes: null, fit: null };
  const d = m.shape.decoder;
  const kv = 2 * d.numLayers * d.numKvHeads * d.headDim * 2048 * 4;
  const weights = m.params * 4;
  const chatBytes = Math.round(weights + kv + 256 * 1024 * 1024 + 0.1 * (weights + kv));
  const train = estimateTrainingMemory(
    m.shape,
    { method: 'lora', rank: 16, targetModules: LORA_TARGETS, batchSize: 4, maxSeqLen: m.shape.imageTokens + 64 },
    { availableBytes, totalBytes },
  );
  const trainBytes = Math.round(train.breakdown.total);
  const fit = trainBytes <= availableBytes ? 'fits' : chatBytes <= availableBytes ? 'chat-only' : 'too-big';
  return { chatBytes, trainBytes, fit };
}
