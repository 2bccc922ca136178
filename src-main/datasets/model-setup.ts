// The RenderSetup of a model folder (tokenizer, chat template, image token expansion, context length),
// for the "too long" lint and the tokenized preview. Cached per folder.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { loadHfFolder } from '../models/hf-folder';
import { renderSetupOf } from '../models/program';
import type { RenderSetup } from './render';

export type ModelRenderSetup = RenderSetup & { contextLength: number };

const cache = new Map<string, { mtime: number; setup: ModelRenderSetup }>();

/**
 * Load (or reuse) the render setup of a Hugging Face model folder (models/program.ts renderSetupOf: images expand
 * to the largest tile grid the model's processor makes, so lengths are upper bounds). Throws naming the file on bad folders.
 */
export function renderSetupFromFolder(dir: string): ModelRenderSetup {
  const mtime = statSync(join(dir, 'config.json')).mtimeMs;
  const hit = cache.get(dir);
  if (hit && hit.mtime === mtime) return hit.setup;
  const model = loadHfFolder(dir, { preprocessor: false });
  try {
    if (model.config.kind === 'vision')
      throw new Error(`${dir}: a vision-only model has no tokenizer or chat template`);
    const setup: ModelRenderSetup = { ...renderSetupOf(model), contextLength: model.config.text.maxPositionEmbeddings };
    cache.set(dir, { mtime, setup });
    if (cache.size > 8) cache.delete(cache.keys().next().value!);
    return setup;
  } finally {
    model.close();
  }
}
