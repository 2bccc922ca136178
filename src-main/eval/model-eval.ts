// Evaluate a model folder (with an optional PEFT adapter folder) on evaluation items: greedy generation with the
// engine (models/generate.ts) scored by runEvaluation. Used by evaluations.start and `lenslab eval`.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
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
}

export async function evaluateModel(o: ModelEvalOptions): Promise<EvalRunResult> {
  // graphs with an adapter baked in are used once: keep them out of the shared cache
  const own = o.adapterDir ? mkdtempSync(join(tmpdir(), 'lenslab-eval-graphs-')) : null;
  const gen = await loadGenerator(o.modelDir, o.adapterDir ?? null, { cacheDir: own ?? graphCacheDir() });
  try {
    return await runEvaluation({
      task: o.task,
      items: o.items,
      onProgress: o.onProgress,
      signal: o.signal,
      generate: async (item) => {
        const g = item as GenItem;
        const r = await gen.generate({ image: g.image, messages: g.messages }, { maxNewTokens: o.maxNewTokens ?? 32, signal: o.signal });
        return r.text.trim();
      },
    });
  } finally {
    await gen.dispose();
    if (own) rmSync(own, { recursive: true, force: true });
  }
}
