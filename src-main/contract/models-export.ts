// Exporting a model for other runtimes: GGUF files for llama.cpp, Ollama and LM Studio. Pure TS + zod.
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id, Name } from './common';
import { AdapterRef } from './models';

const Path = z.string().min(1, 'must not be empty').max(4096);

export const GGUF_QUANTS = ['f32', 'f16', 'q8_0', 'q4_0'] as const;

const GgufFile = z.object({ file: z.string(), bytes: z.number(), tensors: z.int() });

export const modelsExportMethods = defineMethods({
  'models.exportGguf': {
    input: z.strictObject({
      /** Base model: registered id or folder (LLaVA, LLaMA or Qwen2 in Hugging Face layout). */
      model: z.union([z.strictObject({ id: Id }), z.strictObject({ path: Path })]),
      /** An adapter merged into the weights first. */
      adapter: AdapterRef.optional(),
      /** Output folder: must be empty, or with overwrite hold nothing but an earlier GGUF export. */
      dir: Path,
      /** Decoder weights: f32, f16, q8_0 or q4_0 (the mmproj's 2-D weights are q8_0 for q4_0). Default q8_0. */
      quant: z.enum(GGUF_QUANTS).optional(),
      /** The name inside the files and in their names (default: the model or adapter folder's name). */
      name: Name.optional(),
      overwrite: z.boolean().optional(),
    }),
    output: z.object({
      dir: z.string(),
      quant: z.enum(GGUF_QUANTS),
      model: GgufFile,
      mmproj: GgufFile.nullable(),
      modelfile: z.string(),
      /** What llama.cpp will compute differently from Lenslab with these files (its known bugs), in words. */
      notes: z.array(z.string()),
    }),
    summary:
      'Export a model (with an adapter merged in) as GGUF for llama.cpp / Ollama / LM Studio: the decoder, an mmproj for the vision side, an Ollama Modelfile.',
  },
});

export const modelsExportEvents = defineEvents({
  'models.exportProgress': z.object({ dir: z.string(), done: z.int(), total: z.int() }),
});
