// What a vision-language model family is, as one unit: everything outside models/ asks the family through
// registry.ts (vlmFamilyOf / vlmFamilyFor) instead of branching on the model type.
//
// A family provides: config.json parse + write-back, the tensors each published key layout holds (canonical names
// and shapes, and the stored -> canonical mapping), the graph of image features (vision tower + connector), how an
// image becomes frames and tokens (processor: sizes, tiles, token ids of one image placeholder), PEFT module names
// (LoRA targets, the connector saved by the 'projector' method), and the shape numbers of the memory estimate.
// The decoder (LLaMA / Qwen2) and the merge of image features into the token embeddings are shared (llava.ts).

import type { Value } from '../../engine/graph/builder';
import type { Reader, VlmModelConfig } from '../config';
import type { GraphWeights } from '../layers';
import type { ImageInput, ImageProcessor } from '../image-processor';
import type { TensorSpec, WeightLayout } from '../weights/names';
import type { TensorSource } from '../weights/safetensors';
import type { GgufQuant } from '../../export/gguf/format';
import type { GgufTensorPlan, GgufValue } from '../../export/gguf/writer';

/** The tile grid an image is split into: rows x cols tiles plus a global image; 0 x 0 when it is one frame. */
export interface ImageGrid {
  rows: number;
  cols: number;
}

/** An image as the vision tower takes it: `frames` square frames [frames, 3, size, size] and the grid they came from. */
export interface ImageFrames extends ImageGrid {
  data: Float32Array;
  frames: number;
  /** frame height and width */
  height: number;
  width: number;
}

/** A family's image processor (preprocessor_config.json as that family's transformers processor reads it). */
export interface FamilyImageProcessor {
  /** the one-frame CLIP / SigLIP processor underneath, for families that use one (LLaVA) */
  base?: ImageProcessor;
  /** An image's frames: tiles row-major first, the whole image last (one frame when it is not tiled). */
  process(input: ImageInput): Promise<ImageFrames>;
  /** The grid an image becomes (a file is read only as far as its header). */
  gridOf(input: ImageInput): Promise<ImageGrid>;
  /** The grid an image of this size becomes. */
  grid(width: number, height: number): ImageGrid;
  /** The grid of the largest image the processor produces (the most tokens an image can take). */
  maxGrid(): ImageGrid;
}

/** What the token counts and the memory estimate need about a model. */
export interface VlmShape {
  vision: {
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    tokensPerImage: number;
    patchSize: number;
    numChannels: number;
  };
  /** `params`: the connector's parameter count where it is not the in x out projector's (BLIP-2's Q-Former) */
  connector: { inFeatures: number; outFeatures: number; type: 'mlp' | 'linear'; params?: number };
  /** image tokens one frame adds to the decoder sequence */
  tokensPerFrame: number;
  /** frames of the largest image */
  maxFramesPerImage: number;
}

/** The token text a tokenizer knows, for building placeholder expansions. */
export interface TokenLookup {
  tokenToId(token: string): number | undefined;
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
}

/** The vision side as llama.cpp's mtmd loads it: the metadata and tensors of the mmproj GGUF beside the decoder's. */
export interface VlmGgufExport<C> {
  /** Refuse (through `no`, naming the config.json field and the reason) what llama.cpp's clip.cpp cannot run. */
  check(c: C, no: (field: string, why: string) => never): void;
  /** metadata of the mmproj file; `images` is the family's own processor (image size, mean and std) */
  kv(c: C, images: FamilyImageProcessor, name: string, quant: GgufQuant): Map<string, GgufValue>;
  tensors(c: C, weights: TensorSource, quant: GgufQuant): GgufTensorPlan[];
  /** What llama.cpp will compute differently from transformers with this export (its known bugs), for the user. */
  notes?(c: C): string[];
}

export interface VlmFamily<C extends VlmModelConfig = VlmModelConfig> {
  /** e.g. 'llava', 'idefics3' (= ModelConfig.kind) */
  name: C['kind'];
  /** config.json model_type values this family reads */
  modelTypes: readonly string[];
  /** HF architecture class (for adapter_config.json and docs) */
  architecture: string;
  parseConfig(r: Reader, modelType: string): C;
  /** 'llava-llama', 'idefics3-llama': the family and its decoder */
  describe(c: C): string;
  /** the connector in words, e.g. 'mlp (gelu)', 'pixel shuffle x4 + linear' (Models view) */
  connectorLabel(c: C): string;
  /** canonical name prefixes of the parts */
  layout(c: C): WeightLayout;
  /** every tensor of a checkpoint, canonical names, exact shapes */
  tensors(c: C): TensorSpec[];
  /** stored name (any published layout) -> canonical name; null for known-irrelevant tensors */
  canonicalName(c: C, stored: string): string | null;
  /** Projected image features [N, tokensPerFrame, text hidden] of pixel_values [N, 3, S, S]. */
  imageFeatures(w: GraphWeights, c: C, pixelValues: Value): Value;
  /**
   * The same image path split at the connector (imageFeatures = connector(tower)), so features can be cached before a
   * connector that trains: the tower's output [N, tokens, dim] of pixel_values, its shape, and the connector on it.
   * Optional: without it, features are cached only when the connector is frozen too.
   */
  splitFeatures?: {
    tower(w: GraphWeights, c: C, pixelValues: Value): Value;
    towerShape(c: C): { tokens: number; dim: number };
    connector(w: GraphWeights, c: C, towerFeatures: Value): Value;
  };
  /**
   * How the tokensPerFrame feature rows of one frame lie in the image, row-major (video pools them 2×2 per frame,
   * video.ts). Absent or null: the rows are no spatial grid (a class token kept, learned queries) and are not pooled.
   */
  featureGrid?(c: C): ImageGrid | null;
  /** Vision tensors the features never read (not trained by the 'full' method). */
  unusedVisionTensor(c: C, restOfName: string): boolean;
  /** preprocessor_config.json (+ processor_config.json when published) -> the processor */
  imageProcessor(
    c: C,
    preprocessor: Record<string, unknown>,
    file: string,
    processorConfig?: Record<string, unknown>,
  ): FamilyImageProcessor;
  /** The ids one image placeholder becomes for a grid (what the family's transformers processor writes). */
  imageTokenIds(c: C, tokens: TokenLookup, grid: ImageGrid): number[];
  /** Special tokens the tokenizer must know for images up to this grid (checked on load). */
  requiredTokens(c: C, grid?: ImageGrid): string[];
  /** PEFT: module-name regex of the decoder and vision layers (both published layouts), the connector's module name
   *  for modules_to_save, and other names a canonical module has in other layouts. */
  peft: {
    decoderLayers: string;
    visionLayers: string;
    connector: string;
    /** every module the 'projector' method trains whole and saves (modules_to_save); default [connector] */
    connectorModules?: readonly string[];
    alternativeNames(module: string): string[];
  };
  /** A built-in chat template for folders that publish none (BLIP-2), and whether the tokenizer adds its own
   *  special tokens to the rendered text (false when the template writes them, e.g. after the image tokens). */
  chat?: { template: string; origin: string; addSpecialTokens: boolean; captionPrompt?: string };
  shape(c: C, processor?: FamilyImageProcessor | null): VlmShape;
  /** GGUF export of the vision side (absent: the family cannot be exported for llama.cpp yet). */
  gguf?: VlmGgufExport<C>;
}
