// Evaluate a model folder (with an optional PEFT adapter folder) on evaluation items: greedy generation with the
// engine (models/generate.ts) scored by runEvaluation. Used by evaluations.start and `lenslab eval`.
import { loadGenerator } from '../models/generate';
import { runEvaluation, type EvalRunResult } from './evaluate';
import type { EvalTask } from './metrics';
import type { GenItem } from '../training/data';
import { graphCacheDir } from '../training/vlm-config';

export interface ModelEvalOptions {
  modelDir: string;
  adapterDir?: string | null;
  task: EvalTask;
  items: readonly GenItem[];
  maxNewTokens?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** The compiled-graph cache (default: LENSLAB_GRAPH_CACHE or the temp folder, see graphCacheDir). */
  cacheDir?: string;
  /** Weight-only quantization of the generation graphs (models/quantize.ts). */
  quantize?: 'none' | 'int8' | 'int4';
}

export async function evaluateModel(o: ModelEvalOptions): Promise<EvalRunResult> {
  // the shared cache: generation graphs depend on an adapter's structure only (its tensors are graph inputs)
  const gen = await loadGenerator(o.modelDir, o.adapterDir ?? null, {
    cacheDir: o.cacheDir ?? graphCacheDir(),
    quantize: o.quantize,
  });
  try {
    return await runEvaluation({
      task: o.task,
      items: o.items,
      onProgress: o.onProgress,
      signal: o.signal,
      generate: async (item) => {
        const g = item as GenItem;
        const r = await gen.generate(
          { image: g.image, messages: g.messages },
          { maxNewTokens: o.maxNewTokens ?? 32, signal: o.signal },
        );
        return r.text.trim();
      },
    });
  } finally {
    await gen.dispose();
  }
}
